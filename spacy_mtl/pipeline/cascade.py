"""`cascade`: PTB tags -> (UPOS) -> chunks -> dependency tree, lower levels
feeding higher ones, trained end to end on corpora that annotate only some
of the levels."""
from itertools import islice
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy
import srsly
from spacy import util
from spacy.attrs import DEP, HEAD, POS, TAG
from spacy.language import Language
from spacy.parts_of_speech import IDS as POS_IDS
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Config, Model

from ..names import CHUNKS_KEY, ROOT_LABEL
from ..ml.cascade import ARC_SCORES, DEP_LABEL_SCORES, PARSER_KIND, USED_HEADS, build_heads_layer, segment_lengths
from ..ml.decoding import batch_constrained_viterbi, bio_tag_names, bio_to_spans, bio_transitions, spans_to_bio
from ..ml.heads import split_by_doc
from ..ml.ops import use_torch_blas
from ..scoring import score_cascade
from .base import TRANSFORMER_LISTENER_CONFIG, MultiTaskPipe
from .labels import initial_labels
from .util import EPSILON, LabelIds, aligned_spans

default_model_config = """
[model]
@architectures = "spacy_mtl.CascadeModel.v1"
levels = ["tag", "chunk", "dep"]
n_hidden_states = 1
hidden_width = 256
label_embedding_width = 64
arc_width = 256
dep_label_width = 128
dropout = 0.2
max_segment_length = 256

[model.inputs]
tag = []
chunk = ["tag"]
dep = ["tag", "chunk"]

[model.layers]
tag = -1
chunk = -1
dep = -1
""" + TRANSFORMER_LISTENER_CONFIG
DEFAULT_MODEL = Config().from_str(default_model_config)["model"]

# Per-segment gold of one level: ints with -1 where the gold is missing.
MISSING = -1


@Language.factory(
    "cascade",
    assigns=["token.tag", "token.pos", "token.head", "token.dep", "doc.spans"],
    default_config={
        "model": DEFAULT_MODEL,
        "chunks_key": CHUNKS_KEY,
        "tag_weight": 1.0,
        "pos_weight": 1.0,
        "chunk_weight": 1.0,
        "dep_weight": 1.0,
        "weigh_docs_equally": False,
        "scorer": {"@scorers": "spacy_mtl.cascade_scorer.v1"},
    },
    default_score_weights={
        "dep_las": 0.4,
        "dep_uas": 0.1,
        "chunk_f": 0.3,
        "tag_acc": 0.2,
        "pos_acc": None,
        "chunk_p": None,
        "chunk_r": None,
    },
)
def make_cascade(
    nlp: Language,
    name: str,
    model: Model,
    chunks_key: str,
    tag_weight: float,
    pos_weight: float,
    chunk_weight: float,
    dep_weight: float,
    weigh_docs_equally: bool,
    scorer: Optional[Callable],
) -> "Cascade":
    """Tagger, chunker and biaffine parser over a shared encoder, in the order
    and with the label feeding the model's config gives.

    chunks_key (str): the span group of the chunks.
    *_weight (float): scale of each level's gradient (its share at the encoder).
    weigh_docs_equally (bool): scale each level's gradient by the batch's
        docs with its gold over their running mean, so that a doc counts the
        same in a batch with few of its kind as in one with many.
    """
    return Cascade(
        nlp.vocab, model, name, chunks_key=chunks_key, tag_weight=tag_weight, pos_weight=pos_weight,
        chunk_weight=chunk_weight, dep_weight=dep_weight, weigh_docs_equally=weigh_docs_equally, scorer=scorer,
    )


@registry.scorers("spacy_mtl.cascade_scorer.v1")
def make_cascade_scorer() -> Callable:
    return score_cascade


