"""Entity tagging and relation scoring over one encoder."""
from typing import Callable, List, Optional, Tuple

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, NumpyOps
from thinc.layers.chain import forward as chain_forward
from thinc.types import Floats2d, Floats3d, Ints1d, Ints2d

from .heads import OUTPUT_LAYER, doc_of_rows, logits_layer, same_width

# Columns of a pairs array: head start, head end, head type, tail start, tail end, tail type.
PAIR_COLUMNS = 6
# Upper bounds of the gap-length buckets of the distance embedding; longer
# gaps share the last bucket. Each bucket has a row for the head before the
# tail and one for the tail before the head.
GAP_BUCKETS = (0, 1, 2, 3, 4, 7, 15, 31)
N_DISTANCES = 2 * (len(GAP_BUCKETS) + 1)


@registry.architectures("spacy_mtl.SpanPairScorer.v1")
def build_span_pair_scorer(
    hidden_width: int = 256,
    type_width: int = 32,
    dropout: float = 0.1,
    max_pool: bool = False,
    distance_width: int = 0,
    nO: Optional[int] = None,
) -> Model[Tuple[List[Floats2d], List[Ints2d]], Floats2d]:
    """Relation logits for ordered span pairs: [mean(head); mean(tail);
    mean(tokens between them); E[head type]; E[tail type]] -> Maxout -> linear.
    With max_pool, each span's elementwise max joins its mean: a long gap's
    mean dilutes the few words that state the relation ("lives in", "of").
    With distance_width > 0, an embedding of the pair's order (head first or
    tail first) and of the number of tokens between them joins the features:
    the means alone do not say which entity comes first.
    Input: token vectors per doc and a (n_pairs, 6) int array per doc (see
    PAIR_COLUMNS); type 0 stands for an entity type unknown to the model.
    """
    if not isinstance(distance_width, int) or distance_width < 0:
        raise ValueError(f"SpanPairScorer.v1: distance_width must be an int >= 0, got {distance_width!r}")
    scorer, output_layer = logits_layer(hidden_width, dropout, nO)
    params = {"type_embedding": None}
    if distance_width:
        # Declared only when used: pipelines saved without it load unchanged.
        params["distance_embedding"] = None
    model = Model(
        "span_pair_scorer",
        _pair_forward,
        init=_pair_init,
        layers=[scorer],
        refs={"scorer": scorer, OUTPUT_LAYER: output_layer},
        dims={"n_types": None, "type_width": type_width, "distance_width": distance_width},
        params=params,
        attrs={"max_pool": max_pool},
    )
    return model


def _pair_init(model: Model, X=None, Y=None) -> Model:
    ops = model.ops
    table = ops.alloc2f(model.get_dim("n_types"), model.get_dim("type_width"))
    table += ops.xp.random.normal(0, 0.1, table.shape)
    model.set_param("type_embedding", table)
    if "distance_embedding" in model.param_names:
        distances = ops.alloc2f(N_DISTANCES, model.get_dim("distance_width"))
        distances += ops.xp.random.normal(0, 0.1, distances.shape)
        model.set_param("distance_embedding", distances)
    if X is not None:
        X = (X[0], [ops.alloc2i(0, PAIR_COLUMNS) for _ in X[0]])
        features, _ = _pair_features(model, *X)
        model.get_ref("scorer").initialize(X=features)
    return model


def _pair_forward(model: Model, inputs, is_train: bool) -> Tuple[Floats2d, Callable]:
    tokvecs, pairs = inputs
    if not is_train:
        return _predicted_logits(model, tokvecs, pairs), _no_backprop
    features, bp_features = _pair_features(model, tokvecs, pairs)
    logits, bp_scorer = model.get_ref("scorer")(features, is_train)

    def backprop(d_logits: Floats2d):
        return bp_features(bp_scorer(d_logits)), None

    return logits, backprop


