from .cascade import Cascade, make_cascade
from .corpus_adversary import CorpusAdversary, make_corpus_adversary
from .mlm_aux import MaskedLMAux, make_mlm_aux
from .ner_re import NerRe, make_ner_re
from .release_memory import ReleaseMemory, make_release_memory
from .slot_intent import SlotIntent, make_slot_intent

__all__ = [
    "Cascade", "CorpusAdversary", "MaskedLMAux", "NerRe", "ReleaseMemory", "SlotIntent",
    "make_cascade", "make_corpus_adversary", "make_mlm_aux", "make_ner_re", "make_release_memory", "make_slot_intent",
]
