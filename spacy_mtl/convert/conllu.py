"""CoNLL-U (Universal Dependencies): one sentence a Doc, one syntactic word a
token. XPOS goes to token.tag_, UPOS to token.pos_, the basic tree to
token.head / token.dep_ (the root gets dep "ROOT" and itself as head).

Multiword tokens (`3-4  don't`) are not tokens of their own: their words
are (`do`, `n't`), with no space between them and the multiword token's
SpaceAfter after the last. Empty nodes (`8.1`) belong to the enhanced graph
only and are skipped: the basic tree never points at them. A sentence whose
HEAD column is all `_` has no tree (a doc without dependency annotation)."""
from pathlib import Path
from functools import partial
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy
from spacy.tokens import Doc
from spacy.vocab import Vocab

from ..names import ROOT_LABEL
from ..trees import find_cycle as find_tree_cycle
from .common import sentence_blocks
from .errors import ConversionError
from .write import write_docbin

N_COLUMNS = 10
ID, FORM, LEMMA, UPOS, XPOS, FEATS, HEAD, DEPREL, DEPS, MISC = range(N_COLUMNS)
MISSING = "_"

Row = Tuple[int, List[str]]  # (line number, columns)


def read_conllu(path: Union[str, Path], vocab: Optional[Vocab] = None) -> Iterator[Doc]:
    docs = (build() for build in conllu_doc_builders(Path(path), vocab or Vocab()))
    return (doc for doc in docs if doc is not None)


def conllu_doc_builders(path: Path, vocab: Vocab) -> Iterator[Callable[[], Optional[Doc]]]:
    """One doc-building function a sentence: each raises its own errors (and
    gives None for a block of comments only)."""
    for block in sentence_blocks(path):
        yield partial(_conllu_doc, vocab, path, block)


def _conllu_doc(vocab: Vocab, path: Path, block: List[Tuple[int, str]]) -> Optional[Doc]:
    words: List[Row] = []
    multiword: Dict[int, Row] = {}  # first word id -> the multiword token's row
    for number, line in block:
        if line.startswith("#"):
            continue
        columns = line.split("\t")
        if len(columns) != N_COLUMNS:
            raise ConversionError(path, f"expected {N_COLUMNS} tab-separated columns, got {len(columns)}", number)
        token_id = columns[ID]
        if "." in token_id:
            continue
        if "-" in token_id:
            first, _, last = token_id.partition("-")
            if not (first.isdigit() and last.isdigit() and int(first) < int(last)):
                raise ConversionError(path, f"bad multiword token range '{token_id}'", number)
            multiword[int(first)] = (number, columns)
            continue
        if token_id != str(len(words) + 1):
            raise ConversionError(path, f"word ID '{token_id}', expected {len(words) + 1}", number)
        words.append((number, columns))
    return _make_doc(vocab, path, words, multiword) if words else None


def _make_doc(vocab: Vocab, path: Path, words: List[Row], multiword: Dict[int, Row]) -> Doc:
    spaces = _spaces(words, multiword)
    columns = [row for _, row in words]
    heads, deps = _tree(path, words)
    return Doc(
        vocab,
        words=[row[FORM] for row in columns],
        spaces=spaces,
        tags=[_value(row[XPOS]) for row in columns],
        pos=[_value(row[UPOS]) for row in columns],
        lemmas=[_value(row[LEMMA]) for row in columns],
        morphs=[_value(row[FEATS]) for row in columns],
        heads=heads,
        deps=deps,
    )


def _value(field: str) -> str:
    return "" if field == MISSING else field


def _space_after(columns: List[str]) -> bool:
    return "SpaceAfter=No" not in columns[MISC].split("|")


def _spaces(words: List[Row], multiword: Dict[int, Row]) -> List[bool]:
    spaces = [_space_after(row) for _, row in words]
    for first, (_, row) in multiword.items():
        last = int(row[ID].partition("-")[2])
        for word_id in range(first, min(last, len(words)) + 1):
            spaces[word_id - 1] = False
        if last <= len(words):
            spaces[last - 1] = _space_after(row)
    spaces[-1] = False  # a doc is one sentence: no trailing space
    return spaces


def _tree(path: Path, words: List[Row]) -> Tuple[Optional[List[int]], Optional[List[str]]]:
    """Absolute heads and labels; (None, None) for a sentence without a tree.
    A partial tree, a head out of range, no root or several, or a cycle is
    an error."""
    head_fields = [row[HEAD] for _, row in words]
    if all(field == MISSING for field in head_fields):
        return None, None
    heads, deps, roots = [], [], []
    for i, (number, row) in enumerate(words):
        field = row[HEAD]
        if not field.isdigit() or int(field) > len(words):
            raise ConversionError(path, f"HEAD '{field}' is not a word of this sentence (1-{len(words)} or 0)", number)
        if not row[DEPREL] or row[DEPREL] == MISSING:
            raise ConversionError(path, "DEPREL is missing", number)
        head = int(field) - 1
        if head == i:
            raise ConversionError(path, "a word is its own head", number)
        if head < 0:
            roots.append(number)
            heads.append(i)
            deps.append(ROOT_LABEL)
        else:
            heads.append(head)
            deps.append(row[DEPREL])
    if len(roots) != 1:
        where = words[0][0] if not roots else roots[1]
        raise ConversionError(path, f"the sentence has {len(roots)} roots (HEAD 0), expected 1", where)
    cycle = find_cycle(heads)
    if cycle is not None:
        raise ConversionError(path, "the tree has a cycle through this word", words[cycle][0])
    return heads, deps


def find_cycle(heads: List[int]) -> Optional[int]:
    """A word on a cycle of a head list (the root is its own head), or None."""
    # The tree decoder's form: node 0 an artificial root, words from 1.
    rooted = numpy.array([0] + [0 if head == i else head + 1 for i, head in enumerate(heads)])
    cycle = find_tree_cycle(rooted)
    return None if cycle is None else cycle[0] - 1


def convert_conllu(in_path: Union[str, Path], out_path: Union[str, Path]) -> int:
    """Convert a CoNLL-U file to a .spacy file; returns the number of docs.
    Everything is checked before anything is written."""
    return write_docbin(list(read_conllu(in_path)), out_path, in_path)