def _pair_features(model: Model, tokvecs: List[Floats2d], pairs: List[Ints2d]):
    """The features of every doc's pairs, stacked in doc order. All docs are
    handled in one set of array operations (on a GPU, a dozen operations per
    doc would cost more than the arithmetic)."""
    ops, xp = model.ops, model.ops.xp
    table = model.get_param("type_embedding")
    width = tokvecs[0].shape[1] if tokvecs else 0
    type_width = table.shape[1]
    distances = model.get_param("distance_embedding") if "distance_embedding" in model.param_names else None
    extra_width = 2 * type_width + (distances.shape[1] if distances is not None else 0)
    host_pairs = [ops.to_numpy(doc_pairs).reshape(-1, PAIR_COLUMNS) for doc_pairs in pairs]
    n_pairs = [len(doc_pairs) for doc_pairs in host_pairs]
    n_pooled = 6 if model.attrs["max_pool"] else 3
    if not sum(n_pairs):
        no_features = ops.alloc2f(0, n_pooled * width + extra_width)
        return no_features, lambda d_features: [ops.alloc2f(*X.shape) for X in tokvecs]
    host_P = numpy.concatenate(host_pairs)
    P = ops.asarray2i(host_P)
    host_doc_of_pair = doc_of_rows(NumpyOps(), host_pairs)
    doc_of_pair = ops.asarray1i(host_doc_of_pair)
    n_tokens = [len(X) for X in tokvecs]
    padded, sums = _prefix_sums(ops, tokvecs)
    n_rows = sums.shape[1]
    spans = _pair_spans(xp, P)
    lengths = [xp.maximum(end - start, 1).astype("float32")[:, None] for start, end in spans]
    means = [
        (sums[doc_of_pair, end] - sums[doc_of_pair, start]) / length for (start, end), length in zip(spans, lengths)
    ]
    if n_pooled > 3:
        maxes, bp_maxes = _span_maxes(ops, padded, host_P, host_doc_of_pair)
        means = means + maxes
    embedded = [table[P[:, 2]], table[P[:, 5]]]
    if distances is not None:
        distance_rows = ops.asarray1i(_distance_rows(host_P))
        embedded.append(distances[distance_rows])
    features = xp.hstack(means + embedded)

    def backprop(d_features: Floats2d) -> List[Floats2d]:
        # A span mean spreads its gradient evenly over the span: add it at
        # the start, remove it at the end, and a cumulative sum fills it in.
        deltas = ops.alloc2f(len(tokvecs) * n_rows, width)
        for k, ((start, end), length) in enumerate(zip(spans, lengths)):
            share = d_features[:, k * width : (k + 1) * width] / length
            ops.scatter_add(deltas, doc_of_pair * n_rows + start, share)
            ops.scatter_add(deltas, doc_of_pair * n_rows + end, -share)
        d_padded = xp.cumsum(deltas.reshape(len(tokvecs), n_rows, width), axis=1)[:, : n_rows - 1]
        if n_pooled > 3:
            d_padded += bp_maxes(d_features[:, 3 * width : n_pooled * width])
        d_table = ops.alloc2f(*table.shape)
        types = d_features[:, n_pooled * width :]
        ops.scatter_add(d_table, P[:, 2], xp.ascontiguousarray(types[:, :type_width]))
        ops.scatter_add(d_table, P[:, 5], xp.ascontiguousarray(types[:, type_width : 2 * type_width]))
        model.inc_grad("type_embedding", d_table)
        if distances is not None:
            d_distances = ops.alloc2f(*distances.shape)
            ops.scatter_add(d_distances, distance_rows, xp.ascontiguousarray(types[:, 2 * type_width :]))
            model.inc_grad("distance_embedding", d_distances)
        return [d_padded[i, :n] for i, n in enumerate(n_tokens)]

    return features, backprop


def _prefix_sums(ops, tokvecs: List[Floats2d], cumsum=None) -> Tuple[Floats3d, Floats3d]:
    """The docs' token vectors padded to one array, and its _padded_prefix_sums."""
    padded = ops.pad(tokvecs)
    return padded, _padded_prefix_sums(ops, padded, cumsum)


def _padded_prefix_sums(ops, padded: Floats3d, cumsum=None) -> Floats3d:
    """Each padded doc's prefix sums after a zero row: a span's sum is the
    difference of two rows."""
    sums = ops.alloc3f(padded.shape[0], padded.shape[1] + 1, padded.shape[2])
    sums[:, 1:] = (cumsum or ops.xp.cumsum)(padded, axis=1)
    return sums


def _fast_cumsum(X, axis: int):
    """cumsum; on a CPU through PyTorch, four times faster than numpy's. Its
    sums differ from numpy's in the last bits, so only inference uses it:
    training's features and gradients stay as they were."""
    if isinstance(X, numpy.ndarray) and X.flags.writeable:
        return torch.cumsum(torch.from_numpy(X), dim=axis).numpy()
    return X.cumsum(axis=axis)


