"""Annotating corpora with a pipeline, on one process or on a Ray cluster:
`spacy-mtl annotate`."""
from .job import ENGINES, annotate
from .output import OUTPUT_FORMATS, doc_annotations

__all__ = ["ENGINES", "OUTPUT_FORMATS", "annotate", "doc_annotations"]
