"""Token casing for heads over an uncased encoder: all-MiniLM-L6-v2 lowercases
its input, so capitals (proper nouns, entity boundaries) never reach the heads
unless they are given them beside the encoder's output.

The casing classes are computed here for every head that reads them: the
WithCasing layer (thinc, around any tok2vec) embeds those of each doc, the
cascade's heads (one PyTorch module) those of its segments' tokens, each
segment's first token counted as a sentence start."""
from functools import lru_cache
from typing import Callable, List, Sequence, Tuple

import numpy
from spacy.attrs import ORTH, SENT_START
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, uniform_init
from thinc.types import Floats2d, Ints1d

NO_LETTERS, LOWER, TITLE, UPPER, MIXED = range(5)
# Each class twice: first token of a sentence (where a capital says little) or not.
N_CASING_CLASSES = 10
SENTENCE_START = N_CASING_CLASSES // 2


# Bounded: a service reading open-ended text must not grow it without limit.
@lru_cache(maxsize=2**14)
def casing_class(text: str) -> int:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return NO_LETTERS
    if all(c.islower() for c in letters):
        return LOWER
    if all(c.isupper() for c in letters):
        return UPPER if len(letters) > 1 else TITLE
    if letters[0].isupper() and all(c.islower() for c in letters[1:]):
        return TITLE
    return MIXED


def docs_casing_classes(docs: Sequence[Doc]) -> numpy.ndarray:
    """Casing class of every token of the docs, one doc after another,
    through the string ids (no Token objects). A batch repeats most of its
    words: each distinct one is classed once."""
    if not docs:
        return numpy.zeros(0, dtype="int32")
    strings = docs[0].vocab.strings
    if any(doc.vocab.strings is not strings for doc in docs):
        return numpy.concatenate([docs_casing_classes([doc]) for doc in docs])
    distinct, index = numpy.unique(numpy.concatenate([doc.to_array(ORTH) for doc in docs]), return_inverse=True)
    classes = numpy.fromiter((casing_class(strings[orth]) for orth in distinct.tolist()), dtype="int32", count=len(distinct))
    return classes[index.reshape(-1)]


def docs_casing_ids(docs: Sequence[Doc]) -> List[numpy.ndarray]:
    """Each doc's casing class per token, shifted by SENTENCE_START where a
    sentence starts (the first token, and others where the doc has
    boundaries)."""
    ids = docs_casing_classes(docs)
    lengths = numpy.asarray([len(doc) for doc in docs], dtype="int64")
    offsets = numpy.cumsum(lengths) - lengths
    ids[offsets[lengths > 0]] += SENTENCE_START
    for doc, offset in zip(docs, offsets.tolist()):
        if len(doc) and doc.has_annotation("SENT_START"):
            starts = numpy.flatnonzero(doc.to_array(SENT_START)[1:] == 1) + 1
            ids[offset + starts] += SENTENCE_START
    return numpy.split(ids, offsets[1:]) if docs else []


@registry.architectures("spacy_mtl.WithCasing.v1")
def build_with_casing(tok2vec: Model[List[Doc], List[Floats2d]], width: int = 16) -> Model[List[Doc], List[Floats2d]]:
    """tok2vec's vectors with a learned embedding of each token's casing
    (lower, Title, UPPER, mixed or no letters; sentence start or not)
    appended: `width` more columns."""
    if not isinstance(width, int) or width <= 0:
        raise ValueError(f"spacy_mtl.WithCasing.v1: width must be an int > 0, got {width!r}")
    return Model(
        "with_casing",
        _with_casing_forward,
        init=_with_casing_init,
        layers=[tok2vec],
        refs={"tok2vec": tok2vec},
        dims={"casing_width": width},
        params={"E": None},
    )


def _with_casing_init(model: Model, X=None, Y=None) -> Model:
    model.get_ref("tok2vec").initialize(X=X)
    if not model.has_param("E"):
        # At the scale of a layer-normed encoder's output, so the heads read it from the start.
        model.set_param("E", uniform_init(model.ops, (N_CASING_CLASSES, model.get_dim("casing_width")), lo=-1.0, hi=1.0))
    return model


def _with_casing_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    tokvecs, bp_tokvecs = model.get_ref("tok2vec")(docs, is_train)
    E = model.get_param("E")
    width = E.shape[1]
    ids: List[Ints1d] = [model.ops.asarray1i(doc_ids) for doc_ids in docs_casing_ids(docs)]
    outputs = [model.ops.xp.hstack([vecs, E[doc_ids]]) for vecs, doc_ids in zip(tokvecs, ids)]

    def backprop(d_outputs: List[Floats2d]) -> List[Doc]:
        dE = model.ops.alloc2f(*E.shape)
        d_tokvecs = []
        for d_output, doc_ids in zip(d_outputs, ids):
            d_tokvecs.append(model.ops.as_contig(d_output[:, :-width]))
            model.ops.scatter_add(dE, doc_ids, d_output[:, -width:])
        model.inc_grad("E", dE)
        return bp_tokvecs(d_tokvecs)

    return outputs, backprop
