"""A pipeline component that hands freed heap memory back to the system."""
import ctypes
import ctypes.util
from functools import lru_cache
from typing import Callable, Optional

from spacy.language import Language
from spacy.tokens import Doc


@lru_cache(maxsize=1)
def malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's malloc_trim, or None where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


@Language.factory("release_memory", default_config={"every_n_docs": 64})
def make_release_memory(nlp: Language, name: str, every_n_docs: int) -> "ReleaseMemory":
    return ReleaseMemory(name, every_n_docs=every_n_docs)


class ReleaseMemory:
    """Every `every_n_docs` docs, asks glibc to return the free pages of its
    heap to the system (malloc_trim). glibc keeps a freed large block in the
    heap for reuse (its mmap threshold rises to the largest block freed), and
    batches of other shapes then fragment that heap: without this, resident
    memory creeps up over the first passes of a long stream. Put it last in
    the pipeline; elsewhere than glibc it does nothing."""

    def __init__(self, name: str, *, every_n_docs: int):
        if every_n_docs < 1:
            raise ValueError(f"release_memory: every_n_docs must be at least 1, got {every_n_docs}")
        self.name = name
        self.every_n_docs = every_n_docs
        self.n_docs = 0

    def __call__(self, doc: Doc) -> Doc:
        self.n_docs += 1
        if self.n_docs >= self.every_n_docs:
            self.n_docs = 0
            trim = malloc_trim()
            if trim is not None:
                trim(0)
        return doc
