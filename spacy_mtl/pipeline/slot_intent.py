"""`slot_intent`: joint intent classification and slot filling."""
from itertools import islice
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

import numpy
from spacy.language import Language
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats2d

from ..ml.decoding import batch_constrained_viterbi, bio_tag_names, bio_to_spans, bio_transitions, spans_to_bio
from ..ml.heads import OUTPUT_LAYER
from ..ml.ops import use_torch_blas
from ..names import SLOTS_KEY
from ..scoring import gold_intents, intent_label, score_slot_intent
from .base import TRANSFORMER_LISTENER_CONFIG, MultiTaskPipe
from .labels import initial_labels
from .util import EPSILON, LabelIds, aligned_spans, softmax_per_doc, to_numpy_per_doc, token_cross_entropy

default_model_config = """
[model]
@architectures = "spacy_mtl.SlotIntentModel.v1"
intent_to_slots = true
""" + TRANSFORMER_LISTENER_CONFIG + """
[model.intent_head]
@architectures = "spacy_mtl.SequenceClassifier.v1"
hidden_width = 0
dropout = 0.1

[model.slot_head]
@architectures = "spacy_mtl.TokenClassifier.v1"
hidden_width = 0
dropout = 0.1

[model.label_embedding]
@architectures = "spacy_mtl.SoftLabelEmbedding.v1"
width = 32
"""
DEFAULT_MODEL = Config().from_str(default_model_config)["model"]


@Language.factory(
    "slot_intent",
    assigns=["doc.cats", "doc.spans"],
    default_config={
        "model": DEFAULT_MODEL,
        "multi_label": False,
        "threshold": 0.5,
        "slots_weight": 1.0,
        "intent_weight": 1.0,
        "heads_learn_rate_scale": 1.0,
        "weigh_docs_equally": False,
        "spans_key": SLOTS_KEY,
        "scorer": {"@scorers": "spacy_mtl.slot_intent_scorer.v1"},
    },
    default_score_weights={
        "sent_acc": 0.5,
        "slot_f": 0.3,
        "intent_acc": 0.2,
        "slot_p": None,
        "slot_r": None,
    },
)
def make_slot_intent(
    nlp: Language,
    name: str,
    model: Model,
    multi_label: bool,
    threshold: float,
    slots_weight: float,
    intent_weight: float,
    heads_learn_rate_scale: float,
    weigh_docs_equally: bool,
    spans_key: str,
    scorer: Optional[Callable],
) -> "SlotIntent":
    """Joint intent classifier and slot filler over a shared encoder.

    multi_label (bool): False: every intent string (`a#b` included) is one
        class of a softmax. True: `a#b` is the set {a, b}, one sigmoid per
        atomic intent, and every intent over `threshold` is predicted.
    slots_weight, intent_weight (float): weights of the two losses; they scale
        each head's gradient, and so its share of the shared encoder's update.
    heads_learn_rate_scale (float): the learning rate of the component's own
        parameters relative to the optimizer's (the shared transformer keeps
        the optimizer's rate).
    weigh_docs_equally (bool): scale each head's gradient by the batch's
        docs with its gold over their running mean, so that a doc counts the
        same in a batch with few of its kind as in one with many.
    spans_key (str): the span group the slots are read from and written to.
    """
    return SlotIntent(
        nlp.vocab,
        model,
        name,
        multi_label=multi_label,
        threshold=threshold,
        slots_weight=slots_weight,
        intent_weight=intent_weight,
        heads_learn_rate_scale=heads_learn_rate_scale,
        weigh_docs_equally=weigh_docs_equally,
        spans_key=spans_key,
        scorer=scorer,
    )


@registry.scorers("spacy_mtl.slot_intent_scorer.v1")
def make_slot_intent_scorer() -> Callable:
    return score_slot_intent


