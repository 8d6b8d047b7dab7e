"""A cascade of heads over one encoder: token taggers (PTB tags, UPOS,
chunk tags) and a biaffine dependency parser (Dozat and Manning 2017), each
level reading a chosen encoder layer or a learned mix of layers, and the soft
label embeddings p(labels) @ E of the levels below it (Hashimoto et al. 2017).

The heads (cascade_heads.py, one PyTorch module) run on sentence segments:
the taggers read the segments' tokens packed, the parser scores arcs
(tokens x tokens) per sentence, never per document."""
from typing import Dict, List, Sequence, Tuple, Union

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, PyTorchShim, torch2xp, xp2torch
from thinc.types import Floats2d

from ..compat import pytorch_wrapper_forward
from .biaffine import ARC_SCORES, DEP_LABEL_SCORES, USED_HEADS
from .cascade_heads import LEVEL_KINDS, PARSER_KIND, CascadeHeads
from .casing import SENTENCE_START, docs_casing_classes
from .heads import split_by_doc
from .layer_mix import LAYER_MIX
from .optimizers import ScaledOptimizer

__all__ = ["ARC_SCORES", "DEP_LABEL_SCORES", "USED_HEADS", "PARSER_KIND", "build_cascade_model", "build_heads_layer", "segment_lengths"]

HEADS_LAYER = "heads"

# A sentence (or window) of a doc that the heads see as one sequence.
Segment = Tuple[int, int, int]  # (doc index, start token, end token)


@registry.architectures("spacy_mtl.CascadeModel.v1")
def build_cascade_model(
    tok2vec: Model[List[Doc], List[Floats2d]],
    levels: List[str],
    inputs: Dict[str, List[str]],
    layers: Dict[str, Union[int, str]],
    n_hidden_states: int = 1,
    hidden_width: int = 256,
    label_embedding_width: int = 64,
    arc_width: int = 256,
    dep_label_width: int = 128,
    dropout: float = 0.2,
    casing_width: int = 0,
    max_segment_length: int = 256,
    heads_learn_rate_scale: float = 1.0,
    mixed_precision: bool = False,
) -> Model:
    """levels: the levels in order, from "tag" (PTB tags), "pos" (UPOS),
        "chunk" (BIO chunk tags) and "dep" (arcs and labels).
    inputs: for each level, the lower levels whose soft label embeddings it
        reads (the edges of the cascade; empty lists for flat joint heads).
    layers: for each level, the index of the encoder hidden state it reads
        (-1 the last) or "mix", a learned softmax-weighted mix of all.
    n_hidden_states: how many hidden states the encoder's output concatenates:
        1 for a stock transformer, layers + 1 for
        spacy_mtl.AllLayersTransformerModel.v1.
    casing_width: width of an embedding of each token's casing (lower, Title,
        UPPER, mixed, no letters; first in its sentence or not) that every
        level reads next to the encoder's output; 0 for none.
    max_segment_length: docs without sentence boundaries are cut into windows
        of at most this many tokens (each gets its own tree).
    heads_learn_rate_scale: the heads' learning rate relative to the
        optimizer's: they start from scratch, the encoder is pretrained.
    """
    _check_spec(levels, inputs, layers, n_hidden_states)
    if casing_width < 0:
        raise ValueError(f"casing_width must be >= 0, got {casing_width}")
    spec = {
        "levels": list(levels),
        "inputs": {level: list(inputs.get(level, [])) for level in levels},
        "layers": {level: layers.get(level, -1) for level in levels},
        "n_hidden_states": n_hidden_states,
        "hidden_width": hidden_width,
        "label_embedding_width": label_embedding_width,
        "arc_width": arc_width,
        "dep_label_width": dep_label_width,
        "dropout": dropout,
        "casing_width": casing_width,
    }
    return Model(
        "cascade",
        _cascade_forward,
        init=_cascade_init,
        layers=[tok2vec],
        refs={"tok2vec": tok2vec},
        attrs={
            "spec": spec,
            "n_labels": {},
            "max_segment_length": max_segment_length,
            "heads_learn_rate_scale": heads_learn_rate_scale,
            "mixed_precision": mixed_precision,
        },
    )


