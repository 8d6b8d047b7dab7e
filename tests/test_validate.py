"""`spacy-mtl validate`, and converter round trips on generated data."""
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.convert import read_chunks, read_conllu
from spacy_mtl.convert.validate import detect_format, validate

ROW = "{i}\t{w}\t{w}\tX\tXX\t_\t{h}\t{d}\t_\t_\n"


def conllu(sentences) -> str:
    """CoNLL-U text of sentences given as [(word, head)], head 0 = root."""
    return "\n".join(
        "".join(ROW.format(i=i, w=w, h=h, d="root" if h == 0 else "dep") for i, (w, h) in enumerate(s, start=1))
        for s in sentences
    )


def test_every_bad_sentence_is_reported(tmp_path):
    path = tmp_path / "t.conllu"
    good = [("a", 2), ("b", 0)]
    two_roots = [("a", 0), ("b", 0)]
    cycle = [("a", 2), ("b", 1), ("c", 0)]
    path.write_text(conllu([good, two_roots, good, cycle]) + "\n1\ta\n")
    n_docs, errors = validate(path)
    messages = [str(err) for err in errors]
    assert n_docs == 2
    assert len(messages) == 3
    assert messages[0].endswith("t.conllu:5: the sentence has 2 roots (HEAD 0), expected 1")
    assert "t.conllu:10: the tree has a cycle" in messages[1]
    assert "t.conllu:14: expected 10 tab-separated columns, got 2" in messages[2]


def test_spert_errors_name_sentence_and_field(tmp_path):
    path = tmp_path / "r.json"
    sentences = [
        {"tokens": ["A", "B", "C"], "entities": [{"type": "X", "start": 0, "end": 2}, {"type": "Y", "start": 1, "end": 3}], "relations": []},
        {"tokens": ["A", "B"], "entities": [{"type": "X", "start": 0, "end": 5}], "relations": []},
        {"tokens": ["A", "B"], "entities": [{"type": "X", "start": 0, "end": 1}], "relations": [{"type": "R", "head": 0, "tail": 3}]},
        {"tokens": ["A"], "entities": [], "relations": []},
    ]
    path.write_text(json.dumps(sentences))
    n_docs, errors = validate(path)
    assert n_docs == 1
    assert [str(e).split(": ", 1)[1] for e in errors] == [
        "sentence 1: entities[0] and entities[1] overlap",
        "sentence 2: entities[0]: span [0, 5) out of range for 2 tokens",
        "sentence 3: relations[0].tail = 3, but the sentence has 1 entities",
    ]


def test_slu_misaligned_tags(tmp_path):
    (tmp_path / "seq.in").write_text("play jazz\nbook a table\n")
    (tmp_path / "seq.out").write_text("O B-genre\nO O\n")
    (tmp_path / "label").write_text("PlayMusic\nBookRestaurant\n")
    n_docs, errors = validate(tmp_path)
    assert detect_format(tmp_path) == "slu" and n_docs == 1
    assert [str(e) for e in errors] == [f"{tmp_path / 'seq.out'}:2: 2 tags for the 3 words of seq.in"]


def test_cli_validate(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("He PRP B-NP\nruns VBZ I-VP\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1 and "c.txt:2" in result.output and "I-VP" in result.output
    path.write_text("He PRP B-NP\nruns VBZ B-VP\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "1 docs, no errors" in result.output


words = st.text(alphabet=st.characters(whitelist_categories=("L", "N"), max_codepoint=0x2FFF), min_size=1, max_size=8)
chunk_types = st.sampled_from(["NP", "VP", "PP"])


@st.composite
def chunked_sentences(draw):
    n = draw(st.integers(1, 12))
    tokens = draw(st.lists(words, min_size=n, max_size=n))
    tags, i = [], 0
    while i < n:
        length = draw(st.integers(1, n - i))
        label = draw(st.one_of(st.none(), chunk_types))
        tags += ["O"] * length if label is None else [f"B-{label}"] + [f"I-{label}"] * (length - 1)
        i += length
    return tokens, tags


@settings(max_examples=60, deadline=None)
@given(st.lists(chunked_sentences(), min_size=1, max_size=4))
def test_chunk_files_round_trip(tmp_path_factory, sentences):
    path = tmp_path_factory.mktemp("chunks") / "c.txt"
    path.write_text("\n\n".join("\n".join(f"{w} NN {t}" for w, t in zip(*s)) for s in sentences) + "\n")
    docs = list(read_chunks(path))
    assert len(docs) == len(sentences)
    for doc, (tokens, tags) in zip(docs, sentences):
        assert [t.text for t in doc] == tokens
        rebuilt = ["O"] * len(doc)
        for span in doc.spans["chunks"]:
            rebuilt[span.start : span.end] = [f"B-{span.label_}"] + [f"I-{span.label_}"] * (len(span) - 1)
        assert rebuilt == tags


@st.composite
def trees(draw):
    """A random tree over n words: attach each word of a random order to an
    earlier one, the first to the root."""
    n = draw(st.integers(1, 15))
    order = draw(st.permutations(list(range(1, n + 1))))
    heads = [0] * (n + 1)
    for k, word in enumerate(order[1:], start=1):
        heads[word] = order[draw(st.integers(0, k - 1))]
    return [(f"w{i}", heads[i]) for i in range(1, n + 1)]


@settings(max_examples=60, deadline=None)
@given(st.lists(trees(), min_size=1, max_size=3))
def test_conllu_files_round_trip(tmp_path_factory, sentences):
    path = tmp_path_factory.mktemp("conllu") / "t.conllu"
    path.write_text(conllu(sentences))
    docs = list(read_conllu(path))
    for doc, sentence in zip(docs, sentences):
        assert [t.text for t in doc] == [w for w, _ in sentence]
        assert [0 if t.head.i == t.i else t.head.i + 1 for t in doc] == [h for _, h in sentence]
        assert [t.dep_ for t in doc] == ["ROOT" if h == 0 else "dep" for _, h in sentence]
