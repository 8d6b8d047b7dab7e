"""A cascade of heads over one encoder: token taggers (PTB tags, UPOS,
chunk tags) and a biaffine dependency parser (Dozat and Manning 2017), each
level reading a chosen encoder layer or a learned mix of layers, and the soft
label embeddings p(labels) @ E of the levels below it (Hashimoto et al. 2017).

The heads run in PyTorch on sentence segments: every level sees the padded
(segments, tokens, features) batch, so the parser's arc scores are
(tokens x tokens) per sentence, never per document."""
from typing import Dict, List, Sequence, Tuple, Union

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, PyTorchShim, torch2xp, xp2torch
from thinc.types import Floats2d

from ..compat import pytorch_wrapper_forward
from .casing import N_CASING_CLASSES, SENTENCE_START, casing_class
from .optimizers import ScaledOptimizer
from ..trees import decode_tree

TAGGER_KINDS = ("tag", "pos", "chunk")
PARSER_KIND = "dep"
LEVEL_KINDS = TAGGER_KINDS + (PARSER_KIND,)
LAYER_MIX = "mix"
HEADS_LAYER = "heads"
# Padding and impossible arcs; finite, so softmax and fp16 stay well defined.
MASKED_SCORE = -1e4
# Outputs with a gradient, in the order the backward pass passes them.
ARC_SCORES, DEP_LABEL_SCORES, USED_HEADS = "arcs", "dep_labels", "used_heads"

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
    n_tokens = max([end - start for _, start, end in segments], default=0)
    width = model.attrs["input_width"]
    X = ops.alloc3f(len(segments), n_tokens, width)  # on the model's device
    lengths = numpy.zeros(len(segments), dtype="int32")
    heads = numpy.full((len(segments), n_tokens), -1, dtype="int64")
    casing = numpy.zeros((len(segments), n_tokens), dtype="int64")
    # A pipeline saved before casing existed stores a spec without it.
    with_casing = model.attrs["spec"].get("casing_width", 0) > 0
    for s, (i, start, end) in enumerate(segments):
        X[s, : end - start] = tokvecs[i][start:end]
        lengths[s] = end - start
        if with_casing:
            casing[s, : end - start] = [casing_class(token.text) for token in docs[i][start:end]]
            casing[s, 0] += SENTENCE_START  # segments are sentences or windows
        if gold_heads is not None and gold_heads[i] is not None:
            heads[s, : end - start] = _segment_heads(gold_heads[i][start:end], start, end)
    outputs, bp_heads = model.get_ref(HEADS_LAYER)((X, lengths, heads, casing), is_train)

    def backprop(d_outputs: Dict[str, numpy.ndarray]) -> List[Doc]:
        dX = bp_heads(d_outputs)
        d_tokvecs = [ops.alloc2f(*vecs.shape) for vecs in tokvecs]
        for s, (i, start, end) in enumerate(segments):
            d_tokvecs[i][start:end] = dX[s, : end - start]
        return bp_tokvecs(d_tokvecs)

    return (outputs, segments), backprop


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


class LayerMix(torch.nn.Module):
    """gamma * sum_l softmax(w)_l h_l over the encoder's hidden states
    (Peters et al. 2018), or one chosen hidden state."""

    def __init__(self, n_states: int, layer: Union[int, str]):
        super().__init__()
        self.n_states = n_states
        self.layer = layer
        if layer == LAYER_MIX:
            self.weights = torch.nn.Parameter(torch.zeros(n_states))
            self.gamma = torch.nn.Parameter(torch.ones(1))  # 1-d: thinc optimizers reject 0-d params

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        states = X.view(*X.shape[:-1], self.n_states, X.shape[-1] // self.n_states)
        if self.layer != LAYER_MIX:
            return states[..., self.layer, :]
        weights = torch.softmax(self.weights, dim=0).to(states.dtype)
        return self.gamma * torch.einsum("...lh,l->...h", states, weights)


def mlp(n_in: int, n_out: int, dropout: float) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(n_in, n_out), torch.nn.GELU())


