"""Check a training data file without converting it: every malformed
sentence is reported with its file and line, not only the first."""
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

from spacy.tokens import Doc
from spacy.vocab import Vocab

from .chunks import chunk_doc_builders
from .conllu import conllu_doc_builders
from .errors import ConversionError
from .relations import spert_doc_builders
from .slu import slu_doc_builders

DocBuilders = Callable[[Path, Vocab], Iterator[Callable[[], Optional[Doc]]]]
FORMATS: Dict[str, DocBuilders] = {
    "slu": slu_doc_builders,
    "relations": spert_doc_builders,
    "chunks": chunk_doc_builders,
    "conllu": conllu_doc_builders,
}


def detect_format(path: Path) -> str:
    """slu for a folder (seq.in ...), relations for .json, conllu for
    .conllu/.conll, chunks (CoNLL-2000) otherwise."""
    if path.is_dir():
        return "slu"
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "relations"
    if suffix in (".conllu", ".conll"):
        return "conllu"
    return "chunks"


def validate(path: Union[str, Path], data_format: Optional[str] = None, max_errors: int = 100) -> Tuple[int, List[ConversionError]]:
    """(number of valid docs, errors). A file-level error (missing file,
    line counts that differ, invalid JSON) ends the check."""
    path = Path(path)
    data_format = data_format or detect_format(path)
    if data_format not in FORMATS:
        raise ValueError(f"Unknown format '{data_format}'; known: {', '.join(FORMATS)}")
    n_docs, errors = 0, []
    try:
        for build in FORMATS[data_format](path, Vocab()):
            try:
                n_docs += build() is not None
            except ConversionError as err:
                errors.append(err)
                if len(errors) >= max_errors:
                    break
    except ConversionError as err:
        errors.append(err)
    return n_docs, errors
