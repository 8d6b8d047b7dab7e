"""Every command answers a user's mistake with one line that names the path
and the problem, exit code 1, no traceback and no output file."""
import json

import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_mtl.cli import app


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A folder of mistakes: empty inputs, a file that is not a DocBin, text
    that is not UTF-8, and pipelines with a damaged config or weights."""
    root = tmp_path_factory.mktemp("mistakes")
    for name in ("empty.txt", "empty.conllu"):
        (root / name).write_text("")
    (root / "empty.json").write_text("[]")
    (root / "empty_slu").mkdir()
    for name in ("seq.in", "seq.out", "label"):
        (root / "empty_slu" / name).write_text("")
    (root / "not_docbin.spacy").write_text("plain text, not a DocBin")
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (root / "texts.txt").write_text("hello world\n")
    nlp = spacy.blank("en")
    nlp.to_disk(root / "blank")
    DocBin().to_disk(root / "no_docs.spacy")
    nlp.to_disk(root / "damaged_config")
    (root / "damaged_config" / "config.cfg").write_text("[nlp\nlang = ")
    textcat = nlp.add_pipe("textcat")
    for label in ("A", "B"):
        textcat.add_label(label)
    nlp.initialize()
    nlp.to_disk(root / "damaged_weights")
    (root / "damaged_weights" / "textcat" / "model").write_bytes(b"\x00truncated")
    return root


# command line (with {root} for the folder of mistakes) -> what the line must say
MISTAKES = {
    "convert slu {root}/missing {root}/out.spacy": "missing/seq.in: file not found",
    "convert slu {root}/empty_slu {root}/out.spacy": "empty_slu/seq.in: no sentences found",
    "convert relations {root}/missing.json {root}/out.spacy": "missing.json: file not found",
    "convert relations {root}/empty.json {root}/out.spacy": "empty.json: no sentences found",
    "convert chunks {root}/empty.txt {root}/out.spacy": "empty.txt: no sentences found",
    "convert conllu {root}/empty.conllu {root}/out.spacy": "empty.conllu: no sentences found",
    "convert conllu {root}/missing.conllu {root}/out.spacy": "missing.conllu: file not found",
    "evaluate {root}/missing_model {root}/not_docbin.spacy -o {root}/out.json": "missing_model: no such pipeline",
    "evaluate {root}/blank {root}/missing.spacy -o {root}/out.json": "missing.spacy: file not found",
    "evaluate {root}/blank {root}/not_docbin.spacy -o {root}/out.json": "not_docbin.spacy: not a .spacy (DocBin) file",
    "evaluate {root}/blank {root}/no_docs.spacy -o {root}/out.json": "no_docs.spacy: holds no docs",
    "evaluate {root}/damaged_config {root}/not_docbin.spacy -o {root}/out.json": "damaged_config/config.cfg: damaged config",
    "evaluate {root}/damaged_weights {root}/not_docbin.spacy -o {root}/out.json": "damaged_weights: the pipeline cannot be loaded",
    "evaluate {root}/empty.txt {root}/not_docbin.spacy -o {root}/out.json": "empty.txt: no such pipeline",
    "benchmark {root}/blank --data {root}/empty.txt -o {root}/out.json": "empty.txt: holds no text",
    "benchmark {root}/blank --data {root}/latin1.txt -o {root}/out.json": "latin1.txt: not UTF-8 text",
    "benchmark {root}/blank --data {root}/missing.txt -o {root}/out.json": "missing.txt: file not found",
    "benchmark {root}/blank --data {root}/not_docbin.spacy -o {root}/out.json": "not_docbin.spacy: not a .spacy (DocBin) file",
    "benchmark {root}/missing_model --data {root}/latin1.txt -o {root}/out.json": "latin1.txt: not UTF-8 text",
    "benchmark {root}/blank --beside-transformer --data {root}/texts.txt -o {root}/out.json":
        "blank: no component named 'transformer'",
    "benchmark {root}/blank {root}/blank --beside-transformer --data {root}/texts.txt -o {root}/out.json":
        "times one pipeline beside its own transformer",
    "render {root}/missing_model hello {root}/out.html": "missing_model: no such pipeline",
    "render {root}/blank {root}/not_docbin.spacy {root}/out.html": "not_docbin.spacy: not a .spacy (DocBin) file",
    "render {root}/damaged_config hello {root}/out.html": "damaged_config/config.cfg: damaged config",
    "validate {root}/missing.conllu": "missing.conllu: no such file or folder",
    "annotate {root}/missing_model {root}/latin1.txt {root}/out": "missing_model: no such pipeline",
    "annotate {root}/damaged_config {root}/latin1.txt {root}/out": "damaged_config/config.cfg: damaged config",
    "annotate {root}/damaged_weights {root}/latin1.txt {root}/out": "damaged_weights: the pipeline cannot be loaded",
    "annotate {root}/blank {root}/missing.jsonl {root}/out": "missing.jsonl: no such file or folder",
    "annotate {root}/blank {root}/empty.txt {root}/out": "empty.txt: holds no records",
    "annotate {root}/blank {root}/empty_slu {root}/out": "empty_slu: no input files",
    "annotate {root}/blank {root}/latin1.txt {root}/out --engine spark": "engine 'spark': unknown (known: local, ray)",
    "annotate {root}/blank {root}/latin1.txt {root}/out --format csv": "format 'csv': unknown (known: jsonl, docbin)",
    "annotate {root}/blank {root}/latin1.txt {root}/out --shard-size 0": "shard size 0: must be at least 1",
    "annotate {root}/blank {root}/latin1.txt {root}/out --engine ray --num-actors 0": "number of actors 0: must be",
}


@pytest.mark.parametrize("command", MISTAKES)
def test_a_mistake_is_one_line_and_exit_code_1(files, command):
    result = CliRunner().invoke(app, command.format(root=files).split())
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert MISTAKES[command] in " ".join(result.output.split())
    assert not any((files / name).exists() for name in ("out.spacy", "out.json", "out.html", "out"))


def test_the_same_commands_work_on_good_input(files, tmp_path):
    """The table's pipeline and files are not what fails: with good input
    the same commands succeed."""
    (tmp_path / "texts.txt").write_text("hello world\n")
    result = CliRunner().invoke(app, ["benchmark", str(files / "blank"), "--data", str(tmp_path / "texts.txt"),
                                      "--n-words", "10", "--runs", "1", "-o", str(tmp_path / "out.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out.json").read_text())["words"] >= 10