def _no_backprop(d_logits):
    raise ValueError("span_pair_scorer: no backprop from a call with is_train=False")


def _predicted_logits(model: Model, tokvecs: List[Floats2d], pairs: List[Ints2d]) -> Floats2d:
    """The scorer's logits on the pairs' features, up to float rounding,
    without stacking the features: the first layer is linear in them, so it
    is applied to each block of features where the block is shared. An
    entity's mean (and max) and type embedding are projected once per
    entity, however many pairs it takes part in; the distance table once per
    row; the gap's mean through projected prefix sums when the pairs
    outnumber the tokens. A long document has a hundred times more pairs than
    entities, and the first layer over stacked features was nearly all of
    its cost."""
    ops = model.ops
    first, *rest = _chain_leaves(model.get_ref("scorer"))
    host_pairs = [ops.to_numpy(doc_pairs).reshape(-1, PAIR_COLUMNS) for doc_pairs in pairs]
    if not sum(len(doc_pairs) for doc_pairs in host_pairs):
        return ops.alloc2f(0, model.get_ref(OUTPUT_LAYER).get_dim("nO"))
    # Only the docs with pairs are padded and summed: most docs of a batch
    # have fewer than two entities.
    with_pairs = [i for i, doc_pairs in enumerate(host_pairs) if len(doc_pairs)]
    host_P = numpy.concatenate(host_pairs)
    host_doc_of_pair = doc_of_rows(NumpyOps(), [host_pairs[i] for i in with_pairs])
    padded, sums = _prefix_sums(ops, [tokvecs[i] for i in with_pairs], cumsum=_fast_cumsum)
    blocks = _weight_blocks(model, first.get_param("W").reshape(-1, first.get_dim("nI")), padded.shape[2])
    # With max_pool, the padded rows once, with the zero row of empty spans.
    flat = _with_zero_row(ops, padded) if model.attrs["max_pool"] else None
    entities, head_index, tail_index = _distinct_entities(host_doc_of_pair, host_P, sums.shape[1])
    head_terms, tail_terms = _entity_terms(model, sums, flat, entities, blocks)
    terms = RowSum(ops, len(host_P))
    terms.add_rows(head_terms, head_index)
    terms.add_rows(tail_terms, tail_index)
    _add_gap_terms(terms, model, padded, sums, flat, host_P, host_doc_of_pair, blocks)
    if "distance" in blocks:
        distance_terms = ops.gemm(model.get_param("distance_embedding"), blocks["distance"], trans2=True)
        terms.add_rows(distance_terms, _distance_rows(host_P))
    bias = first.get_param("b").reshape(1, -1)
    terms.add_rows(bias, numpy.zeros(len(host_P), dtype="int64"))
    Y = terms.total()
    if first.has_dim("nP"):
        Y = ops.maxout(Y.reshape(len(Y), first.get_dim("nO"), first.get_dim("nP")))[0]
    for layer in rest:
        Y = _layer_norm(layer, Y) if _is_layer_norm(layer) else layer.predict(Y)
    return Y


def _is_layer_norm(layer: Model) -> bool:
    return layer.name == "layernorm" and set(layer.param_names) == {"G", "b"}


def _layer_norm(layer: Model, X: Floats2d) -> Floats2d:
    """thinc's LayerNorm at inference, through PyTorch on a CPU: numpy's var
    and the temporaries of thinc's formula took a sixth of the relation
    scores of a long document. The same up to float rounding."""
    if not isinstance(X, numpy.ndarray):
        return layer.predict(X)
    G, b = (torch.from_numpy(layer.get_param(name)) for name in ("G", "b"))
    # thinc's formula: (X - mean) * (var + 1e-08) ** -0.5 * G + b
    return torch.nn.functional.layer_norm(torch.from_numpy(X), G.shape, G, b, eps=1e-08).numpy()


def _chain_leaves(model: Model) -> List[Model]:
    """The layers a chain applies, in order, nested chains flattened."""
    if model._func is not chain_forward:
        return [model]
    return [leaf for layer in model.layers for leaf in _chain_leaves(layer)]


