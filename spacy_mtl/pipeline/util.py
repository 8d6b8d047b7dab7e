"""Helpers shared by the components: gold alignment, token losses and span labels."""
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy
from spacy.strings import StringStore
from spacy.tokens import Span
from spacy.training import Example
from thinc.api import Ops
from thinc.types import Floats2d

from ..ml.heads import split_by_doc

EPSILON = 1e-9


class LabelIds(dict):
    """Label strings to their string ids, each added to the string store
    once: Span(doc, start, end, label=<str>) adds it once per span, which
    costs more than the rest of building the span."""

    def __init__(self, strings: StringStore):
        super().__init__()
        self.strings = strings

    def __missing__(self, label: str) -> int:
        self[label] = self.strings.add(label)
        return self[label]


def aligned_spans(eg: Example, spans: Iterable[Span]) -> List[Tuple[int, int, str]]:
    """(start, end, label) of reference spans on the predicted tokens; spans
    whose boundaries fall inside a predicted token are dropped."""
    aligned = []
    for span in spans:
        predicted = eg.predicted.char_span(span.start_char, span.end_char)
        if predicted is not None:
            aligned.append((predicted.start, predicted.end, span.label_))
    return aligned


def token_cross_entropy(
    ops: Ops,
    logits: List[Floats2d],
    tags: List[Sequence[str]],
    tag_index: Dict[str, int],
) -> Tuple[float, List[Floats2d]]:
    """Softmax cross-entropy averaged over the tokens that have a known gold
    tag, with gradients w.r.t. the logits. An empty tag list marks a doc that
    is not annotated: its tokens get zero gradient."""
    targets, masks = [], []
    for doc_logits, doc_tags in zip(logits, tags):
        target = numpy.zeros(len(doc_logits), dtype="int32")
        mask = numpy.zeros(len(doc_logits), dtype="float32")
        for i, tag in enumerate(doc_tags):
            if tag in tag_index:  # a label unseen at initialization carries no loss
                target[i], mask[i] = tag_index[tag], 1.0
        targets.append(target)
        masks.append(mask)
    if not logits:
        return 0.0, []
    target, mask = numpy.concatenate(targets), numpy.concatenate(masks)
    n_tokens = max(float(mask.sum()), 1.0)
    probs = ops.softmax(ops.xp.concatenate(logits))
    truth = ops.alloc2f(*probs.shape)
    truth[ops.xp.arange(len(target)), ops.asarray1i(target)] = 1.0
    mask = ops.asarray2f(mask[:, None])
    gradient = (probs - truth) * mask / n_tokens
    loss = -float((ops.xp.log(probs + EPSILON) * truth * mask).sum())
    return loss / n_tokens, split_by_doc(ops.xp, gradient, logits)


def softmax_per_doc(ops: Ops, logits: List[Floats2d]) -> List[Floats2d]:
    """Each doc's row-wise softmax, computed over all the docs' rows at once:
    on a GPU, a few operations per doc would cost more than the arithmetic."""
    if not logits:
        return []
    return split_by_doc(ops.xp, ops.softmax(ops.xp.concatenate(logits)), logits)


def to_numpy_per_doc(ops: Ops, arrays: List[Floats2d]) -> List[numpy.ndarray]:
    """Each doc's array on the host, with one copy for all of them."""
    if not arrays:
        return []
    return split_by_doc(numpy, ops.to_numpy(ops.xp.concatenate(arrays)), arrays)
