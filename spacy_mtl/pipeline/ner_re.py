"""`ner_re`: joint entity and relation extraction."""
from itertools import islice
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

import numpy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats2d

from ..ml.decoding import batch_constrained_viterbi, biluo_tag_names, biluo_to_spans, biluo_transitions, spans_to_biluo
from ..ml.heads import OUTPUT_LAYER, split_by_doc
from ..ml.ner_re import PAIR_COLUMNS
from ..ml.ops import use_torch_blas
from ..relations import has_relations_annotation, set_relation_rows
from ..scoring import score_entities_relations
from .base import TRANSFORMER_LISTENER_CONFIG, MultiTaskPipe
from .labels import initial_labels
from .util import EPSILON, LabelIds, aligned_spans, softmax_per_doc, to_numpy_per_doc, token_cross_entropy

# At most this many candidate pairs are scored in one call: a batch with more
# is scored in groups of consecutive docs, a doc with more (a long document)
# in chunks of this many pairs.
MAX_PAIRS_PER_CALL = 4096

default_model_config = """
[model]
@architectures = "spacy_mtl.NerReModel.v1"
""" + TRANSFORMER_LISTENER_CONFIG + """
[model.entity_head]
@architectures = "spacy_mtl.TokenClassifier.v1"
hidden_width = 0
dropout = 0.1

[model.relation_head]
@architectures = "spacy_mtl.SpanPairScorer.v1"
hidden_width = 256
type_width = 32
dropout = 0.1
"""
DEFAULT_MODEL = Config().from_str(default_model_config)["model"]
TRAIN_ENTITIES = ("gold", "predicted", "mixed")

# An entity as the relation head sees it: (start, end, label).
EntityTuple = Tuple[int, int, str]


@Language.factory(
    "ner_re",
    assigns=["doc.ents", "doc._.relations"],
    default_config={
        "model": DEFAULT_MODEL,
        "threshold": 0.5,
        "max_distance": 100,
        "train_entities": "mixed",
        "max_training_pairs": 0,
        "relations_only": False,
        "entities_weight": 1.0,
        "relations_weight": 1.0,
        "heads_learn_rate_scale": 1.0,
        "weigh_docs_equally": False,
        "scorer": {"@scorers": "spacy_mtl.ner_re_scorer.v1"},
    },
    default_score_weights={
        "rel_micro_f": 0.6,
        "ents_f": 0.4,
        "ents_p": None,
        "ents_r": None,
        "rel_micro_p": None,
        "rel_micro_r": None,
        "rel_macro_f": None,
        "rel_boundaries_f": None,
    },
)
def make_ner_re(
    nlp: Language,
    name: str,
    model: Model,
    threshold: float,
    max_distance: int,
    train_entities: str,
    max_training_pairs: int,
    relations_only: bool,
    entities_weight: float,
    relations_weight: float,
    heads_learn_rate_scale: float,
    weigh_docs_equally: bool,
    scorer: Optional[Callable],
) -> "NerRe":
    """Entity tagger and relation scorer over a shared encoder.

    threshold (float): a relation label is predicted for a pair when its
        sigmoid score reaches this.
    max_distance (int): pairs with more tokens than this between the two
        entities are not scored.
    train_entities (str): the entities relation candidates are built from in
        training: "gold", "predicted" (the entity head's output), or "mixed"
        (both, so the head learns to reject pairs built on wrong entities).
        Inference always uses the predicted entities.
    max_training_pairs (int): in training, a doc's candidate pairs beyond
        this many are a random sample, which keeps every pair of two gold
        entities (0: no limit). Early in training the entity head predicts
        many spurious entities, and the pairs grow with their square.
    relations_only (bool): take the entities already on doc.ents (from an
        upstream `ner`, rules, or gold) and predict relations only.
    heads_learn_rate_scale (float): the learning rate of the component's own
        parameters relative to the optimizer's (the shared transformer keeps
        the optimizer's rate).
    weigh_docs_equally (bool): scale each head's gradient by the batch's
        docs with its gold over their running mean, so that a doc counts the
        same in a batch with few of its kind as in one with many.
    """
    if train_entities not in TRAIN_ENTITIES:
        raise ValueError(f"[{name}] train_entities must be one of {TRAIN_ENTITIES}, not '{train_entities}'")
    if max_training_pairs < 0:
        raise ValueError(f"[{name}] max_training_pairs must be >= 0 (0: no limit), not {max_training_pairs}")
    return NerRe(
        nlp.vocab, model, name, threshold=threshold, max_distance=max_distance,
        train_entities=train_entities, max_training_pairs=max_training_pairs,
        relations_only=relations_only, entities_weight=entities_weight, relations_weight=relations_weight,
        heads_learn_rate_scale=heads_learn_rate_scale, weigh_docs_equally=weigh_docs_equally, scorer=scorer,
    )


