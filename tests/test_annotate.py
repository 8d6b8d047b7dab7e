"""`spacy-mtl annotate` on the local engine: the same annotations as
nlp.pipe, every input kind, bad records reported and counted, and a job that
resumes where it stopped."""
import json
import subprocess
import sys

import pytest
import spacy

from annotation import (
    BAD_LINES, corpus_texts, done_shards, expected_output, kill_after, read_docbin_output, read_output, shard_bytes,
    write_corpus,
)
from spacy_mtl.annotate import annotate, doc_annotations
from spacy_mtl.annotate.manifest import MANIFEST_NAME
from spacy_mtl.inputs import InputError
from spacy_mtl.names import RECORD_KEY

pytestmark = pytest.mark.slow  # trains the all-in-one pipeline of the fixtures


@pytest.fixture(scope="module")
def nlp(all_in_one_path):
    return spacy.load(all_in_one_path)


@pytest.fixture(scope="module")
def texts(snips_docs, conll04_sample, cascade_docs):
    return corpus_texts(snips_docs, conll04_sample, cascade_docs)


def run(model, source, output, **settings):
    return annotate(str(model), source, output, progress=False, log=lambda line: None, **settings)


def test_writes_what_nlp_pipe_gives_with_every_annotation(nlp, all_in_one_path, texts, tmp_path):
    records = write_corpus(tmp_path / "corpus.jsonl", texts, bad_every=20)
    summary = run(all_in_one_path, tmp_path / "corpus.jsonl", tmp_path / "out", shard_size=16, batch_size=1)
    written = read_output(tmp_path / "out")
    assert written == expected_output(nlp, records)
    assert summary["records"] == summary["annotated"] + summary["rejected"] == len(records) + len(BAD_LINES)
    annotations = [record["annotations"] for record in written]
    assert all(annotation["cats"] for annotation in annotations)
    for key in ("ents", "relations", "sents"):
        assert any(annotation.get(key) for annotation in annotations), key
    assert {"slots", "chunks"} <= {key for annotation in annotations for key in annotation.get("spans", {})}
    assert {"tag", "dep", "head"} <= set(annotations[0]["tokens"][0])


def test_bad_records_go_to_the_errors_file_with_file_line_and_reason(all_in_one_path, texts, tmp_path):
    source = tmp_path / "corpus.jsonl"
    records = write_corpus(source, texts[:30], bad_every=4)
    summary = run(all_in_one_path, source, tmp_path / "out", shard_size=8)
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    lines = source.read_bytes().split(b"\n")
    assert [error["reason"].split(" (")[0] for error in errors] == [reason for _, reason in BAD_LINES]
    for error, (bad_line, _) in zip(errors, BAD_LINES):
        assert error["source"] == str(source.resolve())
        assert lines[error["line"] - 1] == bad_line
    assert (summary["annotated"], summary["rejected"]) == (len(records), len(BAD_LINES))
    assert [record["id"] for record in read_output(tmp_path / "out")] == list(range(len(records)))


def test_text_files_parquet_and_folders(nlp, all_in_one_path, texts, tmp_path):
    import pyarrow
    import pyarrow.parquet

    folder = tmp_path / "in"
    (folder / "b").mkdir(parents=True)
    (folder / "a.txt").write_text("\n".join(texts[:10]) + "\n\n")
    table = pyarrow.table({"body": texts[10:25], "n": list(range(15))})
    pyarrow.parquet.write_table(table, folder / "b" / "c.parquet", row_group_size=4)
    (folder / "notes.md").write_text("not an input file")
    run(all_in_one_path, folder, tmp_path / "out", shard_size=6, text_field="body", batch_size=1)
    expected = [{"body": text} for text in texts[:10]] + [{"body": text, "n": n} for n, text in enumerate(texts[10:25])]
    docs = nlp.pipe([record["body"] for record in expected], batch_size=1)
    assert read_output(tmp_path / "out") == [
        json.loads(json.dumps({**record, "annotations": doc_annotations(doc)})) for record, doc in zip(expected, docs)
    ]


