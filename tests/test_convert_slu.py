from pathlib import Path

import pytest
from spacy.tokens import DocBin
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.convert import ConversionError, convert_slu
from spacy_mtl.ml.decoding import spans_to_bio

SAMPLE = {
    "seq.in": ["show flights from boston to new york ", "what is the fare", "play 50 clásicos by ñu"],
    "seq.out": ["O O O B-from O B-to I-to", "O O O O", "O B-album I-album O B-artist"],
    "label": ["flight", "flight#airfare", "PlayMusic"],
}


def write_sample(folder: Path, **changes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in {**SAMPLE, **changes}.items():
        if lines is not None:
            (folder / name).write_text("\n".join(lines) + "\n", encoding="utf8")
    return folder


@pytest.fixture
def sample(tmp_path):
    return write_sample(tmp_path / "in"), SAMPLE


def read_back(path: Path):
    docs = list(DocBin().from_disk(path).get_docs(Vocab()))
    return [
        (
            " ".join(t.text for t in doc),
            " ".join(spans_to_bio(len(doc), [(s.start, s.end, s.label_) for s in doc.spans["slots"]])),
            next(label for label, value in doc.cats.items() if value == 1.0),
        )
        for doc in docs
    ]


def test_round_trip(sample, tmp_path):
    folder, lines = sample
    out = tmp_path / "out.spacy"
    assert convert_slu(folder, out) == 3
    expected = [(w.strip(), t, l) for w, t, l in zip(lines["seq.in"], lines["seq.out"], lines["label"])]
    assert read_back(out) == expected


def test_docs_without_intent_file_are_not_annotated_for_intent(sample, tmp_path):
    folder, _ = sample
    (folder / "label").unlink()
    out = tmp_path / "out.spacy"
    convert_slu(folder, out)
    docs = list(DocBin().from_disk(out).get_docs(Vocab()))
    assert all(doc.cats == {} and "slots" in doc.spans for doc in docs)


@pytest.mark.parametrize(
    "changes,file_name,line,message",
    [
        ({"seq.out": ["O O O B-from O B-to I-to", "O O O", "O B-album I-album O B-artist"]}, "seq.out", 2, "3 tags"),
        ({"seq.out": ["O O O B-from O B-to I-to", "O O X-y O", "O B-album I-album O B-artist"]}, "seq.out", 2, "'X-y' is not an IOB2"),
        ({"seq.out": ["O O O B-from I-x O B-to", "O O O O", "O B-album I-album O B-artist"]}, "seq.out", 1, "'I-x' does not continue"),
        ({"seq.out": ["O O O B-from O B-to I-to", "O O O O", "O I-album I-album O B-artist"]}, "seq.out", 3, "'I-album' does not continue"),
        ({"label": ["flight", "flight"]}, "label", 3, "2 lines, but seq.in has 3"),
        ({"label": ["flight", "", "PlayMusic"]}, "label", 2, "expected one intent"),
        ({"seq.in": ["show flights from boston to new york", "", "play 50 clásicos by ñu"]}, "seq.in", 2, "empty utterance"),
    ],
)
def test_malformed_input_names_file_and_line(sample, tmp_path, changes, file_name, line, message):
    folder, _ = sample
    write_sample(folder, **changes)
    out = tmp_path / "out.spacy"
    with pytest.raises(ConversionError) as excinfo:
        convert_slu(folder, out)
    assert f"{folder / file_name}:{line}:" in str(excinfo.value)
    assert message in str(excinfo.value)
    assert list(tmp_path.glob("*out.spacy*")) == []


def test_missing_folder_and_bad_encoding(tmp_path):
    with pytest.raises(ConversionError, match="seq.in: file not found"):
        convert_slu(tmp_path / "nowhere", tmp_path / "out.spacy")
    folder = write_sample(tmp_path / "in")
    (folder / "seq.in").write_bytes(b"ok line\nbad \xff byte\nthird\n")
    with pytest.raises(ConversionError, match=r"seq.in:2: not valid UTF-8"):
        convert_slu(folder, tmp_path / "out.spacy")


def test_cli_reports_error_without_traceback(sample, tmp_path):
    folder, lines = sample
    runner = CliRunner()
    result = runner.invoke(app, ["convert", "slu", str(folder), str(tmp_path / "ok.spacy")])
    assert result.exit_code == 0 and (tmp_path / "ok.spacy").exists()
    write_sample(folder, **{"seq.out": ["O O", "O O O O", "O B-album I-album O B-artist"]})
    result = runner.invoke(app, ["convert", "slu", str(folder), str(tmp_path / "bad.spacy")])
    assert result.exit_code == 1
    assert "seq.out:1" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "bad.spacy").exists()
