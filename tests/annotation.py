"""Inputs and readers for the tests of `spacy-mtl annotate`."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import List

import spacy
from spacy.tokens import Doc, DocBin

from spacy_mtl.annotate import doc_annotations
from spacy_mtl.annotate.manifest import MANIFEST_NAME
from spacy_mtl.annotate.output import json_line

# (line, reason) of each bad record that write_corpus puts in.
BAD_LINES = [
    (b"{not json", "invalid JSON"),
    (json.dumps({"id": -1}).encode(), "no 'text' field"),
    (json.dumps({"text": 7}).encode(), "'text' is a int, not a string"),
    (json.dumps({"text": "   "}).encode(), "empty text in 'text'"),
    (b'{"text": "caf\xe9"}', "not UTF-8"),
    (json.dumps(["a", "list"]).encode(), "a JSON list, not an object"),
]


def corpus_texts(snips_docs, conll04_sample, cascade_docs) -> List[str]:
    _, sentences = conll04_sample
    return (
        [doc.text for doc in snips_docs]
        + [" ".join(sentence["tokens"]) for sentence in sentences]
        + [doc.text for doc in cascade_docs]
    )


def write_corpus(path: Path, texts: List[str], bad_every: int = 0) -> List[dict]:
    """A JSON Lines file of records {"id", "text", "source"}, with a blank
    line and, every bad_every records, the next bad line of BAD_LINES.
    Returns the valid records in order."""
    records, lines, bad = [], [], 0
    for i, text in enumerate(texts):
        record = {"id": i, "text": text, "source": {"corpus": "fixtures", "n": i}}
        records.append(record)
        lines.append(json.dumps(record).encode())
        if bad_every and i % bad_every == bad_every - 1 and bad < len(BAD_LINES):
            lines.append(BAD_LINES[bad][0])
            bad += 1
    lines.insert(1, b"")
    path.write_bytes(b"\n".join(lines) + b"\n")
    return records


def read_output(folder: Path) -> List[dict]:
    """The records of every JSON Lines shard, in shard order."""
    return [json.loads(line) for path in sorted(folder.glob("part-*.jsonl")) for line in path.read_text().splitlines()]


def read_docbin_output(folder: Path) -> List[Doc]:
    vocab = spacy.blank("en").vocab
    return [doc for path in sorted(folder.glob("part-*.spacy")) for doc in DocBin().from_disk(path).get_docs(vocab)]


def expected_output(nlp, records: List[dict]) -> List[dict]:
    """What a plain nlp.pipe loop gives: each record with its annotations.
    A doc at a time, as the jobs of the tests run: in a batch, a doc's
    scores change in the last digits with the other docs' padding."""
    docs = nlp.pipe([record["text"] for record in records], batch_size=1)
    return [json.loads(json_line({**record, "annotations": doc_annotations(doc)})) for record, doc in zip(records, docs)]


def done_shards(folder: Path) -> int:
    path = folder / MANIFEST_NAME
    return len(path.read_text().splitlines()) - 1 if path.exists() else 0


def shard_bytes(folder: Path) -> dict:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("part-*"))}


def kill_after(command: List[str], output: Path, n_shards: int) -> None:
    """Start an annotation command, and kill it (SIGKILL) once it has
    finished n_shards shards."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while done_shards(output) < n_shards and process.poll() is None:
            time.sleep(0.01)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
