"""Readers of the field's standard formats, written out as spaCy DocBin."""
from .errors import ConversionError
from .slu import convert_slu, read_slu
from .write import write_docbin

__all__ = ["ConversionError", "convert_slu", "read_slu", "write_docbin"]