def _check_spec(levels, inputs, layers, n_hidden_states) -> None:
    for level in levels:
        if level not in LEVEL_KINDS:
            raise ValueError(f"Unknown cascade level '{level}': expected some of {LEVEL_KINDS}")
    if len(set(levels)) != len(levels):
        raise ValueError(f"Cascade levels must be distinct: {levels}")
    # Entries for known levels that are not used are ignored (the defaults
    # name every level); unknown names are errors.
    for level, sources in inputs.items():
        if level not in LEVEL_KINDS:
            raise ValueError(f"inputs names an unknown level '{level}': expected some of {LEVEL_KINDS}")
        if level not in levels:
            continue
        for source in sources:
            if source not in levels or levels.index(source) >= levels.index(level):
                raise ValueError(f"Level '{level}' can only read levels below it, not '{source}' (levels {levels})")
            if source == PARSER_KIND:
                raise ValueError(f"Level '{level}' cannot read '{PARSER_KIND}': the parser has no label distribution per token")
    for level, layer in layers.items():
        if level not in LEVEL_KINDS:
            raise ValueError(f"layers names an unknown level '{level}': expected some of {LEVEL_KINDS}")
        if level not in levels:
            continue
        if layer != LAYER_MIX and not (isinstance(layer, int) and -n_hidden_states <= layer < n_hidden_states):
            raise ValueError(
                f"layers.{level} = {layer!r}: expected \"{LAYER_MIX}\" or a hidden state index "
                f"in [{-n_hidden_states}, {n_hidden_states - 1}] (n_hidden_states = {n_hidden_states})"
            )


def build_heads_layer(model: Model, input_width: int) -> None:
    """Create the PyTorch heads once the label counts are known (from the
    training data, or from a saved component's cfg before its weights load)."""
    if model.has_ref(HEADS_LAYER):
        return
    spec = model.attrs["spec"]
    missing = [level for level in spec["levels"] if level not in model.attrs["n_labels"]]
    if missing:
        raise ValueError(f"No label count for cascade levels {missing}")
    module = CascadeHeads(input_width=input_width, n_labels=model.attrs["n_labels"], **spec)
    shim = ScaledLearnRateShim(module, model.attrs["heads_learn_rate_scale"], mixed_precision=model.attrs["mixed_precision"])
    heads = Model(
        "pytorch",
        pytorch_wrapper_forward,
        attrs={"convert_inputs": _convert_inputs, "convert_outputs": _convert_outputs},
        shims=[shim],
        dims={"nI": None, "nO": None},
    )
    model.attrs["input_width"] = input_width
    model.layers.append(heads)
    model.set_ref(HEADS_LAYER, heads)


def _cascade_init(model: Model, X=None, Y=None) -> Model:
    tok2vec = model.get_ref("tok2vec")
    if X is not None:
        docs, _ = X
        tok2vec.initialize(X=docs)
        tokvecs = tok2vec.predict(docs)
        width = next((vecs.shape[1] for vecs in tokvecs if vecs.shape[1]), None)
        if width is None:
            raise ValueError("Cannot size the cascade heads: the sample docs are all empty")
        build_heads_layer(model, width)
    return model


def doc_segments(docs: Sequence[Doc], max_length: int) -> List[Segment]:
    """Sentences where a doc has boundaries, else windows of max_length."""
    segments = []
    for i, doc in enumerate(docs):
        if doc.has_annotation("SENT_START") or doc.has_annotation("DEP"):
            bounds = [(sent.start, sent.end) for sent in doc.sents]
        else:
            bounds = [(start, min(start + max_length, len(doc))) for start in range(0, len(doc), max_length)]
        for start, end in bounds:
            # A very long sentence is cut too: arc scores are quadratic.
            for cut in range(start, end, max_length):
                segments.append((i, cut, min(cut + max_length, end)))
    return segments


def _cascade_forward(model: Model, inputs, is_train: bool):
    """inputs: (docs, heads), heads per doc an int array of absolute head
    indices (the root its own index, -1 unknown) or None: the arc-label scores
    are taken at these heads, or at the decoded tree where they are missing.
    Output: dict of padded arrays (segments, tokens, ...) and the segments."""
    docs, gold_heads = inputs
    tokvecs, bp_tokvecs = model.get_ref("tok2vec")(docs, is_train)
    segments = doc_segments(docs, model.attrs["max_segment_length"])
    ops = model.ops
    lengths = segment_lengths(segments)
    # The segments cover each doc in order: the docs' vectors, stacked, are
    # the segments' tokens in order (the heads read them packed, unpadded).
    X = ops.xp.concatenate([vecs for vecs in tokvecs if len(vecs)] or [ops.alloc2f(0, model.attrs["input_width"])])
    heads = _padded_segment_heads(segments, lengths, gold_heads)
    casing = _packed_casing(docs, lengths, model.attrs["spec"])
    heads_layer = model.get_ref(HEADS_LAYER)
    if is_train:
        outputs, bp_heads = heads_layer((X, lengths, heads, casing), is_train)
    else:
        outputs = _predict_in_passes(heads_layer, ops, (X, lengths, heads, casing))

    def backprop(d_outputs: Dict[str, numpy.ndarray]) -> List[Doc]:
        # An empty doc's vectors may be (0, 0): its gradient takes their shape.
        d_docs = split_by_doc(ops.xp, bp_heads(d_outputs), tokvecs)
        return bp_tokvecs([d if len(vecs) else ops.alloc2f(*vecs.shape) for d, vecs in zip(d_docs, tokvecs)])

    return (outputs, segments), backprop


