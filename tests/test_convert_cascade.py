"""CoNLL-2000 and CoNLL-U converters: what they read, and the errors that
name file and line."""
import pytest
from spacy.tokens import DocBin
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.convert import ConversionError, convert_chunks, convert_conllu, read_chunks, read_conllu

CHUNKS = """Confidence NN B-NP
in IN B-PP
the DT B-NP
pound NN I-NP
. . O

He PRP B-NP
is VBZ B-VP
"""

CONLLU = """# sent_id = 1
# text = I don't know.
1	I	I	PRON	PRP	Case=Nom	4	nsubj	4:nsubj	_
2-3	don't	_	_	_	_	_	_	_	_
2	do	do	AUX	VBP	_	4	aux	4:aux	_
3	n't	not	PART	RB	_	4	advmod	4:advmod	_
4	know	know	VERB	VB	_	0	root	0:root	SpaceAfter=No
4.1	knew	know	VERB	VBD	_	_	_	4:conj	CopyOf=4
5	.	.	PUNCT	.	_	4	punct	4:punct	_

1	Hi	hi	INTJ	UH	_	0	root	0:root	_
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf8")
    return path


def test_chunks_become_tags_and_spans(tmp_path):
    docs = list(read_chunks(write(tmp_path, "c.txt", CHUNKS)))
    assert [t.tag_ for t in docs[0]] == ["NN", "IN", "DT", "NN", "."]
    assert [(s.start, s.end, s.label_) for s in docs[0].spans["chunks"]] == [(0, 1, "NP"), (1, 2, "PP"), (2, 4, "NP")]
    assert len(docs) == 2 and not docs[1].has_annotation("DEP")


def test_chunks_round_trip_through_docbin(tmp_path):
    out = tmp_path / "c.spacy"
    assert convert_chunks(write(tmp_path, "c.txt", CHUNKS), out) == 2
    original = list(read_chunks(tmp_path / "c.txt"))
    loaded = list(DocBin().from_disk(out).get_docs(Vocab()))
    for a, b in zip(original, loaded):
        assert [(t.text, t.tag_) for t in a] == [(t.text, t.tag_) for t in b]
        assert [(s.start, s.end, s.label_) for s in a.spans["chunks"]] == [(s.start, s.end, s.label_) for s in b.spans["chunks"]]


@pytest.mark.parametrize("bad_line,message", [
    ("pound NN", "expected 3 columns"),
    ("pound NN X-NP", "'X-NP' is not an IOB2 tag"),
    ("pound NN I-VP", "'I-VP' does not continue"),
])
def test_chunk_errors_name_file_and_line(tmp_path, bad_line, message):
    path = write(tmp_path, "c.txt", CHUNKS.replace("pound NN I-NP", bad_line))
    out = tmp_path / "c.spacy"
    with pytest.raises(ConversionError, match=rf"c\.txt:4: .*{message}"):
        convert_chunks(path, out)
    assert not out.exists() and list(tmp_path.iterdir()) == [path]


def test_conllu_words_tags_and_trees(tmp_path):
    docs = list(read_conllu(write(tmp_path, "t.conllu", CONLLU)))
    doc = docs[0]
    # The multiword token's words are the tokens; the empty node is skipped.
    assert [t.text for t in doc] == ["I", "do", "n't", "know", "."]
    assert doc.text == "I don't know."
    assert [t.tag_ for t in doc] == ["PRP", "VBP", "RB", "VB", "."]
    assert [t.pos_ for t in doc] == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert [t.head.i for t in doc] == [3, 3, 3, 3, 3]
    assert [t.dep_ for t in doc] == ["nsubj", "aux", "advmod", "ROOT", "punct"]
    assert [t.lemma_ for t in doc][:3] == ["I", "do", "not"]
    assert docs[1][0].dep_ == "ROOT"


def test_conllu_round_trip_through_docbin(tmp_path):
    out = tmp_path / "t.spacy"
    assert convert_conllu(write(tmp_path, "t.conllu", CONLLU), out) == 2
    original = list(read_conllu(tmp_path / "t.conllu"))
    loaded = list(DocBin().from_disk(out).get_docs(Vocab()))
    attrs = lambda doc: [(t.text, t.whitespace_, t.tag_, t.pos_, t.lemma_, t.head.i, t.dep_) for t in doc]  # noqa: E731
    assert [attrs(d) for d in original] == [attrs(d) for d in loaded]


def test_conllu_without_trees(tmp_path):
    text = "1\tHi\thi\tINTJ\tUH\t_\t_\t_\t_\t_\n2\tthere\tthere\tADV\tRB\t_\t_\t_\t_\t_\n"
    doc = next(read_conllu(write(tmp_path, "t.conllu", text)))
    assert not doc.has_annotation("DEP") and doc[1].tag_ == "RB"


@pytest.mark.parametrize("old,new,line,message", [
    ("5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t4:punct\t_", "5\t.\t.\tPUNCT\t.\t_\t4\tpunct", 9, "expected 10 tab-separated columns, got 8"),
    ("5\t.\t.\tPUNCT\t.\t_\t4\tpunct", "5\t.\t.\tPUNCT\t.\t_\t9\tpunct", 9, "HEAD '9' is not a word"),
    ("3\tn't\tnot\tPART\tRB\t_\t4\tadvmod", "3\tn't\tnot\tPART\tRB\t_\t0\tadvmod", 7, "2 roots"),
    ("3\tn't\tnot\tPART\tRB\t_\t4\tadvmod", "3\tn't\tnot\tPART\tRB\t_\t3\tadvmod", 6, "its own head"),
    ("5\t.\t.\tPUNCT", "6\t.\t.\tPUNCT", 9, "word ID '6', expected 5"),
])
def test_conllu_errors_name_file_and_line(tmp_path, old, new, line, message):
    assert old in CONLLU
    path = write(tmp_path, "t.conllu", CONLLU.replace(old, new, 1))
    out = tmp_path / "t.spacy"
    with pytest.raises(ConversionError, match=rf"t\.conllu:{line}: .*{message}"):
        convert_conllu(path, out)
    assert not out.exists()


def test_conllu_cycle_is_an_error(tmp_path):
    rows = [("a", 2), ("b", 1), ("c", 0)]
    text = "".join(f"{i}\t{w}\t{w}\tX\tXX\t_\t{h}\tdep\t_\t_\n" for i, (w, h) in enumerate(rows, start=1))
    with pytest.raises(ConversionError, match=r"t\.conllu:1: the tree has a cycle"):
        list(read_conllu(write(tmp_path, "t.conllu", text)))


def test_cli_reports_errors_without_traceback(tmp_path):
    path = write(tmp_path, "c.txt", CHUNKS.replace("pound NN I-NP", "pound NN"))
    result = CliRunner().invoke(app, ["convert", "chunks", str(path), str(tmp_path / "c.spacy")])
    assert result.exit_code == 1 and "c.txt:4" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["convert", "conllu", str(write(tmp_path, "t.conllu", CONLLU)), str(tmp_path / "t.spacy")])
    assert result.exit_code == 0 and (tmp_path / "t.spacy").exists()
