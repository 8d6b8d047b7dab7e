"""Training machinery: readers that mix corpora."""
from .corpus import MultiCorpus, create_multi_corpus

__all__ = ["MultiCorpus", "create_multi_corpus"]
