import os
import tempfile
from pathlib import Path
from typing import Iterable, Union

from spacy.tokens import Doc, DocBin

from .errors import ConversionError


def write_docbin(docs: Iterable[Doc], path: Union[str, Path], source: Union[str, Path]) -> int:
    """Write docs to a .spacy file through a temporary file and a rename, so
    a failure part-way leaves no half-written output. Returns the doc count.
    No docs at all is an error: `source`, the input they came from, holds no
    sentence."""
    path = Path(path)
    docs = list(docs)
    if not docs:
        raise ConversionError(source, "no sentences found; nothing written")
    path.parent.mkdir(parents=True, exist_ok=True)
    doc_bin = DocBin(attrs=["ORTH", "TAG", "POS", "LEMMA", "MORPH", "HEAD", "DEP", "ENT_IOB", "ENT_TYPE", "SENT_START"], store_user_data=True)
    for doc in docs:
        doc_bin.add(doc)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file_:
            file_.write(doc_bin.to_bytes())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return len(doc_bin)