class Tagger(torch.nn.Module):
    def __init__(self, n_in: int, hidden_width: int, n_labels: int, dropout: float):
        super().__init__()
        self.hidden = mlp(n_in, hidden_width, dropout)
        self.output = torch.nn.Linear(hidden_width, n_labels)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden(X))


class BiaffineParser(torch.nn.Module):
    """Arc scores (segments, dependents, 1 + heads), column 0 the root, and
    label scores of each dependent with the head it is given."""

    def __init__(self, n_in: int, arc_width: int, label_width: int, n_labels: int, dropout: float):
        super().__init__()
        self.root = torch.nn.Parameter(torch.randn(n_in) * 0.1)
        self.arc_dep, self.arc_head = mlp(n_in, arc_width, dropout), mlp(n_in, arc_width, dropout)
        self.label_dep, self.label_head = mlp(n_in, label_width, dropout), mlp(n_in, label_width, dropout)
        self.arc_weight = torch.nn.Parameter(torch.zeros(arc_width, arc_width))
        self.arc_head_bias = torch.nn.Parameter(torch.zeros(arc_width))
        self.label_weight = torch.nn.Parameter(torch.zeros(n_labels, label_width, label_width))
        self.label_linear = torch.nn.Linear(2 * label_width, n_labels)

    def forward(self, X: torch.Tensor, mask: torch.Tensor, heads: torch.Tensor) -> Dict[str, torch.Tensor]:
        """X: the real tokens of the segments, packed (tokens, width); mask
        (segments, positions) says where they sit. Scores come out padded."""
        n_segments, n_tokens = mask.shape
        root = self.root.to(X.dtype)
        dep = unpack(self.arc_dep(X), mask)
        head = torch.cat([self.arc_head(root).expand(n_segments, 1, -1), unpack(self.arc_head(X), mask)], dim=1)
        arcs = torch.einsum("bie,ef,bjf->bij", dep, self.arc_weight.to(X.dtype), head)
        arcs = arcs + (head @ self.arc_head_bias.to(X.dtype))[:, None, :]
        candidates = torch.cat([mask.new_ones(n_segments, 1), mask], dim=1)
        self_loops = torch.zeros(n_tokens, n_tokens + 1, dtype=torch.bool, device=X.device)
        self_loops[:, 1:] = torch.eye(n_tokens, dtype=torch.bool, device=X.device)
        allowed = candidates[:, None, :] & ~self_loops[None]
        arcs = arcs.masked_fill(~allowed, MASKED_SCORE)
        heads = self._fill_heads(arcs, mask, heads)
        # Label scores only at real tokens: with the head each one is given,
        # found among the packed tokens (row 0 the root).
        label_heads = torch.cat([self.label_head(root)[None], self.label_head(X)])
        segment_offsets = torch.cumsum(mask.sum(dim=1), dim=0) - mask.sum(dim=1)
        columns = heads.clamp(min=0)
        rows = torch.where(columns == 0, 0, segment_offsets[:, None] + columns)[mask]
        # Not label_heads[rows]: on the CPU, with several threads, its backward
        # adds up the gradients of tokens that share a head in a different
        # order each time, and training does not repeat itself.
        label_dep, label_head = self.label_dep(X), label_heads.index_select(0, rows)
        # (torch's bilinear is faster forward on CPU, but ~30x slower backward.)
        labels = torch.einsum("ie,lef,if->il", label_dep, self.label_weight.to(X.dtype), label_head)
        labels = labels + self.label_linear(torch.cat([label_dep, label_head], dim=-1))
        return {ARC_SCORES: arcs, DEP_LABEL_SCORES: unpack(labels, mask), USED_HEADS: heads}

    def _fill_heads(self, arcs: torch.Tensor, mask: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        """Given heads where known; elsewhere the decoded tree (inference) or
        the best-scoring head (training, where those tokens carry no loss)."""
        missing = (heads < 0) & mask
        if not bool(missing.any()):
            return heads
        heads = heads.clone()
        if self.training:
            heads[missing] = arcs.argmax(dim=-1)[missing]
            return heads
        scores = arcs.detach().float().cpu().numpy()
        lengths = mask.sum(dim=1).tolist()
        for s, length in enumerate(lengths):
            if length and bool(missing[s].any()):
                tree = decode_tree(_square_scores(scores[s], length))[1:]
                row = torch.as_tensor(tree, device=heads.device)
                heads[s, :length] = torch.where(heads[s, :length] < 0, row, heads[s, :length])
        return heads


def _square_scores(arcs: numpy.ndarray, length: int) -> numpy.ndarray:
    """A segment's arc scores as the (n + 1, n + 1) matrix of decode_tree."""
    square = numpy.full((length + 1, length + 1), MASKED_SCORE, dtype="float64")
    square[1:] = arcs[:length, : length + 1]
    return square


class CascadeHeads(torch.nn.Module):
    def __init__(
        self,
        input_width: int,
        n_labels: Dict[str, int],
        levels: List[str],
        inputs: Dict[str, List[str]],
        layers: Dict[str, Union[int, str]],
        n_hidden_states: int,
        hidden_width: int,
        label_embedding_width: int,
        arc_width: int,
        dep_label_width: int,
        dropout: float,
        casing_width: int = 0,
    ):
        super().__init__()
        if input_width % n_hidden_states:
            raise ValueError(f"Encoder width {input_width} is not a multiple of n_hidden_states = {n_hidden_states}")
        width = input_width // n_hidden_states
        self.levels = list(levels)
        self.inputs = inputs
        self.mixes = torch.nn.ModuleDict({level: LayerMix(n_hidden_states, layers[level]) for level in levels})
        self.label_embeddings = torch.nn.ModuleDict()
        for level in levels:
            for source in inputs[level]:
                if source not in self.label_embeddings:
                    self.label_embeddings[source] = torch.nn.Linear(n_labels[source], label_embedding_width, bias=False)
        self.casing = torch.nn.Embedding(N_CASING_CLASSES, casing_width) if casing_width else None
        self.heads = torch.nn.ModuleDict()
        for level in levels:
            n_in = width + casing_width + label_embedding_width * len(inputs[level])
            if level == PARSER_KIND:
                self.heads[level] = BiaffineParser(n_in, arc_width, dep_label_width, n_labels[level], dropout)
            else:
                self.heads[level] = Tagger(n_in, hidden_width, n_labels[level], dropout)

    def forward(self, X: torch.Tensor, lengths: torch.Tensor, heads: torch.Tensor, casing: torch.Tensor) -> Dict[str, torch.Tensor]:
        mask = torch.arange(X.shape[1], device=X.device)[None, :] < lengths[:, None]
        # The heads run on the real tokens only: short sentences padded to the
        # longest of a batch are mostly padding.
        X = X[mask]
        shared = [self.casing(casing[mask]).to(X.dtype)] if self.casing is not None else []
        outputs: Dict[str, torch.Tensor] = {}
        soft_labels: Dict[str, torch.Tensor] = {}
        for level in self.levels:
            features = [self.mixes[level](X)] + shared
            for source in self.inputs[level]:
                if source not in soft_labels:
                    probs = torch.softmax(outputs[source].float(), dim=-1).to(X.dtype)
                    soft_labels[source] = self.label_embeddings[source](probs)
                features.append(soft_labels[source])
            level_input = torch.cat(features, dim=-1)
            if level == PARSER_KIND:
                outputs.update(self.heads[level](level_input, mask, heads))
            else:
                outputs[level] = self.heads[level](level_input)
        return {name: unpack(scores, mask) if name in TAGGER_KINDS else scores for name, scores in outputs.items()}


def unpack(packed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(tokens, ...) rows back to (segments, positions, ...), zeros as padding."""
    padded = packed.new_zeros(*mask.shape, *packed.shape[1:])
    padded[mask] = packed
    return padded
