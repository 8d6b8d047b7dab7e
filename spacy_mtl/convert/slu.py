"""The seq.in / seq.out / label format of ATIS and SNIPS (Goo et al. 2018):
one utterance a line; words, IOB2 slot tags and the intent on the same line
of three files. `a#b` in `label` is a multi-intent utterance."""
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from ..names import SLOTS_KEY
from .errors import ConversionError
from .common import bio_spans, read_lines
from .write import write_docbin

WORDS_FILE, TAGS_FILE, INTENT_FILE = "seq.in", "seq.out", "label"


def read_slu(in_dir: Union[str, Path], vocab: Optional[Vocab] = None) -> Iterator[Doc]:
    """Docs with the intent in doc.cats ({label: 1.0}) and the slots in
    doc.spans["slots"]. `seq.in` is required; a folder without `seq.out` or
    without `label` gives docs not annotated for slots or for intent."""
    return (build() for build in slu_doc_builders(Path(in_dir), vocab or Vocab()))


def slu_doc_builders(in_dir: Path, vocab: Vocab) -> Iterator[Callable[[], Doc]]:
    """One doc-building function an utterance: each raises its own errors."""
    words_path = in_dir / WORDS_FILE
    if not words_path.is_file():
        raise ConversionError(words_path, "file not found (expected seq.in, seq.out and label)")
    word_lines = read_lines(words_path)
    columns = {}
    for name in (TAGS_FILE, INTENT_FILE):
        path = in_dir / name
        if path.is_file():
            lines = read_lines(path)
            if len(lines) != len(word_lines):
                line = min(len(lines), len(word_lines)) + 1
                raise ConversionError(
                    path, f"{len(lines)} lines, but {words_path.name} has {len(word_lines)}", line
                )
            columns[name] = (path, lines)
    if not columns:
        raise ConversionError(in_dir, "neither seq.out (slots) nor label (intent) found")
    for i, word_line in enumerate(word_lines):
        yield partial(_make_doc, vocab, words_path, word_line, columns, i)


def _make_doc(vocab: Vocab, words_path: Path, word_line: str, columns: dict, index: int) -> Doc:
    line = index + 1
    words = word_line.split()
    if not words:
        raise ConversionError(words_path, "empty utterance", line)
    doc = Doc(vocab, words=words)
    if TAGS_FILE in columns:
        path, lines = columns[TAGS_FILE]
        tags = lines[index].split()
        if len(tags) != len(words):
            raise ConversionError(path, f"{len(tags)} tags for the {len(words)} words of {words_path.name}", line)
        spans = [Span(doc, start, end, label=label) for start, end, label in bio_spans(tags, path, line)]
        doc.spans[SLOTS_KEY] = spans
    if INTENT_FILE in columns:
        path, lines = columns[INTENT_FILE]
        intent = lines[index].strip()
        if not intent or len(intent.split()) > 1:
            raise ConversionError(path, f"expected one intent label, got '{intent}'", line)
        doc.cats = {intent: 1.0}
    return doc


def convert_slu(in_dir: Union[str, Path], out_path: Union[str, Path]) -> int:
    """Convert a seq.in/seq.out/label folder to a .spacy file; returns the
    number of docs. Everything is checked before anything is written."""
    docs = list(read_slu(in_dir))
    return write_docbin(docs, out_path, Path(in_dir) / "seq.in")