def segment_lengths(segments: List[Segment]) -> numpy.ndarray:
    return numpy.asarray([end - start for _, start, end in segments], dtype="int32")


def _padded_segment_heads(segments: List[Segment], lengths: numpy.ndarray, gold_heads) -> numpy.ndarray:
    """(segments, longest segment) parser columns of the given heads, -1 where unknown."""
    heads = numpy.full((len(segments), int(lengths.max(initial=0))), -1, dtype="int64")
    if gold_heads is not None:
        for s, (i, start, end) in enumerate(segments):
            if gold_heads[i] is not None:
                heads[s, : end - start] = _segment_heads(gold_heads[i][start:end], start, end)
    return heads


def _packed_casing(docs: Sequence[Doc], lengths: numpy.ndarray, spec: dict) -> numpy.ndarray:
    """Casing class of every token of the segments, in order, each
    segment's first token a sentence start; zeros when the heads read no
    casing (a pipeline saved before casing existed stores a spec without it)."""
    n_tokens = int(lengths.sum())
    if spec.get("casing_width", 0) <= 0:
        return numpy.zeros(n_tokens, dtype="int64")
    casing = docs_casing_classes(docs).astype("int64")
    casing[numpy.cumsum(lengths) - lengths] += SENTENCE_START
    return casing


# Real tokens the heads score in one pass at inference: a long document's
# segments go a few at a time, so their scores' memory stays bounded.
MAX_PASS_TOKENS = 8192


def _predict_in_passes(heads_layer: Model, ops, inputs) -> Dict[str, numpy.ndarray]:
    """The heads' outputs for every segment, from runs of consecutive
    segments of at most MAX_PASS_TOKENS real tokens (one run for a usual
    batch), joined along the segments."""
    X, lengths, heads, casing = inputs
    ends = numpy.cumsum(lengths)
    cuts, start = [], 0
    while start < len(lengths):
        stop = max(start + 1, int(numpy.searchsorted(ends, ends[start] - lengths[start] + MAX_PASS_TOKENS, side="right")))
        cuts.append((start, stop))
        start = stop
    if len(cuts) <= 1:
        return heads_layer(inputs, is_train=False)[0]
    parts = []
    for start, stop in cuts:
        tokens = slice(int(ends[start] - lengths[start]), int(ends[stop - 1]))
        parts.append(heads_layer((X[tokens], lengths[start:stop], heads[start:stop], casing[tokens]), is_train=False)[0])
    return {name: ops.xp.concatenate([part[name] for part in parts]) for name in parts[0]}


def _segment_heads(heads: numpy.ndarray, start: int, end: int) -> numpy.ndarray:
    """Absolute heads -> the parser's columns: 0 the root, k the k-th token
    of the segment (1-based); -1 (unknown) for heads outside the segment."""
    heads = numpy.asarray(heads, dtype="int64")
    positions = numpy.arange(start, end)
    columns = numpy.where(heads == positions, 0, heads - start + 1)
    unknown = (heads < 0) | (heads < start) | (heads >= end)
    return numpy.where(unknown, -1, columns)


def _convert_inputs(model: Model, inputs, is_train: bool):
    X, lengths, heads, casing = inputs
    Xt = xp2torch(X, requires_grad=is_train)

    def backprop(d_inputs: ArgsKwargs):
        return torch2xp(d_inputs.args[0])

    args = (Xt,) + tuple(torch.from_numpy(array).to(Xt.device) for array in (lengths, heads, casing))
    return ArgsKwargs(args=args, kwargs={}), backprop


def _convert_outputs(model: Model, inputs_outputs, is_train: bool):
    _, outputs = inputs_outputs
    # Scores leave in float32: under mixed precision they come out of the
    # module as float16, where the loss's log(p + EPSILON) underflows to -inf.
    outputs = {name: tensor.detach() if name == USED_HEADS else tensor.float() for name, tensor in outputs.items()}
    converted = {name: torch2xp(tensor) for name, tensor in outputs.items()}
    differentiable = [name for name in outputs if name != USED_HEADS]

    def backprop(d_outputs: Dict[str, numpy.ndarray]) -> ArgsKwargs:
        tensors = [outputs[name] for name in differentiable]
        grads = [xp2torch(d_outputs[name]) for name in differentiable]
        return ArgsKwargs(args=(tensors,), kwargs={"grad_tensors": grads})

    return converted, backprop


class ScaledLearnRateShim(PyTorchShim):
    """A PyTorch shim whose parameters take optimizer steps scaled by lr_scale."""

    def __init__(self, model: torch.nn.Module, lr_scale: float, **kwargs):
        super().__init__(model, **kwargs)
        self.lr_scale = lr_scale

    def finish_update(self, optimizer) -> None:
        super().finish_update(ScaledOptimizer(optimizer, self.lr_scale))
