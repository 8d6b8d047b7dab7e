"""Readers of the field's standard formats, written out as spaCy DocBin."""
from .errors import ConversionError
from .relations import convert_relations, read_spert
from .slu import convert_slu, read_slu
from .write import write_docbin

__all__ = ["ConversionError", "convert_relations", "convert_slu", "read_slu", "read_spert", "write_docbin"]