class SlotIntent(MultiTaskPipe):
    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "slot_intent",
        *,
        multi_label: bool = False,
        threshold: float = 0.5,
        slots_weight: float = 1.0,
        intent_weight: float = 1.0,
        heads_learn_rate_scale: float = 1.0,
        weigh_docs_equally: bool = False,
        spans_key: str = SLOTS_KEY,
        scorer: Optional[Callable] = score_slot_intent,
    ) -> None:
        self.vocab = vocab
        self.model = use_torch_blas(model)
        self.name = name
        self.scorer = scorer
        self.cfg = {
            "intents": [],
            "slot_labels": [],
            "multi_label": multi_label,
            "threshold": threshold,
            "slots_weight": slots_weight,
            "intent_weight": intent_weight,
            "heads_learn_rate_scale": heads_learn_rate_scale,
            "weigh_docs_equally": weigh_docs_equally,
            "spans_key": spans_key,
        }
        self.model.attrs["multi_label"] = multi_label

    @property
    def intents(self) -> Tuple[str, ...]:
        return tuple(self.cfg["intents"])

    @property
    def slot_labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["slot_labels"])

    @property
    def labels(self) -> Tuple[str, ...]:
        return self.intents + self.slot_labels

    @property
    def label_data(self) -> Dict[str, List[str]]:
        return {"intents": list(self.intents), "slot_labels": list(self.slot_labels)}

    @property
    def tag_names(self) -> List[str]:
        return bio_tag_names(self.slot_labels)

    def intent_classes(self, doc: Doc) -> List[str]:
        """The classes a reference doc's intent maps to ([] if it has none)."""
        intents = gold_intents(doc)
        if intents is None:
            return []
        return sorted(intents) if self.cfg["multi_label"] else [intent_label(intents)]

    def gold_labels(self, docs: Iterable[Doc]) -> Dict[str, Set[str]]:
        """The labels reference docs annotate, by kind as in label_data."""
        labels: Dict[str, Set[str]] = {"intents": set(), "slot_labels": set()}
        key = self.cfg["spans_key"]
        for doc in docs:
            labels["intents"].update(self.intent_classes(doc))
            if key in doc.spans:
                labels["slot_labels"].update(span.label_ for span in doc.spans[key])
        return labels

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Dict[str, List[str]]] = None,
    ) -> None:
        validate_get_examples(get_examples, "SlotIntent.initialize")
        if labels is None:
            labels = initial_labels(self, get_examples, nlp)
        intents, slot_labels = set(labels["intents"]), set(labels["slot_labels"])
        if not intents:
            raise ValueError(
                f"[{self.name}] no intent found in the training examples: "
                "reference docs need doc.cats with the gold intent set to 1.0"
            )
        self.cfg["intents"] = sorted(intents)
        self.cfg["slot_labels"] = sorted(slot_labels)
        self.model.get_ref("intent_head").get_ref(OUTPUT_LAYER).set_dim("nO", len(self.intents))
        self.model.get_ref("slot_head").get_ref(OUTPUT_LAYER).set_dim("nO", len(self.tag_names))
        doc_sample = [eg.reference for eg in islice(get_examples(), 10)]
        self.model.initialize(X=doc_sample)

    def predict(self, docs: Iterable[Doc]) -> Tuple[List[Floats2d], Floats2d]:
        docs = list(docs)
        ops = self.model.ops
        if not any(len(doc) for doc in docs):
            # Nothing to encode (the transformer cannot pool an all-empty
            # batch): no slots, and a uniform intent distribution.
            n_intents = len(self.intents)
            uniform = ops.alloc2f(len(docs), n_intents) + 1.0 / max(n_intents, 1)
            return [ops.alloc2f(0, len(self.tag_names)) for _ in docs], uniform
        slot_logits, intent_logits = self.model.predict(docs)
        slot_probs = softmax_per_doc(ops, slot_logits)
        multi_label = self.cfg["multi_label"]
        intent_probs = ops.sigmoid(intent_logits) if multi_label else ops.softmax(intent_logits)
        return slot_probs, intent_probs

    def set_annotations(self, docs: Iterable[Doc], scores: Tuple[List[Floats2d], Floats2d]) -> None:
        slot_probs, intent_probs = scores
        intent_probs = self.model.ops.to_numpy(intent_probs)
        tag_names = self.tag_names
        log_probs = [numpy.log(probs + EPSILON) for probs in to_numpy_per_doc(self.model.ops, slot_probs)]
        paths = batch_constrained_viterbi(log_probs, *bio_transitions(tag_names))
        key = self.cfg["spans_key"]
        label_ids = LabelIds(self.vocab.strings)
        for i, (doc, path) in enumerate(zip(docs, paths)):
            doc.cats.update(zip(self.intents, intent_probs[i].tolist()))
            tags = [tag_names[j] for j in path]
            spans = [Span(doc, start, end, label=label_ids[label]) for start, end, label in bio_to_spans(tags)]
            doc.spans[key] = SpanGroup(doc, name=key, spans=spans)

    def losses_and_gradients(self, examples: List[Example], outputs):
        slot_logits, intent_logits = outputs
        slot_loss, d_slots = self._slot_loss(examples, slot_logits)
        intent_loss, d_intent = self._intent_loss(examples, intent_logits)
        d_slots = [d * self.weights.head("slots") for d in d_slots]
        d_intent = d_intent * self.weights.head("intent")
        return {"slots": slot_loss, "intent": intent_loss}, (d_slots, d_intent)

    def annotates(self, head: str, doc: Doc) -> bool:
        if head == "slots":
            return self.cfg["spans_key"] in doc.spans
        return bool(self.intent_classes(doc))

    def _slot_loss(self, examples: List[Example], slot_logits: List[Floats2d]):
        """Token cross-entropy over the tokens of docs that have slot
        annotation; tokens of the other docs get zero gradient."""
        key = self.cfg["spans_key"]
        tags = [
            spans_to_bio(len(eg.predicted), aligned_spans(eg, eg.reference.spans[key]))
            if self.annotates("slots", eg.reference)
            else []
            for eg in examples
        ]
        tag_index = {tag: i for i, tag in enumerate(self.tag_names)}
        return token_cross_entropy(self.model.ops, slot_logits, tags, tag_index)

    def _intent_loss(self, examples: List[Example], intent_logits: Floats2d):
        """Cross-entropy (softmax) or binary cross-entropy (multi-label),
        averaged over the docs that have an intent."""
        ops = self.model.ops
        class_index = {label: i for i, label in enumerate(self.intents)}
        truth = numpy.zeros(intent_logits.shape, dtype="float32")
        mask = numpy.zeros((len(examples), 1), dtype="float32")
        for i, eg in enumerate(examples):
            classes = self.intent_classes(eg.reference)
            if classes and all(label in class_index for label in classes):
                truth[i, [class_index[label] for label in classes]] = 1.0
                mask[i] = 1.0
        n_docs = max(float(mask.sum()), 1.0)
        truth, mask = ops.asarray(truth), ops.asarray(mask)
        if self.cfg["multi_label"]:
            probs = ops.sigmoid(intent_logits)
            log_likelihood = truth * ops.xp.log(probs + EPSILON) + (1 - truth) * ops.xp.log(1 - probs + EPSILON)
        else:
            probs = ops.softmax(intent_logits)
            log_likelihood = truth * ops.xp.log(probs + EPSILON)
        loss = -float((log_likelihood * mask).sum()) / n_docs
        return loss, (probs - truth) * mask / n_docs

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, Optional[float]]:
        validate_examples(examples, "SlotIntent.score")
        return self.scorer(
            examples,
            spans_key=self.cfg["spans_key"],
            multi_label=self.cfg["multi_label"],
            threshold=self.cfg["threshold"],
            **kwargs,
        )

