"""Reusable task heads. Each head maps token vectors to logits; the component
that owns a head turns logits into probabilities, losses and annotations."""
from typing import Callable, List, Optional, Sequence, Tuple

import numpy
from spacy.util import registry
from thinc.api import Linear, Maxout, Model, Ops, chain, with_array
from thinc.types import Floats2d

OUTPUT_LAYER = "output_layer"


@registry.architectures("spacy_mtl.TokenClassifier.v1")
def build_token_classifier(
    hidden_width: int = 0,
    dropout: float = 0.1,
    nO: Optional[int] = None,
) -> Model[List[Floats2d], List[Floats2d]]:
    """Per-token logits over a tag set (BIO slots, BILUO entities, POS...).

    hidden_width (int): width of an optional Maxout layer before the output
        layer; 0 puts the output layer straight on the token vectors.
    dropout (float): dropout of the hidden layer.
    nO (Optional[int]): number of tags; usually set by the component.
    """
    layer, output_layer = logits_layer(hidden_width, dropout, nO)
    model = with_array(layer)
    model.set_ref(OUTPUT_LAYER, output_layer)
    return model


@registry.architectures("spacy_mtl.SequenceClassifier.v1")
def build_sequence_classifier(
    hidden_width: int = 0,
    dropout: float = 0.1,
    nO: Optional[int] = None,
) -> Model[List[Floats2d], Floats2d]:
    """One row of logits per sequence, from the mean of its token vectors.
    Softmax or sigmoid is applied by the component, so the same head serves
    single-label and multi-label classification.
    """
    layer, output_layer = logits_layer(hidden_width, dropout, nO)
    model = chain(mean_pool(), layer)
    model.set_ref(OUTPUT_LAYER, output_layer)
    return model


@registry.architectures("spacy_mtl.SoftLabelEmbedding.v1")
def build_soft_label_embedding(
    width: int = 32, nI: Optional[int] = None
) -> Model[Floats2d, Floats2d]:
    """`p(labels) @ E` (Hashimoto et al. 2017): embeds an upstream head's
    predicted distribution so a downstream head can read it differentiably.
    nI is the number of upstream labels; usually set by the component.
    """
    return Model(
        "soft_label_embedding",
        _label_embedding_forward,
        init=_label_embedding_init,
        dims={"nO": width, "nI": nI},
        params={"E": None},
    )


def _label_embedding_init(model: Model, X=None, Y=None) -> Model:
    if X is not None:
        model.set_dim("nI", X.shape[1])
    # No bias: a soft label is a convex mix of label vectors, nothing more.
    E = model.ops.alloc2f(model.get_dim("nI"), model.get_dim("nO"))
    E += model.ops.xp.random.normal(0, 0.1, E.shape)
    model.set_param("E", E)
    return model


def _label_embedding_forward(model: Model, P: Floats2d, is_train: bool):
    E = model.get_param("E")
    Y = model.ops.gemm(P, E)

    def backprop(dY: Floats2d) -> Floats2d:
        model.inc_grad("E", model.ops.gemm(P, dY, trans1=True))
        return model.ops.gemm(dY, E, trans2=True)

    return Y, backprop


def logits_layer(hidden_width: int, dropout: float, nO: Optional[int]) -> Tuple[Model, Model]:
    """An optional normalized Maxout layer, then a linear output layer;
    returns the stack and its output layer (whose nO the component sets)."""
    output_layer = Linear(nO=nO)
    if not hidden_width:
        return output_layer, output_layer
    hidden = Maxout(nO=hidden_width, nP=2, dropout=dropout, normalize=True)
    return chain(hidden, output_layer), output_layer


def mean_pool() -> Model[List[Floats2d], Floats2d]:
    """Mean of each sequence's rows; an empty sequence gives a zero row, so
    empty documents pass through without NaNs."""
    return Model("mean_pool", _mean_pool_forward)


def _mean_pool_forward(
    model: Model, Xs: List[Floats2d], is_train: bool
) -> Tuple[Floats2d, Callable]:
    ops = model.ops
    lengths = [len(X) for X in Xs]
    width = Xs[0].shape[1] if Xs else 0
    Y = ops.alloc2f(len(Xs), width)
    for i, X in enumerate(Xs):
        if lengths[i]:
            Y[i] = X.mean(axis=0)

    def backprop(dY: Floats2d) -> List[Floats2d]:
        dXs = []
        for i, length in enumerate(lengths):
            dX = ops.alloc2f(length, width)
            if length:
                dX += dY[i] / length
            dXs.append(dX)
        return dXs

    return Y, backprop


def same_width(ops: Ops, tokvecs: List[Floats2d], bp_encoder: Callable):
    """spacy-transformers gives an empty doc a (0, 0) array: give it the
    width of the others so that batches mixing empty docs concatenate."""
    width = max((t.shape[1] for t in tokvecs), default=0)
    shapes = [t.shape for t in tokvecs]
    fixed = [t if t.shape[1] == width else ops.alloc2f(0, width) for t in tokvecs]

    def backprop(d_tokvecs: List[Floats2d]):
        return bp_encoder([d if d.shape == shape else ops.alloc2f(*shape) for d, shape in zip(d_tokvecs, shapes)])

    return fixed, backprop


def doc_of_rows(ops: Ops, per_doc: Sequence):
    """The doc index of each row once the docs' arrays in per_doc are stacked."""
    return ops.asarray1i(numpy.repeat(numpy.arange(len(per_doc)), [len(array) for array in per_doc]))


def split_by_doc(xp, rows, per_doc: Sequence) -> List:
    """Split the stacked rows of several docs back into one array (a view)
    per doc, as long as the docs' arrays in per_doc."""
    if not per_doc:
        return []
    return xp.split(rows, numpy.cumsum([len(array) for array in per_doc])[:-1].tolist())
