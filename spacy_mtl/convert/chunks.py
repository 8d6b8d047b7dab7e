"""The CoNLL-2000 chunking format: one token a line, `word POS chunk`
(IOB2 chunk tags), a blank line between sentences."""
from pathlib import Path
from functools import partial
from typing import Callable, Iterator, List, Optional, Tuple, Union

from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from ..names import CHUNKS_KEY
from .common import bio_spans, sentence_blocks
from .errors import ConversionError
from .write import write_docbin

def read_chunks(path: Union[str, Path], vocab: Optional[Vocab] = None) -> Iterator[Doc]:
    """Docs with PTB tags in token.tag_ and the chunks in doc.spans["chunks"]."""
    return (build() for build in chunk_doc_builders(Path(path), vocab or Vocab()))


def chunk_doc_builders(path: Path, vocab: Vocab) -> Iterator[Callable[[], Doc]]:
    """One doc-building function a sentence: each raises its own errors."""
    for block in sentence_blocks(path):
        yield partial(_chunk_doc, vocab, path, block)


def _chunk_doc(vocab: Vocab, path: Path, block: List[Tuple[int, str]]) -> Doc:
    rows = [line.split() for _, line in block]
    for (number, _), fields in zip(block, rows):
        if len(fields) != 3:
            raise ConversionError(path, f"expected 3 columns (word POS chunk), got {len(fields)}", number)
    words, tags, chunk_tags = zip(*rows)
    doc = Doc(vocab, words=list(words), tags=list(tags))
    line_numbers = [number for number, _ in block]
    spans = bio_spans(list(chunk_tags), path, line_numbers[0], token_lines=line_numbers)
    doc.spans[CHUNKS_KEY] = [Span(doc, start, end, label=label) for start, end, label in spans]
    return doc


def convert_chunks(in_path: Union[str, Path], out_path: Union[str, Path]) -> int:
    """Convert a CoNLL-2000 file to a .spacy file; returns the number of docs.
    Everything is checked before anything is written."""
    return write_docbin(list(read_chunks(in_path)), out_path, in_path)
