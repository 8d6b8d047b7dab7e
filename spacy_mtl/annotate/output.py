"""What an annotation job writes: a shard file per input shard, each written
whole or not at all (a temporary file renamed into place), as JSON Lines
(each input record with its annotations added) or as a DocBin."""
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple

from spacy.tokens import Doc, DocBin

from ..names import RECORD_KEY
from ..relations import get_relation_rows, has_relations_annotation

OUTPUT_FORMATS = {"jsonl": ".jsonl", "docbin": ".spacy"}


def doc_annotations(doc: Doc) -> Dict[str, Any]:
    """Doc.to_json without the text (the record holds it), plus the
    relations: character offsets into the text throughout."""
    data = doc.to_json()
    del data["text"]
    if has_relations_annotation(doc):
        data["relations"] = [_relation_json(doc, row) for row in get_relation_rows(doc)]
    return data


def _relation_json(doc: Doc, row: tuple) -> Dict[str, Any]:
    head_start, head_end, head_label, tail_start, tail_end, tail_label, label, score = row
    return {
        "head": _span_json(doc, head_start, head_end, head_label),
        "tail": _span_json(doc, tail_start, tail_end, tail_label),
        "label": label,
        "score": score,
    }


def _span_json(doc: Doc, start: int, end: int, label: str) -> Dict[str, Any]:
    return {"start": doc[start].idx, "end": doc[end - 1].idx + len(doc[end - 1]), "label": label}


def shard_file_name(index: int, output_format: str) -> str:
    return f"part-{index:06d}{OUTPUT_FORMATS[output_format]}"


def json_line(data: Dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, default=_plain) + "\n"


def _plain(value: Any) -> Any:
    """numpy scalars as numbers; anything else JSON lacks (dates, bytes) as text."""
    return value.item() if hasattr(value, "item") else str(value)


def write_shard(
    path: Path, annotated: Iterable[Tuple[Dict[str, Any], Doc]], output_format: str, text_field: str, output_field: str
) -> None:
    """Write (record, doc) pairs in order: the record with its annotations
    under output_field, or the doc with the record's other fields in
    doc.user_data[RECORD_KEY]."""
    if output_format == "jsonl":
        lines: List[str] = [json_line({**record, output_field: doc_annotations(doc)}) for record, doc in annotated]
        write_atomically(path, "".join(lines).encode("utf8"))
        return
    docbin = DocBin(store_user_data=True)
    for record, doc in annotated:
        others = {key: value for key, value in record.items() if key != text_field}
        doc.user_data[RECORD_KEY] = json.loads(json.dumps(others, default=_plain))
        docbin.add(doc)
    write_atomically(path, docbin.to_bytes())


def write_atomically(path: Path, data: bytes) -> None:
    """A reader (or a resumed job) sees the old file or the whole new one,
    never a part."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as file_:
        file_.write(data)
        file_.flush()
        os.fsync(file_.fileno())
    os.replace(temporary, path)
