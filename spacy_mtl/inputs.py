"""Reading what a user names on the command line: a pipeline, a DocBin, a
text file. Each mistake (a missing path, a file of another kind, a damaged
model, nothing to read) is an InputError whose message is one line that
names the path and the problem."""
from pathlib import Path
from typing import List, Union

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab


class InputError(ValueError):
    """A path given by the user that cannot be used, and why, in one line."""


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_pipeline(model: Union[str, Path]) -> Language:
    """spacy.load, with a one-line InputError for a missing or damaged pipeline."""
    check_pipeline(model)
    try:
        return spacy.load(model)
    except Exception as err:  # missing or truncated weights, an unknown factory, ...
        raise InputError(f"{model}: the pipeline cannot be loaded ({type(err).__name__}: {first_line(err)})") from err


def check_pipeline(model: Union[str, Path]) -> None:
    """An InputError unless `model` is a pipeline folder with a readable
    config or an installed pipeline package (the weights are not read)."""
    path = Path(model)
    if path.is_dir():
        config_path = path / "config.cfg"
        if not config_path.is_file():
            raise InputError(f"{path}: not a spaCy pipeline folder (no config.cfg)")
        try:
            spacy.util.load_config(config_path)
        except Exception as err:
            raise InputError(f"{config_path}: damaged config ({first_line(err)})") from err
    elif not spacy.util.is_package(str(model)):
        raise InputError(f"{model}: no such pipeline folder or installed pipeline package")


def read_docbin(path: Path, vocab: Vocab) -> List[Doc]:
    """The docs of a .spacy file; an InputError if it is missing, not a
    DocBin, or holds no docs."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        docs = list(DocBin().from_disk(path).get_docs(vocab))
    except Exception as err:
        raise InputError(f"{path}: not a .spacy (DocBin) file") from err
    if not docs:
        raise InputError(f"{path}: holds no docs")
    return docs


def read_text_lines(path: Path) -> List[str]:
    """The non-blank lines of a UTF-8 text file; an InputError if it is
    missing, undecodable or blank."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start})") from err
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        raise InputError(f"{path}: holds no text")
    return lines
