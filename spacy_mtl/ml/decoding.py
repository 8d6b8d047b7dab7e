"""Decoding of tag sequences under BIO constraints."""
from typing import List, Optional, Sequence, Tuple

import numpy

OUTSIDE = "O"


def bio_tag_names(labels: Sequence[str]) -> List[str]:
    """Tag set of a BIO tagger: "O" first, then B-/I- per label."""
    names = [OUTSIDE]
    for label in labels:
        names.extend((f"B-{label}", f"I-{label}"))
    return names


def bio_transitions(tag_names: Sequence[str]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Which tags may start a sequence, and which tag may follow which:
    an I-x only continues a B-x or an I-x."""
    n_tags = len(tag_names)
    can_start = numpy.ones(n_tags, dtype=bool)
    can_follow = numpy.ones((n_tags, n_tags), dtype=bool)
    for j, tag in enumerate(tag_names):
        if tag.startswith("I-"):
            can_start[j] = False
            for i, previous in enumerate(tag_names):
                can_follow[i, j] = previous[2:] == tag[2:] and previous != OUTSIDE
    return can_start, can_follow


def biluo_tag_names(labels: Sequence[str]) -> List[str]:
    """Tag set of a BILUO tagger: "O" first, then B-/I-/L-/U- per label."""
    names = [OUTSIDE]
    for label in labels:
        names.extend(f"{prefix}-{label}" for prefix in "BILU")
    return names


def biluo_transitions(tag_names: Sequence[str]) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Start, follow and end masks of BILUO: B-x and I-x go on with I-x or
    L-x; every other tag is followed by O, B-y or U-y."""
    n_tags = len(tag_names)
    inside = numpy.array([tag[:2] in ("B-", "I-") for tag in tag_names])
    can_follow = numpy.zeros((n_tags, n_tags), dtype=bool)
    for i, previous in enumerate(tag_names):
        for j, tag in enumerate(tag_names):
            if inside[i]:
                can_follow[i, j] = tag[:2] in ("I-", "L-") and tag[2:] == previous[2:]
            else:
                can_follow[i, j] = tag == OUTSIDE or tag[:2] in ("B-", "U-")
    can_start = numpy.array([tag == OUTSIDE or tag[:2] in ("B-", "U-") for tag in tag_names])
    return can_start, can_follow, ~inside


def constrained_viterbi(
    log_probs: numpy.ndarray,
    can_start: numpy.ndarray,
    can_follow: numpy.ndarray,
    can_end: Optional[numpy.ndarray] = None,
) -> List[int]:
    """Most probable tag sequence among those the transition masks allow."""
    n_tokens, n_tags = log_probs.shape
    if n_tokens == 0:
        return []
    blocked = numpy.where(can_follow, 0.0, -numpy.inf)
    score = numpy.where(can_start, log_probs[0], -numpy.inf)
    backpointers = numpy.zeros((n_tokens, n_tags), dtype=numpy.int64)
    for t in range(1, n_tokens):
        candidates = score[:, None] + blocked
        backpointers[t] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + log_probs[t]
    if can_end is not None:
        score = numpy.where(can_end, score, -numpy.inf)
    best = [int(score.argmax())]
    for t in range(n_tokens - 1, 0, -1):
        best.append(int(backpointers[t, best[-1]]))
    return best[::-1]


def bio_to_spans(tags: Sequence[str]) -> List[Tuple[int, int, str]]:
    """(start, end, label) spans of a valid BIO sequence, end exclusive."""
    spans = []
    start, label = None, None
    for i, tag in enumerate(list(tags) + [OUTSIDE]):
        if start is not None and tag != f"I-{label}":
            spans.append((start, i, label))
            start = None
        if tag.startswith("B-"):
            start, label = i, tag[2:]
    return spans


def spans_to_bio(n_tokens: int, spans: Sequence[Tuple[int, int, str]]) -> List[str]:
    tags = [OUTSIDE] * n_tokens
    for start, end, label in spans:
        tags[start] = f"B-{label}"
        for i in range(start + 1, end):
            tags[i] = f"I-{label}"
    return tags


def biluo_to_spans(tags: Sequence[str]) -> List[Tuple[int, int, str]]:
    """(start, end, label) spans of a valid BILUO sequence, end exclusive."""
    spans = []
    start = None
    for i, tag in enumerate(tags):
        if tag.startswith("U-"):
            spans.append((i, i + 1, tag[2:]))
        elif tag.startswith("B-"):
            start = i
        elif tag.startswith("L-") and start is not None:
            spans.append((start, i + 1, tag[2:]))
            start = None
    return spans


def spans_to_biluo(n_tokens: int, spans: Sequence[Tuple[int, int, str]]) -> List[str]:
    tags = [OUTSIDE] * n_tokens
    for start, end, label in spans:
        if end - start == 1:
            tags[start] = f"U-{label}"
            continue
        tags[start], tags[end - 1] = f"B-{label}", f"L-{label}"
        for i in range(start + 1, end - 1):
            tags[i] = f"I-{label}"
    return tags
