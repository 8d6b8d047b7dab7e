"""Training machinery: readers that mix corpora, batching, freezing encoder
parameters, the console logger (and task loss weighting, from
spacy_mtl.weighting)."""
from .batchers import batch_by_padded, configure_batch_by_padded, create_wordpiece_length
from .corpus import MultiCorpus, create_multi_corpus
from .freezing import create_freeze_parameters
from .logger import create_console_logger
from ..weighting import LossWeighting, create_loss_weighting

__all__ = [
    "LossWeighting", "MultiCorpus", "batch_by_padded", "configure_batch_by_padded",
    "create_console_logger", "create_freeze_parameters", "create_loss_weighting",
    "create_multi_corpus", "create_wordpiece_length",
]