@registry.scorers("spacy_mtl.ner_re_scorer.v1")
def make_ner_re_scorer() -> Callable:
    return score_entities_relations


class NerRe(MultiTaskPipe):
    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "ner_re",
        *,
        threshold: float = 0.5,
        max_distance: int = 100,
        train_entities: str = "mixed",
        max_training_pairs: int = 0,
        relations_only: bool = False,
        entities_weight: float = 1.0,
        relations_weight: float = 1.0,
        heads_learn_rate_scale: float = 1.0,
        weigh_docs_equally: bool = False,
        scorer: Optional[Callable] = score_entities_relations,
    ) -> None:
        self.vocab = vocab
        self.model = use_torch_blas(model)
        self.name = name
        self.scorer = scorer
        self.cfg = {
            "entity_labels": [],
            "relation_labels": [],
            "threshold": threshold,
            "max_distance": max_distance,
            "train_entities": train_entities,
            "max_training_pairs": max_training_pairs,
            "relations_only": relations_only,
            "entities_weight": entities_weight,
            "relations_weight": relations_weight,
            "heads_learn_rate_scale": heads_learn_rate_scale,
            "weigh_docs_equally": weigh_docs_equally,
        }

    @property
    def entity_labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["entity_labels"])

    @property
    def relation_labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["relation_labels"])

    @property
    def labels(self) -> Tuple[str, ...]:
        return self.entity_labels + self.relation_labels

    @property
    def label_data(self) -> Dict[str, List[str]]:
        return {"entity_labels": list(self.entity_labels), "relation_labels": list(self.relation_labels)}

    def gold_labels(self, docs: Iterable[Doc]) -> Dict[str, Set[str]]:
        """The labels reference docs annotate, by kind as in label_data."""
        labels: Dict[str, Set[str]] = {"entity_labels": set(), "relation_labels": set()}
        for doc in docs:
            labels["entity_labels"].update(ent.label_ for ent in doc.ents)
            labels["relation_labels"].update(rel.label for rel in doc._.relations)
        return labels

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Dict[str, List[str]]] = None,
    ) -> None:
        validate_get_examples(get_examples, "NerRe.initialize")
        if labels is None:
            labels = initial_labels(self, get_examples, nlp)
        entity_labels, relation_labels = set(labels["entity_labels"]), set(labels["relation_labels"])
        if not relation_labels:
            raise ValueError(f"[{self.name}] no relation found in the training examples (doc._.relations)")
        self.cfg["entity_labels"] = sorted(entity_labels)
        self.cfg["relation_labels"] = sorted(relation_labels)
        self.model.get_ref("entity_head").get_ref(OUTPUT_LAYER).set_dim("nO", len(self.tag_names))
        relation_head = self.model.get_ref("relation_head")
        relation_head.get_ref(OUTPUT_LAYER).set_dim("nO", len(self.relation_labels))
        relation_head.set_dim("n_types", len(self.entity_labels) + 1)
        self.model.initialize(X=[eg.reference for eg in islice(get_examples(), 10)])

    @property
    def entity_type_ids(self) -> Dict[str, int]:
        """Entity label -> type id of the relation head; 0 is unknown."""
        return {label: i + 1 for i, label in enumerate(self.entity_labels)}

    @property
    def tag_names(self) -> List[str]:
        return biluo_tag_names(self.entity_labels)

    # -- candidates -----------------------------------------------------------

    def candidate_pairs(self, entities: List[EntityTuple]) -> numpy.ndarray:
        """Ordered pairs of distinct entities at most max_distance tokens
        apart, heads in the order of `entities`, each head's tails too. The
        tails are looked up in a window of the entities sorted by start, so
        the cost grows with the entities times those within reach, not with
        the square of a long document's entities; array operations, no
        Python object per pair."""
        if not entities:
            return numpy.zeros((0, PAIR_COLUMNS), dtype="int32")
        max_distance = self.cfg["max_distance"]
        type_ids = self.entity_type_ids
        starts = numpy.asarray([start for start, _, _ in entities], dtype="int64")
        ends = numpy.asarray([end for _, end, _ in entities], dtype="int64")
        types = numpy.asarray([type_ids.get(label, 0) for _, _, label in entities], dtype="int64")
        by_start = numpy.argsort(starts, kind="stable")
        sorted_starts = starts[by_start]
        # A tail within reach starts at most max_distance after the head
        # ends, and ends at most max_distance before it starts.
        low = numpy.searchsorted(sorted_starts, starts - max_distance - int((ends - starts).max()), side="left")
        high = numpy.searchsorted(sorted_starts, ends + max_distance, side="right")
        counts = high - low
        heads = numpy.repeat(numpy.arange(len(entities)), counts)
        offsets = numpy.arange(counts.sum()) - numpy.repeat(numpy.cumsum(counts) - counts, counts)
        tails = by_start[numpy.repeat(low, counts) + offsets]
        order = numpy.lexsort((tails, heads))
        heads, tails = heads[order], tails[order]
        gaps = numpy.maximum(starts[heads], starts[tails]) - numpy.minimum(ends[heads], ends[tails])
        distinct = (starts[heads] != starts[tails]) | (ends[heads] != ends[tails])
        keep = distinct & (gaps <= max_distance)
        heads, tails = heads[keep], tails[keep]
        columns = (starts[heads], ends[heads], types[heads], starts[tails], ends[tails], types[tails])
        return numpy.stack(columns, axis=1).astype("int32").reshape(-1, PAIR_COLUMNS)

    def candidate_pairs_of_docs(self, entities_per_doc: List[List[EntityTuple]]) -> List[numpy.ndarray]:
        """candidate_pairs of each doc, found for a whole batch in one set of
        array operations (on short docs, a dozen array calls per doc cost
        more than finding their few pairs): each doc's entities are shifted
        beyond the reach of the previous doc's, then the rows are split by
        doc and shifted back."""
        reach = self.cfg["max_distance"] + 1
        shifted: List[EntityTuple] = []
        offsets: List[int] = []
        offset = 0
        for entities in entities_per_doc:
            offsets.append(offset)
            shifted.extend((start + offset, end + offset, label) for start, end, label in entities)
            offset += max((end for _, end, _ in entities), default=0) + reach
        pairs = self.candidate_pairs(shifted)
        doc_of_row = numpy.searchsorted(numpy.asarray(offsets), pairs[:, 0], side="right") - 1
        pairs[:, [0, 1, 3, 4]] -= numpy.asarray(offsets, dtype="int32")[doc_of_row][:, None]
        counts = numpy.bincount(doc_of_row, minlength=len(entities_per_doc))
        return numpy.split(pairs, numpy.cumsum(counts)[:-1])

    def decode_entities(self, entity_logits: List[Floats2d]) -> List[List[EntityTuple]]:
        tag_names = self.tag_names
        ops = self.model.ops
        probs = to_numpy_per_doc(ops, softmax_per_doc(ops, entity_logits))
        log_probs = [numpy.log(doc_probs + EPSILON) for doc_probs in probs]
        paths = batch_constrained_viterbi(log_probs, *biluo_transitions(tag_names))
        return [biluo_to_spans([tag_names[i] for i in path]) for path in paths]

    # -- inference ------------------------------------------------------------

    def predict(self, docs: Iterable[Doc]):
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            # Nothing to encode (the transformer cannot pool an all-empty batch).
            no_pairs = numpy.zeros((0, PAIR_COLUMNS), dtype="int32")
            no_scores = numpy.zeros((0, len(self.relation_labels)), dtype="float32")
            return [[] for _ in docs], [(no_pairs, no_scores) for _ in docs]
        tokvecs, entity_logits = self.model.predict(docs)
        if self.cfg["relations_only"]:
            entities = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs]
        else:
            entities = self.decode_entities(entity_logits)
        pairs = self.candidate_pairs_of_docs(entities)
        probs = self._relation_probs(tokvecs, pairs)
        return entities, list(zip(pairs, probs))

    def _relation_probs(self, tokvecs, pairs) -> List[numpy.ndarray]:
        probs = []
        for group in _groups_of_pairs(pairs):
            group_pairs = [pairs[i] for i in group]
            if not sum(len(p) for p in group_pairs):
                probs.extend(numpy.zeros((0, len(self.relation_labels)), dtype="float32") for _ in group)
            elif len(group_pairs[0]) > MAX_PAIRS_PER_CALL:
                probs.append(self._chunked_relation_probs(tokvecs[group[0]], group_pairs[0]))
            else:
                probs.extend(split_by_doc(numpy, self._scored_pairs([tokvecs[i] for i in group], group_pairs), group_pairs))
        return probs

    def _scored_pairs(self, tokvecs, pairs) -> numpy.ndarray:
        logits = self.model.get_ref("relation_head").predict((tokvecs, pairs))
        return self.model.ops.to_numpy(self.model.ops.sigmoid(logits))

    def _chunked_relation_probs(self, vecs, pairs: numpy.ndarray) -> numpy.ndarray:
        """A doc's relation scores (it has more than MAX_PAIRS_PER_CALL
        pairs), MAX_PAIRS_PER_CALL pairs at a time, each
        chunk over the tokens its pairs cover: the features of a long
        document's pairs never all exist at once. A pair's features are its
        spans' tokens and those between them, so cutting the doc there
        changes nothing but the offsets."""
        chunks = []
        for first in range(0, len(pairs), MAX_PAIRS_PER_CALL):
            chunk = pairs[first : first + MAX_PAIRS_PER_CALL]
            start = int(min(chunk[:, 0].min(), chunk[:, 3].min()))
            end = int(max(chunk[:, 1].max(), chunk[:, 4].max()))
            shifted = chunk.copy()
            shifted[:, [0, 1, 3, 4]] -= start
            chunks.append(self._scored_pairs([vecs[start:end]], [shifted]))
        return numpy.concatenate(chunks)

    def set_annotations(self, docs: Iterable[Doc], predictions) -> None:
        entities, relations = predictions
        label_ids = LabelIds(self.vocab.strings)
        for doc, ents, (pairs, probs) in zip(docs, entities, relations):
            if not self.cfg["relations_only"]:
                doc.set_ents([Span(doc, s, e, label=label_ids[label]) for s, e, label in ents], default="outside")
            # Labels from the entities themselves: in relations_only mode they
            # may be types the model never saw.
            labels = {(start, end): label for start, end, label in ents}
            # Rows straight from the scores: an untrained or unsure head can
            # pass thousands of pairs, and spans for each would dominate.
            rows = []
            for pair, label_id in zip(*numpy.nonzero(probs >= self.cfg["threshold"])):
                hs, he, _, ts, te, _ = pairs[pair].tolist()
                label, score = self.relation_labels[label_id], float(probs[pair, label_id])
                rows.append((hs, he, labels[hs, he], ts, te, labels[ts, te], label, score))
            set_relation_rows(doc, rows)

    # -- training -------------------------------------------------------------

    def losses_and_gradients(self, examples: List[Example], outputs):
        tokvecs, entity_logits = outputs
        entity_loss, d_entity_logits = self._entity_loss(examples, entity_logits)
        relation_loss, d_tokvecs = self._relation_loss(examples, tokvecs, entity_logits)
        # (The doc scale is in the relation loss' gradient already.)
        d_tokvecs = [d * self.weights.encoder_share("relations") for d in d_tokvecs]
        d_entity_logits = [d * self.weights.head("entities") for d in d_entity_logits]
        return {"entities": entity_loss, "relations": relation_loss}, (d_tokvecs, d_entity_logits)

    def annotates(self, head: str, doc: Doc) -> bool:
        if head == "entities":
            # In relations_only mode the entities are input, not a task.
            return not self.cfg["relations_only"] and doc.has_annotation("ENT_IOB")
        return has_relations_annotation(doc)

    def _entity_loss(self, examples: List[Example], entity_logits: List[Floats2d]):
        """BILUO cross-entropy over the tokens of docs annotated for entities."""
        if self.cfg["relations_only"]:
            return 0.0, [self.model.ops.alloc2f(*logits.shape) for logits in entity_logits]
        tags = [
            spans_to_biluo(len(eg.predicted), aligned_spans(eg, eg.reference.ents))
            if self.annotates("entities", eg.reference)
            else []
            for eg in examples
        ]
        tag_index = {tag: i for i, tag in enumerate(self.tag_names)}
        return token_cross_entropy(self.model.ops, entity_logits, tags, tag_index)

    @property
    def training_entities_mode(self) -> str:
        return "gold" if self.cfg["relations_only"] else self.cfg["train_entities"]

    def _training_pairs(self, eg: Example, predicted: List[EntityTuple]) -> numpy.ndarray:
        """A doc's candidate pairs in training; beyond max_training_pairs,
        every pair of two gold entities and a random sample of the rest."""
        gold = aligned_spans(eg, eg.reference.ents)
        pairs = self.candidate_pairs(self._training_entities(gold, predicted))
        limit = self.cfg["max_training_pairs"]
        if not limit or len(pairs) <= limit:
            return pairs
        gold_pairs = {tuple(row) for row in self.candidate_pairs(gold).tolist()}
        both_gold = numpy.asarray([tuple(row) in gold_pairs for row in pairs.tolist()], dtype=bool)
        others = numpy.flatnonzero(~both_gold)
        n_sampled = min(max(limit - int(both_gold.sum()), 0), len(others))
        keep = numpy.concatenate([numpy.flatnonzero(both_gold), numpy.random.choice(others, n_sampled, replace=False)])
        return pairs[numpy.sort(keep)]

    def _training_entities(self, gold: List[EntityTuple], predicted: List[EntityTuple]) -> List[EntityTuple]:
        mode = self.training_entities_mode
        if mode == "gold":
            return gold
        if mode == "predicted":
            return predicted
        return sorted(set(gold) | set(predicted))

    def _relation_loss(self, examples: List[Example], tokvecs, entity_logits):
        """Binary cross-entropy per relation label over candidate pairs, on
        docs annotated for relations. A pair is positive for a label only if
        both entities match gold entities exactly, types included."""
        ops = self.model.ops
        zero = [ops.alloc2f(*t.shape) for t in tokvecs]
        annotated = [self.annotates("relations", eg.reference) for eg in examples]
        if not any(annotated):
            return 0.0, zero
        predicted = self.decode_entities(entity_logits) if self.training_entities_mode != "gold" else None
        pairs, targets = [], []
        for i, eg in enumerate(examples):
            if not annotated[i]:
                pairs.append(numpy.zeros((0, PAIR_COLUMNS), dtype="int32"))
                targets.append(numpy.zeros((0, len(self.relation_labels)), dtype="float32"))
                continue
            doc_pairs = self._training_pairs(eg, predicted[i] if predicted else [])
            pairs.append(doc_pairs)
            targets.append(self._relation_targets(eg, doc_pairs))
        n_pairs = sum(len(p) for p in pairs)
        if not n_pairs:
            return 0.0, zero
        logits, bp_relations = self.model.get_ref("relation_head").begin_update((tokvecs, pairs))
        probs = ops.sigmoid(logits)
        truth = ops.asarray(numpy.vstack(targets))
        loss = -float((truth * ops.xp.log(probs + EPSILON) + (1 - truth) * ops.xp.log(1 - probs + EPSILON)).sum())
        # The relation head's own gradient takes the doc scale, not
        # relations_weight: that weight is the relations' share at the
        # encoder, applied to d_tokvecs after (HeadWeights.encoder_share).
        d_logits = (probs - truth) * (self.weights.doc_scale("relations") / n_pairs)
        d_tokvecs, _ = bp_relations(d_logits)
        return loss / n_pairs, d_tokvecs

    def _relation_targets(self, eg: Example, pairs: numpy.ndarray) -> numpy.ndarray:
        type_ids = self.entity_type_ids
        label_ids = {label: i for i, label in enumerate(self.relation_labels)}
        gold = {}
        for rel in eg.reference._.relations:
            head = eg.predicted.char_span(rel.head.start_char, rel.head.end_char)
            tail = eg.predicted.char_span(rel.tail.start_char, rel.tail.end_char)
            if head is None or tail is None or rel.label not in label_ids:
                continue
            key = (head.start, head.end, type_ids.get(rel.head.label_, 0), tail.start, tail.end, type_ids.get(rel.tail.label_, 0))
            gold.setdefault(key, []).append(label_ids[rel.label])
        targets = numpy.zeros((len(pairs), len(self.relation_labels)), dtype="float32")
        for row, pair in enumerate(pairs.tolist()):
            for label_id in gold.get(tuple(pair), []):
                targets[row, label_id] = 1.0
        return targets

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, Optional[float]]:
        validate_examples(examples, "NerRe.score")
        return self.scorer(examples, **kwargs)


def _groups_of_pairs(pairs: List[numpy.ndarray]) -> List[List[int]]:
    """Consecutive docs in groups of at most MAX_PAIRS_PER_CALL pairs; a doc
    with more is a group of its own."""
    groups: List[List[int]] = []
    size = MAX_PAIRS_PER_CALL + 1
    for i, doc_pairs in enumerate(pairs):
        if size + len(doc_pairs) > MAX_PAIRS_PER_CALL:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += len(doc_pairs)
    return groups
