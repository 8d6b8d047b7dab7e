"""The manifest of an annotation job: what makes it resumable.

`manifest.jsonl` in the output folder starts with the job (its settings and
input files); then a line per shard, appended after the shard's file is in
place. A shard is done when its line is there and its file exists; a job
started again with the same arguments does only the others. A line cut off
by a killed process is dropped."""
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List

from ..inputs import InputError
from .output import json_line, write_atomically

MANIFEST_NAME = "manifest.jsonl"
ERRORS_NAME = "errors.jsonl"


@dataclass(frozen=True)
class JobSettings:
    """Everything that decides what a job writes (not how fast)."""

    model: str
    input: str
    text_field: str
    output_field: str
    output_format: str
    shard_size: int


class Manifest:
    def __init__(self, folder: Path, settings: JobSettings, inputs: List[List[Any]], n_shards: int):
        self.folder = folder
        self.path = folder / MANIFEST_NAME
        self.header = {"job": asdict(settings), "inputs": inputs, "shards": n_shards}
        self.done: Dict[int, Dict[str, Any]] = {}
        if self.path.exists():
            self._resume()
        else:
            self._start()

    def _start(self) -> None:
        if self.folder.exists() and any(self.folder.iterdir()):
            raise InputError(f"{self.folder}: the output folder is not empty and holds no {MANIFEST_NAME}")
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json_line(self.header).encode("utf8"))

    def _resume(self) -> None:
        lines = self.path.read_text(encoding="utf8").split("\n")
        header = _parse(lines[0])
        if header != self.header:
            raise InputError(f"{self.path}: {_difference(header, self.header)}; use another output folder")
        entries = [entry for entry in map(_parse, lines[1:]) if entry is not None]
        self.done = {entry["shard"]: entry for entry in entries if (self.folder / entry["file"]).exists()}
        # Rewrite without a cut-off last line, so that appending starts on a new line.
        lines = [json_line(self.header)] + [json_line(entry) for entry in self.done.values()]
        write_atomically(self.path, "".join(lines).encode("utf8"))

    def add(self, entry: Dict[str, Any]) -> None:
        """Record a shard whose file is written."""
        with self.path.open("a", encoding="utf8") as file_:
            file_.write(json_line(entry))
            file_.flush()
            os.fsync(file_.fileno())
        self.done[entry["shard"]] = entry

    def write_errors(self) -> Path:
        """errors.jsonl: every rejected record of the job, in input order."""
        errors = [error for index in sorted(self.done) for error in self.done[index]["errors"]]
        path = self.folder / ERRORS_NAME
        write_atomically(path, "".join(json_line(error) for error in errors).encode("utf8"))
        return path

    def totals(self) -> Dict[str, int]:
        keys = ("records", "annotated", "rejected", "words")
        return {key: sum(entry[key] for entry in self.done.values()) for key in keys}


def _parse(line: str) -> Any:
    try:
        return json.loads(line) if line.strip() else None
    except json.JSONDecodeError:
        return None


def _difference(before: Any, now: Dict[str, Any]) -> str:
    if not isinstance(before, dict) or "job" not in before:
        return "not the manifest of an annotation job"
    for key, value in now["job"].items():
        if before["job"].get(key) != value:
            return f"the job there has {key} {before['job'].get(key)!r}, this one {value!r}"
    return "the input files changed since the job there began"