def _weight_blocks(model: Model, W: Floats2d, width: int) -> dict:
    """The first layer's weight columns for each block of the features, by
    name, in the order _pair_features stacks them."""
    names = ["head_mean", "tail_mean", "gap_mean"]
    if model.attrs["max_pool"]:
        names += ["head_max", "tail_max", "gap_max"]
    widths = [width] * len(names)
    type_width = model.get_dim("type_width")
    names += ["head_type", "tail_type"]
    widths += [type_width, type_width]
    if "distance_embedding" in model.param_names:
        names.append("distance")
        widths.append(model.get_dim("distance_width"))
    offsets = numpy.cumsum([0] + widths)
    return {name: W[:, offsets[i] : offsets[i + 1]] for i, name in enumerate(names)}


def _distinct_entities(doc_of_pair: numpy.ndarray, host_P: numpy.ndarray, n_rows: int):
    """The distinct (doc, start, end, type) entities among the pairs' heads
    and tails, as four columns, and the index among them of each pair's head
    and of its tail."""
    n_types = int(max(host_P[:, 2].max(), host_P[:, 5].max())) + 1
    docs = doc_of_pair.astype("int64")
    keys = numpy.concatenate([
        ((docs * n_rows + host_P[:, 0]) * n_rows + host_P[:, 1]) * n_types + host_P[:, 2],
        ((docs * n_rows + host_P[:, 3]) * n_rows + host_P[:, 4]) * n_types + host_P[:, 5],
    ])
    distinct, index = numpy.unique(keys, return_inverse=True)
    spans, types = numpy.divmod(distinct, n_types)
    spans, ends = numpy.divmod(spans, n_rows)
    entity_docs, starts = numpy.divmod(spans, n_rows)
    return (entity_docs, starts, ends, types), index[: len(host_P)], index[len(host_P) :]


def _entity_terms(model: Model, sums: Floats3d, flat: Optional[Floats2d], entities, blocks: dict):
    """The first layer's terms of each distinct entity as a pair's head and
    as its tail: its mean, its max (with max_pool) and its type embedding."""
    ops, xp = model.ops, model.ops.xp
    docs, starts, ends, types = (ops.asarray1i(column) for column in entities)
    means = sums[docs, ends] - sums[docs, starts]
    means /= xp.maximum(ends - starts, 1).astype("float32")[:, None]
    table = model.get_param("type_embedding")[types]
    maxes = _maxes(ops, flat, sums.shape[1] - 1, *entities[:3]) if flat is not None else None
    terms = []
    for role in ("head", "tail"):
        term = ops.gemm(means, blocks[f"{role}_mean"], trans2=True)
        term += ops.gemm(table, blocks[f"{role}_type"], trans2=True)
        if maxes is not None:
            term += ops.gemm(maxes, blocks[f"{role}_max"], trans2=True)
        terms.append(term)
    return terms


def _add_gap_terms(
    terms: "RowSum", model: Model, padded: Floats3d, sums: Floats3d, flat: Optional[Floats2d], host_P, host_doc_of_pair,
    blocks: dict,
) -> None:
    """The first layer's terms of each pair's gap: its mean and (with
    max_pool) its max. With more pairs than tokens, the tokens are projected
    first and a gap's mean term is a difference of the projections' prefix
    sums, divided by its length; otherwise the means are projected."""
    ops = model.ops
    host_start, host_end = _pair_spans(numpy, host_P)[2]
    n_docs, n_padded, width = padded.shape
    lengths = numpy.maximum(host_end - host_start, 1).astype("float32")
    if len(host_P) <= n_docs * n_padded:
        starts, ends, docs = ops.asarray1i(host_start), ops.asarray1i(host_end), ops.asarray1i(host_doc_of_pair)
        means = sums[docs, ends] - sums[docs, starts]
        means /= ops.asarray1f(lengths)[:, None]
        terms.add(ops.gemm(means, blocks["gap_mean"], trans2=True))
    else:
        share = 1.0 / lengths
        projected = ops.gemm(padded.reshape(-1, width), blocks["gap_mean"], trans2=True)
        projected_sums = _padded_prefix_sums(ops, projected.reshape(n_docs, n_padded, -1), _fast_cumsum)
        rows = host_doc_of_pair.astype("int64") * (n_padded + 1)
        projected_sums = projected_sums.reshape(-1, projected_sums.shape[2])
        terms.add_rows(projected_sums, rows + host_end, share)
        terms.add_rows(projected_sums, rows + host_start, -share)
    if flat is not None:
        terms.add(ops.gemm(_maxes(ops, flat, n_padded, host_doc_of_pair, host_start, host_end), blocks["gap_max"], trans2=True))


