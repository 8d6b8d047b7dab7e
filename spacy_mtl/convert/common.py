"""Reading line-based corpus files and IOB2 tags."""
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from .errors import ConversionError


def read_lines(path: Path) -> List[str]:
    """Lines of a UTF-8 file. Split on "\\n" only: str.splitlines() would also
    split inside an utterance on characters such as U+2028 or U+0085."""
    if not path.is_file():
        raise ConversionError(path, "file not found")
    try:
        text = path.read_text(encoding="utf8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ConversionError(path, f"not valid UTF-8 ({err.reason})", line) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def bio_spans(tags: List[str], path: Path, line: int, token_lines: Optional[Sequence[int]] = None) -> List[tuple]:
    """(start, end, label) of an IOB2 sequence; an error for any tag that is
    not O, B-x or I-x, and for an I-x that does not continue a B-x or I-x.
    Errors name `line`, or the token's own line where `token_lines` gives one
    per token (formats with a token a line)."""
    spans = []
    for i, tag in enumerate(tags):
        if token_lines is not None:
            line = token_lines[i]
        prefix, _, label = tag.partition("-")
        if tag == "O":
            continue
        if prefix not in ("B", "I") or not label:
            raise ConversionError(path, f"token {i + 1}: '{tag}' is not an IOB2 tag (O, B-type, I-type)", line)
        if prefix == "B":
            spans.append([i, i + 1, label])
        elif spans and spans[-1][1] == i and spans[-1][2] == label:
            spans[-1][1] = i + 1
        else:
            raise ConversionError(
                path, f"token {i + 1}: '{tag}' does not continue a B-{label} or I-{label} (not IOB2)", line
            )
    return [tuple(span) for span in spans]


def sentence_blocks(path: Path) -> Iterator[List[Tuple[int, str]]]:
    """(1-based line number, line) of the lines of each blank-line separated
    block: a sentence in the CoNLL formats."""
    block: List[Tuple[int, str]] = []
    for number, line in enumerate(read_lines(path), start=1):
        if line.strip():
            block.append((number, line))
        elif block:
            yield block
            block = []
    if block:
        yield block
