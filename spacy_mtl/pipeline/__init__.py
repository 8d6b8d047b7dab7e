from .cascade import Cascade, make_cascade
from .ner_re import NerRe, make_ner_re
from .slot_intent import SlotIntent, make_slot_intent

__all__ = ["Cascade", "NerRe", "SlotIntent", "make_cascade", "make_ner_re", "make_slot_intent"]
