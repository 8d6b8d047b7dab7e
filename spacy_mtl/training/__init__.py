"""Training machinery: readers that mix corpora, task loss weighting."""
from .corpus import MultiCorpus, create_multi_corpus
from .weighting import LossWeighting, create_console_logger, create_loss_weighting

__all__ = ["LossWeighting", "MultiCorpus", "create_console_logger", "create_loss_weighting", "create_multi_corpus"]
