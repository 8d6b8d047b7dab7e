"""Input records of an annotation job, and the shards they are cut into.

An input is a text file (a document a line), a JSON Lines file (an object a
line, with a text field), a Parquet file (a row a record), or a folder of
such files. The job cuts every file into shards of `shard_size` lines (rows)
in a fixed order, so that a shard is the same records every time the job is
started: the shard is the unit of work, of output and of resumption. Blank
lines are not records; every other line is, and either becomes a document or
is rejected with its file, line and reason."""
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Union

from ..inputs import InputError

TEXT_SUFFIXES = (".txt", ".text")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet",)


@dataclass(frozen=True)
class ShardTask:
    """Records first_line .. first_line + n_lines - 1 (1-based lines or
    rows) of one input file; `offset` is the byte where the first starts."""

    index: int
    path: str
    kind: str
    first_line: int
    n_lines: int
    offset: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ShardTask":
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Rejected:
    """A record that is not annotated, and why."""

    source: str
    line: int
    reason: str


Record = Union[Dict[str, Any], Rejected]


def file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    return "jsonl" if suffix in JSONL_SUFFIXES else "text"


def input_files(path: Path) -> List[Path]:
    """The file, or the text, JSON Lines and Parquet files under the folder
    (sorted by path, so that the order, and so the shards, never change)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"{path}: no such file or folder")
    suffixes = TEXT_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"{path}: no input files ({', '.join(suffixes)}) in the folder")
    return files


def plan_shards(files: List[Path], shard_size: int) -> List[ShardTask]:
    """Every file cut into shards of shard_size lines (rows), numbered in order."""
    if shard_size < 1:
        raise InputError(f"shard size {shard_size}: must be at least 1")
    tasks: List[ShardTask] = []
    for path in files:
        kind = file_kind(path)
        ranges = _row_ranges(_row_count(path), shard_size) if kind == "parquet" else _line_ranges(path, shard_size)
        for first, n_lines, offset in ranges:
            tasks.append(ShardTask(len(tasks), str(path.resolve()), kind, first, n_lines, offset))
    return tasks


def _line_ranges(path: Path, shard_size: int) -> Iterator[tuple]:
    """(first line, number of lines, byte offset) of each shard of a file."""
    first, offset, n_lines, position = 1, 0, 0, 0
    with path.open("rb") as file_:
        for line in file_:
            if n_lines == shard_size:
                yield first, n_lines, offset
                first, offset, n_lines = first + n_lines, position, 0
            n_lines += 1
            position += len(line)
    if n_lines:
        yield first, n_lines, offset


def _row_ranges(n_rows: int, shard_size: int) -> Iterator[tuple]:
    for start in range(0, n_rows, shard_size):
        yield start + 1, min(shard_size, n_rows - start), 0


def _row_count(path: Path) -> int:
    parquet = _import_parquet()
    try:
        return parquet.ParquetFile(path).metadata.num_rows
    except Exception as err:
        raise InputError(f"{path}: not a Parquet file ({err})") from err


def _import_parquet():
    try:
        import pyarrow.parquet as parquet
    except ImportError as err:
        raise InputError('reading Parquet needs pyarrow: pip install pyarrow (or "spacy-mtl[ray]")') from err
    return parquet


def read_shard(task: ShardTask, text_field: str, output_field: str) -> Iterator[Record]:
    """The shard's records in order: a dict for each valid record, a
    Rejected for each invalid one; blank lines are skipped."""
    if task.kind == "parquet":
        rows = enumerate(_parquet_rows(task), start=task.first_line)
        for line, row in rows:
            yield _checked(row, task.path, line, text_field, output_field)
        return
    with open(task.path, "rb") as file_:
        file_.seek(task.offset)
        for line in range(task.first_line, task.first_line + task.n_lines):
            raw = file_.readline()
            if raw.strip():
                yield _parse_line(raw, task, line, text_field, output_field)


def _parse_line(raw: bytes, task: ShardTask, line: int, text_field: str, output_field: str) -> Record:
    try:
        text = raw.decode("utf8").rstrip("\r\n")
    except UnicodeDecodeError as err:
        return Rejected(task.path, line, f"not UTF-8 (byte {err.start} of the line)")
    if task.kind == "text":
        return _checked({text_field: text}, task.path, line, text_field, output_field)
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        return Rejected(task.path, line, f"invalid JSON ({err.msg} at column {err.colno})")
    return _checked(record, task.path, line, text_field, output_field)


def _checked(record: Any, source: str, line: int, text_field: str, output_field: str) -> Record:
    if not isinstance(record, dict):
        return Rejected(source, line, f"a JSON {type(record).__name__}, not an object")
    if text_field not in record:
        return Rejected(source, line, f"no '{text_field}' field")
    text = record[text_field]
    if not isinstance(text, str):
        return Rejected(source, line, f"'{text_field}' is a {type(text).__name__}, not a string")
    if not text.strip():
        return Rejected(source, line, f"empty text in '{text_field}'")
    if output_field in record:
        return Rejected(source, line, f"the record already has a '{output_field}' field")
    return record


def _parquet_rows(task: ShardTask) -> Iterator[Dict[str, Any]]:
    """Rows first_line .. of the file, reading only the row groups they lie in."""
    parquet_file = _import_parquet().ParquetFile(task.path)
    start, stop = task.first_line - 1, task.first_line - 1 + task.n_lines
    group_start = 0
    for group in range(parquet_file.num_row_groups):
        group_rows = parquet_file.metadata.row_group(group).num_rows
        group_stop = group_start + group_rows
        if group_stop > start and group_start < stop:
            table = parquet_file.read_row_group(group)
            low, high = max(start, group_start) - group_start, min(stop, group_stop) - group_start
            yield from table.slice(low, high - low).to_pylist()
        group_start = group_stop