class RowSum:
    """A sum of n rows: each row of the result adds one weighted row of
    every table given to add_rows, and every dense array given to add. On a
    CPU the gathered rows are summed in one pass
    (torch.nn.functional.embedding_bag): a long document's relation scores
    gather and add millions of rows, and gathering each table into an array
    of its own and adding them up took half their time."""

    def __init__(self, ops, n: int):
        self.ops, self.n = ops, n
        self.tables: List[Floats2d] = []
        self.rows: List[numpy.ndarray] = []
        self.weights: List[Optional[numpy.ndarray]] = []
        self.dense: List[Floats2d] = []

    def add_rows(self, table: Floats2d, rows: numpy.ndarray, weights: Optional[numpy.ndarray] = None) -> None:
        """Add table[rows[i]] * weights[i] to row i; rows and weights on the host."""
        self.tables.append(table)
        self.rows.append(numpy.asarray(rows, dtype="int64"))
        self.weights.append(None if weights is None else numpy.asarray(weights, dtype="float32"))

    def add(self, dense: Floats2d) -> None:
        self.dense.append(dense)

    def total(self) -> Floats2d:
        if not self.tables:
            Y = self.ops.alloc2f(self.n, self.dense[0].shape[1] if self.dense else 0)
        elif all(isinstance(table, numpy.ndarray) for table in self.tables):
            Y = self._embedding_bag()
        else:
            Y = self._gathered()
        for dense in self.dense:
            Y += dense
        return Y

    def _embedding_bag(self) -> numpy.ndarray:
        offsets = numpy.cumsum([0] + [len(table) for table in self.tables[:-1]])
        rows = numpy.stack([r + offset for r, offset in zip(self.rows, offsets)], axis=1)
        ones = numpy.ones(self.n, dtype="float32")
        weights = numpy.stack([ones if w is None else w for w in self.weights], axis=1)
        table = torch.from_numpy(numpy.concatenate(self.tables))
        Y = torch.nn.functional.embedding_bag(torch.from_numpy(rows), table, mode="sum",
                                              per_sample_weights=torch.from_numpy(weights))
        return Y.numpy()

    def _gathered(self) -> Floats2d:
        ops = self.ops
        Y = ops.alloc2f(self.n, self.tables[0].shape[1])
        for table, rows, weights in zip(self.tables, self.rows, self.weights):
            gathered = table[ops.asarray1i(rows)]
            Y += gathered if weights is None else gathered * ops.asarray1f(weights)[:, None]
        return Y


def _with_zero_row(ops, padded: Floats3d) -> Floats2d:
    """The padded docs' rows, one after another, and one zero row after them
    that stands for an empty span."""
    return ops.xp.vstack([padded.reshape(-1, padded.shape[2]), ops.alloc2f(1, padded.shape[2])])


def _maxes(ops, flat: Floats2d, n_padded: int, docs, starts, ends) -> Floats2d:
    """The elementwise max over each span's tokens (zeros for an empty
    span), from _with_zero_row's rows of docs padded to n_padded tokens; the
    spans' docs, starts and ends come on the host."""
    rows, lengths = _flat_span_rows(ops, n_padded, len(flat) - 1, docs, starts, ends)
    return ops.reduce_max(flat[rows], lengths)[0]


def _flat_span_rows(ops, n_padded: int, zero_row: int, docs, starts, ends):
    """_span_rows of spans in docs padded to n_padded tokens, on the
    device; docs, starts and ends come on the host."""
    rows, lengths = _span_rows(numpy.asarray(docs) * n_padded, numpy.asarray(starts), numpy.asarray(ends), zero_row)
    return ops.asarray1i(rows), ops.asarray1i(lengths)


def _pair_spans(xp, P: Ints2d) -> List[Tuple[Ints1d, Ints1d]]:
    """(start, end) of each pair's head, its tail and the gap between them
    (empty for adjacent or overlapping entities)."""
    gap_start = xp.minimum(P[:, 1], P[:, 4])
    gap_end = xp.maximum(gap_start, xp.maximum(P[:, 0], P[:, 3]))
    return [(P[:, 0], P[:, 1]), (P[:, 3], P[:, 4]), (gap_start, gap_end)]


