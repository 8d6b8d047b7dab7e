"""spacy-mtl: multi-task learning for spaCy pipelines."""
from . import ml, pipeline, scoring  # noqa: F401  (registers factories and architectures)

__version__ = "0.1.0"
