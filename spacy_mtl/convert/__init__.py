"""Readers of the field's standard formats, written out as spaCy DocBin."""
from .chunks import convert_chunks, read_chunks
from .conllu import convert_conllu, read_conllu
from .errors import ConversionError
from .relations import convert_relations, read_spert
from .slu import convert_slu, read_slu
from .write import write_docbin

__all__ = [
    "ConversionError",
    "convert_chunks",
    "convert_conllu",
    "convert_relations",
    "convert_slu",
    "read_chunks",
    "read_conllu",
    "read_slu",
    "read_spert",
    "write_docbin",
]
