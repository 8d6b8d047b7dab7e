import re

import pytest
import spacy

from spacy.tokens import Doc, Span
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.relations import Relation
from spacy_mtl.render import render_relations, render_spans


@pytest.fixture(scope="module")
def saved_pipeline_for_render(tiny_bert, tmp_path_factory, snips_docs):
    from pipelines import examples_for, make_nlp

    nlp = make_nlp(tiny_bert)
    nlp.initialize(lambda: examples_for(nlp, snips_docs[:10]))
    path = tmp_path_factory.mktemp("render") / "model"
    nlp.to_disk(path)
    return path


def make_doc():
    doc = Doc(Vocab(), words="John Smith works for Acme <Corp> in Boston".split())
    doc.ents = [Span(doc, 0, 2, "Peop"), Span(doc, 4, 6, "Org"), Span(doc, 7, 8, "Loc")]
    peop, org, loc = doc.ents
    doc._.relations = [Relation(peop, org, "Work_For", 0.9), Relation(org, loc, "OrgBased_In", 0.8), Relation(peop, loc, "Live_In", 0.7)]
    return doc


def test_html_has_entities_arcs_and_escaped_text():
    page = render_relations([make_doc(), Doc(Vocab(), words=["Nothing", "here"])])
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 2
    assert re.findall(r'class="entity" data-label="(\w+)"', page) == ["Peop", "Org", "Loc"]
    assert "&lt;Corp&gt;" in page and "<Corp>" not in page
    arcs = dict(re.findall(r'class="relation" data-label="(\w+)" d="M [-\d.]+ [-\d.]+ C [-\d.]+ ([-\d.]+)', page))
    assert set(arcs) == {"Work_For", "OrgBased_In", "Live_In"}
    # The long arc (Peop -> Loc) spans both short ones, so it is drawn higher.
    assert float(arcs["Live_In"]) < min(float(arcs["Work_For"]), float(arcs["OrgBased_In"]))


def test_arcs_point_from_head_to_tail():
    doc = make_doc()
    peop, org, _ = doc.ents
    doc._.relations = [Relation(org, peop, "Employs")]
    path = re.search(r'd="M ([-\d.]+) [-\d.]+ C [-\d.]+ [-\d.]+, ([-\d.]+)', render_relations([doc], page=False))
    start, end = float(path.group(1)), float(path.group(2))
    assert start > end  # head (Acme) is right of tail (John Smith); the marker sits at the end


def test_cli_reports_missing_input(tmp_path):
    result = CliRunner().invoke(app, ["render", str(tmp_path), str(tmp_path / "missing.spacy"), str(tmp_path / "out.html")])
    assert result.exit_code != 0
    assert not (tmp_path / "out.html").exists()


def test_spans_and_trees_render():
    from spacy_mtl.render import render_dependencies, render_spans

    doc = Doc(Vocab(), words=["the", "old", "man", "sleeps"], heads=[2, 2, 3, 3], deps=["det", "amod", "nsubj", "ROOT"], tags=["DT", "JJ", "NN", "VBZ"])
    doc.spans["chunks"] = [Span(doc, 0, 3, "NP"), Span(doc, 3, 4, "VP")]
    spans = render_spans([doc], "chunks")
    labels = re.findall(r">\s*(NP|VP)\s*<", spans)
    assert labels == ["NP", "VP"]
    tree = render_dependencies([doc])
    assert "nsubj" in tree and "amod" in tree and "VBZ" in tree


def test_cli_render_styles(saved_pipeline_for_render, tmp_path):
    out = tmp_path / "slots.html"
    result = CliRunner().invoke(app, ["render", str(saved_pipeline_for_render), "play jazz by miles davis", str(out), "--style", "slots"])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    doc = spacy.load(saved_pipeline_for_render)("play jazz by miles davis")
    assert all(word in page for word in ("play", "jazz", "miles", "davis"))
    assert page.strip() == render_spans([doc], "slots").strip()
    result = CliRunner().invoke(app, ["render", str(saved_pipeline_for_render), "x", str(out), "--style", "colours"])
    assert result.exit_code == 1 and "Unknown style" in result.output