def _distance_rows(host_P: numpy.ndarray) -> numpy.ndarray:
    """Each pair's row of the distance embedding: the bucket of its gap's
    length, offset by the number of buckets when the tail comes first."""
    gap_start, gap_end = _pair_spans(numpy, host_P)[2]
    bucket = numpy.searchsorted(GAP_BUCKETS, gap_end - gap_start)
    tail_first = host_P[:, 3] < host_P[:, 0]
    return (bucket + tail_first * (len(GAP_BUCKETS) + 1)).astype("int32")


def _span_maxes(ops, padded: Floats3d, host_P: numpy.ndarray, host_doc_of_pair: numpy.ndarray):
    """Per pair, the elementwise max over the tokens of its head, its tail and
    the gap between them (zeros for an empty gap), as three (n_pairs, width)
    arrays; backprop returns the gradient on the padded token vectors
    (n_docs, max length, width). Each span's rows are gathered into one
    ragged array, so every doc and span takes the same few operations. The
    pairs and their docs' indices come on the host, where the rows are
    worked out."""
    n_docs, max_len, width = padded.shape
    flat = _with_zero_row(ops, padded)
    zero_row = n_docs * max_len
    gathered = [
        _flat_span_rows(ops, max_len, zero_row, host_doc_of_pair, start, end) for start, end in _pair_spans(numpy, host_P)
    ]
    maxes, whiches = [], []
    for rows, lengths in gathered:
        span_max, which = ops.reduce_max(flat[rows], lengths)
        maxes.append(span_max)
        whiches.append(which)

    def backprop(d_maxes: Floats2d) -> Floats2d:
        d_flat = ops.alloc2f(zero_row + 1, width)
        for k, ((rows, lengths), which) in enumerate(zip(gathered, whiches)):
            d_span = ops.xp.ascontiguousarray(d_maxes[:, k * width : (k + 1) * width])
            d_rows = ops.backprop_reduce_max(d_span, which, lengths)
            ops.scatter_add(d_flat, rows, d_rows)
        return d_flat[:zero_row].reshape(n_docs, max_len, width)

    return maxes, backprop


def _span_rows(first_row: numpy.ndarray, start: numpy.ndarray, end: numpy.ndarray, zero_row: int):
    """The flat row of every token of every span, span after span, and each
    span's length; an empty span is the one zero row."""
    lengths = end - start
    empty = lengths <= 0
    lengths = numpy.where(empty, 1, lengths).astype("int32")
    span_of_row = numpy.repeat(numpy.arange(len(lengths)), lengths)
    offset = numpy.arange(len(span_of_row)) - numpy.repeat(numpy.cumsum(lengths) - lengths, lengths)
    rows = first_row[span_of_row] + start[span_of_row] + offset
    return numpy.where(empty[span_of_row], zero_row, rows).astype("int32"), lengths


@registry.architectures("spacy_mtl.NerReModel.v1")
def build_ner_re_model(
    tok2vec: Model[List[Doc], List[Floats2d]],
    entity_head: Model[List[Floats2d], List[Floats2d]],
    relation_head: Model,
) -> Model[List[Doc], Tuple[List[Floats2d], List[Floats2d]]]:
    """Returns (token vectors, entity tag logits) per doc. The component
    builds candidate pairs from entities and calls `relation_head` on the
    token vectors; backprop takes (d token vectors, d entity logits)."""
    return Model(
        "ner_re",
        _ner_re_forward,
        init=_ner_re_init,
        layers=[tok2vec, entity_head, relation_head],
        refs={"tok2vec": tok2vec, "entity_head": entity_head, "relation_head": relation_head},
    )


def _ner_re_init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    tok2vec = model.get_ref("tok2vec")
    tok2vec.initialize(X=X)
    tokvecs = tok2vec.predict(X) if X is not None else None
    model.get_ref("entity_head").initialize(X=tokvecs)
    model.get_ref("relation_head").initialize(X=(tokvecs, None) if tokvecs is not None else None)
    return model


def _ner_re_forward(model: Model, docs: List[Doc], is_train: bool):
    tokvecs, bp_encoder = model.get_ref("tok2vec")(docs, is_train)
    tokvecs, bp_tokvecs = same_width(model.ops, tokvecs, bp_encoder)
    entity_logits, bp_entities = model.get_ref("entity_head")(tokvecs, is_train)

    def backprop(d_outputs):
        d_tokvecs, d_entity_logits = d_outputs
        d_from_entities = bp_entities(d_entity_logits)
        return bp_tokvecs([a + b for a, b in zip(d_tokvecs, d_from_entities)])

    return (tokvecs, entity_logits), backprop