def test_docbin_shards_hold_the_docs_and_the_records_other_fields(nlp, all_in_one_path, texts, tmp_path):
    records = write_corpus(tmp_path / "corpus.jsonl", texts[:20])
    run(all_in_one_path, tmp_path / "corpus.jsonl", tmp_path / "out", shard_size=7, output_format="docbin",
        batch_size=1)
    docs = read_docbin_output(tmp_path / "out")
    expected = list(nlp.pipe([record["text"] for record in records], batch_size=1))
    assert [doc_annotations(doc) for doc in docs] == [doc_annotations(doc) for doc in expected]
    assert [doc.user_data[RECORD_KEY] for doc in docs] == [{"id": r["id"], "source": r["source"]} for r in records]


def test_a_job_started_again_does_only_the_shards_not_done(all_in_one_path, texts, tmp_path):
    source = tmp_path / "corpus.jsonl"
    write_corpus(source, texts[:40], bad_every=10)
    run(all_in_one_path, source, tmp_path / "whole", shard_size=8)
    out = tmp_path / "out"
    run(all_in_one_path, source, out, shard_size=8)
    manifest = (out / MANIFEST_NAME).read_text().splitlines()
    # As a kill leaves it: two shards not recorded, one of them with its file
    # written, and the last line cut off.
    (out / "part-000004.jsonl").unlink()
    (out / MANIFEST_NAME).write_text("\n".join(manifest[:-2]) + "\n" + manifest[-2][:25])
    logged = []
    annotate(str(all_in_one_path), source, out, shard_size=8, progress=False, log=logged.append)
    assert "4 already done, 2 to do" in logged[0]
    assert shard_bytes(out) == shard_bytes(tmp_path / "whole")
    assert (out / "errors.jsonl").read_text() == (tmp_path / "whole" / "errors.jsonl").read_text()
    assert done_shards(out) == 6
    logged.clear()
    annotate(str(all_in_one_path), source, out, shard_size=8, progress=False, log=logged.append)
    assert "6 already done, 0 to do" in logged[0]


def test_a_killed_job_resumes_to_the_output_of_an_uninterrupted_one(all_in_one_path, texts, tmp_path):
    source = tmp_path / "corpus.jsonl"
    write_corpus(source, texts * 8, bad_every=50)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "spacy_mtl", "annotate", str(all_in_one_path), str(source), str(out),
               "--shard-size", "40"]
    kill_after(command, out, 2)
    n_shards = -(-len(source.read_bytes().splitlines()) // 40)
    assert 2 <= done_shards(out) < n_shards
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    run(all_in_one_path, source, tmp_path / "whole", shard_size=40)
    assert shard_bytes(out) == shard_bytes(tmp_path / "whole")
    assert done_shards(out) == n_shards
    assert not list(out.glob("*.tmp"))


@pytest.mark.parametrize("change, named", [({"shard_size": 5}, "shard_size 8"), ({"text_field": "body"}, "text_field")])
def test_other_arguments_on_the_same_folder_are_refused(all_in_one_path, texts, tmp_path, change, named):
    write_corpus(tmp_path / "corpus.jsonl", texts[:10])
    run(all_in_one_path, tmp_path / "corpus.jsonl", tmp_path / "out", shard_size=8)
    with pytest.raises(InputError, match=named):
        run(all_in_one_path, tmp_path / "corpus.jsonl", tmp_path / "out", **{"shard_size": 8, **change})


def test_a_changed_input_is_refused(all_in_one_path, texts, tmp_path):
    write_corpus(tmp_path / "corpus.jsonl", texts[:10])
    run(all_in_one_path, tmp_path / "corpus.jsonl", tmp_path / "out")
    write_corpus(tmp_path / "corpus.jsonl", texts[:12])
    with pytest.raises(InputError, match="input files changed"):
        run(all_in_one_path, tmp_path / "corpus.jsonl", tmp_path / "out")


def test_a_folder_with_other_files_is_not_written_into(all_in_one_path, texts, tmp_path):
    write_corpus(tmp_path / "corpus.jsonl", texts[:10])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    with pytest.raises(InputError, match="not empty and holds no manifest"):
        run(all_in_one_path, tmp_path / "corpus.jsonl", tmp_path / "out")
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["mine.txt"]


def test_the_ray_engine_without_ray_names_the_extra(all_in_one_path, texts, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    write_corpus(tmp_path / "corpus.jsonl", texts[:10])
    with pytest.raises(InputError, match=r'pip install "spacy-mtl\[ray\]"'):
        run(all_in_one_path, tmp_path / "corpus.jsonl", tmp_path / "out", engine="ray")