class Cascade(MultiTaskPipe):
    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "cascade",
        *,
        chunks_key: str = CHUNKS_KEY,
        tag_weight: float = 1.0,
        pos_weight: float = 1.0,
        chunk_weight: float = 1.0,
        dep_weight: float = 1.0,
        weigh_docs_equally: bool = False,
        scorer: Optional[Callable] = score_cascade,
    ) -> None:
        self.vocab = vocab
        self.model = use_torch_blas(model)
        self.name = name
        self.scorer = scorer
        self.cfg = {
            "labels": {},
            "chunks_key": chunks_key,
            "tag_weight": tag_weight,
            "pos_weight": pos_weight,
            "chunk_weight": chunk_weight,
            "dep_weight": dep_weight,
            "weigh_docs_equally": weigh_docs_equally,
        }

    @property
    def levels(self) -> List[str]:
        return self.model.attrs["spec"]["levels"]

    @property
    def head_names(self) -> List[str]:
        return list(self.levels)

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(label for level in self.levels for label in self.cfg["labels"].get(level, []))

    @property
    def label_data(self) -> Dict[str, List[str]]:
        return {level: list(labels) for level, labels in self.cfg["labels"].items()}

    def output_names(self, level: str) -> List[str]:
        """The classes a level predicts: BIO tags for chunks, labels otherwise."""
        labels = self.cfg["labels"][level]
        return bio_tag_names(labels) if level == "chunk" else list(labels)

    # -- initialization and loading ---------------------------------------------

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Dict[str, List[str]]] = None,
    ) -> None:
        validate_get_examples(get_examples, "Cascade.initialize")
        if labels is None:
            labels = initial_labels(self, get_examples, nlp)
        missing = [level for level in self.levels if not labels.get(level)]
        if missing:
            raise ValueError(
                f"[{self.name}] no training annotation for levels {missing}: need token.tag_ (tag), "
                f"token.pos_ (pos), doc.spans['{self.cfg['chunks_key']}'] (chunk), token.head/dep_ (dep)"
            )
        self.cfg["labels"] = {level: sorted(labels[level]) for level in self.levels}
        self._set_label_counts()
        docs = [eg.reference for eg in islice(get_examples(), 10)]
        self.model.initialize(X=(docs, None))
        self.cfg["input_width"] = self.model.attrs["input_width"]

    def gold_labels(self, docs: Iterable[Doc]) -> Dict[str, Set[str]]:
        """The labels reference docs annotate, by level as in label_data."""
        labels: Dict[str, Set[str]] = {level: set() for level in self.levels}
        for ref in docs:
            if "tag" in labels:
                labels["tag"].update(t.tag_ for t in ref if t.tag_)
            if "pos" in labels:
                labels["pos"].update(t.pos_ for t in ref if t.pos_)
            if "chunk" in labels and self.cfg["chunks_key"] in ref.spans:
                labels["chunk"].update(span.label_ for span in ref.spans[self.cfg["chunks_key"]])
            if PARSER_KIND in labels and ref.has_annotation("DEP"):
                labels[PARSER_KIND].update(t.dep_ for t in ref if t.dep_)
                labels[PARSER_KIND].add(ROOT_LABEL)
        return labels

    def _set_label_counts(self) -> None:
        self.model.attrs["n_labels"] = {level: len(self.output_names(level)) for level in self.levels}

    def from_bytes(self, bytes_data: bytes, *, exclude=tuple()) -> "Cascade":
        # The PyTorch heads are sized by the label counts in cfg: build them
        # before their weights load.
        self.cfg.update(srsly.json_loads(srsly.msgpack_loads(bytes_data)["cfg"]))
        self._build_for_loading()
        return super().from_bytes(bytes_data, exclude=exclude)

    def from_disk(self, path: Union[str, Path], *, exclude=tuple()) -> "Cascade":
        self.cfg.update(srsly.read_json(util.ensure_path(path) / "cfg"))
        self._build_for_loading()
        return super().from_disk(path, exclude=exclude)

    def _build_for_loading(self) -> None:
        self._set_label_counts()
        build_heads_layer(self.model, self.cfg["input_width"])

    # -- inference --------------------------------------------------------------

    def predict(self, docs: Iterable[Doc]):
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return {}, []  # nothing to encode: the transformer cannot pool an all-empty batch
        return self.model.predict((docs, None))

    def set_annotations(self, docs: Iterable[Doc], predictions) -> None:
        outputs, segments = predictions
        docs = list(docs)
        if not segments:
            return
        # Token attributes go in with one Doc.from_array per doc: setting
        # them token by token costs more than the heads on short sentences.
        columns = {"tag": TAG, "pos": POS}
        attrs = [columns[level] for level in self.levels if level in columns]
        values = [self._level_values(level, outputs, segments) for level in self.levels if level in columns]
        if PARSER_KIND in self.levels:
            attrs.extend([HEAD, DEP])
            values.extend(self._tree_values(outputs, segments))
        if attrs:
            # The segments cover each doc in order: their real tokens, packed,
            # are the docs' tokens one doc after another.
            real = numpy.arange(values[0].shape[1])[None, :] < segment_lengths(segments)[:, None]
            packed = numpy.stack([segment_values[real] for segment_values in values], axis=1)
            for doc, array in zip(docs, split_by_doc(numpy, packed, docs)):
                if len(doc):
                    doc.from_array(attrs, array)
        if "chunk" in self.levels:
            chunks = self._decode_chunks(outputs, segments)
            label_ids = LabelIds(self.vocab.strings)
            for i, doc in enumerate(docs):
                doc.spans[self.cfg["chunks_key"]] = [Span(doc, s, e, label=label_ids[label]) for s, e, label in chunks.get(i, [])]

    def _level_values(self, level: str, outputs, segments) -> numpy.ndarray:
        """(segments, tokens) array of the attribute ids of a tagging level."""
        names = self.output_names(level)
        if level == "pos":
            ids = [POS_IDS[name] for name in names]
        else:
            ids = [self.vocab.strings.add(name) for name in names]
        return numpy.asarray(ids, dtype="uint64")[self.model.ops.to_numpy(outputs[level]).argmax(axis=-1)]

    def _decode_chunks(self, outputs, segments) -> Dict[int, List[Tuple[int, int, str]]]:
        """Per doc index: the chunk spans, BIO-decoded per segment."""
        ops = self.model.ops
        names = self.output_names("chunk")
        probs = ops.to_numpy(ops.softmax(outputs["chunk"]))
        log_probs = [numpy.log(probs[s, : end - start] + EPSILON) for s, (_, start, end) in enumerate(segments)]
        paths = batch_constrained_viterbi(log_probs, *bio_transitions(names))
        chunks: Dict[int, List[Tuple[int, int, str]]] = {}
        for (i, start, _), path in zip(segments, paths):
            spans = bio_to_spans([names[j] for j in path])
            chunks.setdefault(i, []).extend((s0 + start, e0 + start, label) for s0, e0, label in spans)
        return chunks

    def _tree_values(self, outputs, segments) -> Tuple[numpy.ndarray, numpy.ndarray]:
        """(segments, tokens) arrays of relative heads (as uint64, the way
        Doc.from_array takes them) and dependency label ids."""
        ops = self.model.ops
        heads = ops.to_numpy(outputs[USED_HEADS]).astype("int64")
        label_scores = ops.to_numpy(outputs[DEP_LABEL_SCORES]).copy()
        labels = self.cfg["labels"][PARSER_KIND]
        root_id = labels.index(ROOT_LABEL)
        is_root = heads == 0
        # Only the root's dependent gets the root label; the others their best other label.
        label_scores[..., root_id] = numpy.where(is_root, numpy.inf, -numpy.inf)
        label_ids = numpy.asarray([self.vocab.strings.add(label) for label in labels], dtype="uint64")
        positions = numpy.arange(heads.shape[1])[None, :]
        relative = numpy.where(is_root, 0, heads - 1 - positions)
        return relative.astype("uint64"), label_ids[label_scores.argmax(axis=-1)]

    # -- training ---------------------------------------------------------------

    def model_inputs(self, examples: List[Example]):
        return [eg.predicted for eg in examples], [self._gold_heads(eg) for eg in examples]

    def _gold_heads(self, eg: Example) -> Optional[numpy.ndarray]:
        if not self.annotates(PARSER_KIND, eg.reference):
            return None
        heads, _ = eg.get_aligned_parse(projectivize=False)
        return numpy.asarray([MISSING if head is None else head for head in heads], dtype="int64")

    def losses_and_gradients(self, examples: List[Example], outputs):
        outputs, segments = outputs
        losses, gradients = {}, {}
        for level in self.levels:
            if level == PARSER_KIND:
                loss, level_gradients = self._parser_loss(examples, outputs, segments)
            else:
                targets = self._segment_targets(segments, [self._gold_classes(level, eg) for eg in examples])
                loss, gradient = masked_cross_entropy(self.model.ops, outputs[level], targets)
                level_gradients = {level: gradient}
            losses[level] = loss
            for name, gradient in level_gradients.items():
                gradients[name] = gradient * self.weights.head(level)
        return losses, gradients

    def annotates(self, level: str, doc: Doc) -> bool:
        if level == "chunk":
            return self.cfg["chunks_key"] in doc.spans
        if level == PARSER_KIND:
            return doc.has_annotation("DEP")
        return doc.has_annotation("TAG" if level == "tag" else "POS")

    def _gold_classes(self, level: str, eg: Example) -> Optional[List[int]]:
        """Class ids of a tagging level on the predicted tokens (MISSING where
        unknown), or None for a doc not annotated for it."""
        if not self.annotates(level, eg.reference):
            return None
        index = {name: i for i, name in enumerate(self.output_names(level))}
        if level == "chunk":
            tags = spans_to_bio(len(eg.predicted), aligned_spans(eg, eg.reference.spans[self.cfg["chunks_key"]]))
        else:
            tags = eg.get_aligned("TAG" if level == "tag" else "POS", as_string=True)
        return [index.get(tag, MISSING) if tag else MISSING for tag in tags]

    @staticmethod
    def _segment_targets(segments, per_doc: Sequence[Optional[Sequence[int]]]) -> numpy.ndarray:
        n_tokens = max([end - start for _, start, end in segments], default=0)
        targets = numpy.full((len(segments), n_tokens), MISSING, dtype="int64")
        for s, (i, start, end) in enumerate(segments):
            if per_doc[i] is not None:
                targets[s, : end - start] = per_doc[i][start:end]
        return targets

    def _parser_loss(self, examples: List[Example], outputs, segments):
        """Cross-entropy of each token's head over the candidates (root and
        the segment's tokens), and of its label given the gold head. A head
        outside the token's segment carries no loss."""
        ops = self.model.ops
        used_heads = ops.to_numpy(outputs[USED_HEADS])
        label_index = {label: i for i, label in enumerate(self.cfg["labels"][PARSER_KIND])}
        arc_targets = numpy.full(used_heads.shape, MISSING, dtype="int64")
        label_targets = numpy.full(used_heads.shape, MISSING, dtype="int64")
        gold = [self._gold_parse(eg, label_index) for eg in examples]
        for s, (i, start, end) in enumerate(segments):
            if gold[i] is None:
                continue
            heads, labels = gold[i]
            for k, token in enumerate(range(start, end)):
                head = heads[token]
                if head == token:
                    arc_targets[s, k] = 0
                elif start <= head < end:
                    arc_targets[s, k] = head - start + 1
                else:
                    continue
                label_targets[s, k] = labels[token]
        arc_loss, d_arcs = masked_cross_entropy(ops, outputs[ARC_SCORES], arc_targets)
        label_loss, d_labels = masked_cross_entropy(ops, outputs[DEP_LABEL_SCORES], label_targets)
        return arc_loss + label_loss, {ARC_SCORES: d_arcs, DEP_LABEL_SCORES: d_labels}

    def _gold_parse(self, eg: Example, label_index: Dict[str, int]):
        if not self.annotates(PARSER_KIND, eg.reference):
            return None
        heads, deps = eg.get_aligned_parse(projectivize=False)
        heads = [MISSING if head is None else head for head in heads]
        labels = [label_index.get(dep, MISSING) if dep else MISSING for dep in deps]
        return heads, labels

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, Optional[float]]:
        validate_examples(examples, "Cascade.score")
        return self.scorer(examples, chunks_key=self.cfg["chunks_key"], levels=self.levels, **kwargs)


def masked_cross_entropy(ops, logits, targets: numpy.ndarray) -> Tuple[float, object]:
    """Softmax cross-entropy over the last axis, averaged over the positions
    whose target is not MISSING, and its gradient (zero elsewhere)."""
    xp = ops.xp
    probs = xp.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    known = targets != MISSING
    n_known = max(int(known.sum()), 1)
    gradient = probs.copy()
    index = tuple(xp.asarray(axis) for axis in numpy.nonzero(known)) + (xp.asarray(targets[known]),)
    loss = -float(xp.log(probs[index] + EPSILON).sum())
    gradient[index] -= 1.0
    gradient *= xp.asarray(known[..., None], dtype=gradient.dtype)
    return loss / n_known, gradient / n_known
