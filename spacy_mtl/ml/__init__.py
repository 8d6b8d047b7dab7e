from .adversary import build_corpus_adversary
from .cascade import build_cascade_model
from .casing import build_with_casing
from .encoders import build_all_layers_transformer, packaged_model
from .heads import build_sequence_classifier, build_soft_label_embedding, build_token_classifier
from .listener import build_transformer_listener
from .mlm import build_masked_lm_head
from .ner_re import build_ner_re_model, build_span_pair_scorer
from .slot_intent import build_slot_intent_model

__all__ = [
    "build_corpus_adversary",
    "build_masked_lm_head",
    "build_all_layers_transformer",
    "build_cascade_model",
    "build_ner_re_model",
    "build_sequence_classifier",
    "build_slot_intent_model",
    "build_soft_label_embedding",
    "build_span_pair_scorer",
    "build_token_classifier",
    "build_transformer_listener",
    "build_with_casing",
    "packaged_model",
]
