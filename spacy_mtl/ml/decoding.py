"""Decoding of tag sequences under BIO constraints."""
from functools import lru_cache
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
    an I-x only continues a B-x or an I-x. Read-only arrays, worked out once
    per tag set (a Python loop over pairs of tags, every batch otherwise)."""
    return _bio_transitions(tuple(tag_names))


@lru_cache(maxsize=64)
def _bio_transitions(tag_names: Tuple[str, ...]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    n_tags = len(tag_names)
    can_start = numpy.ones(n_tags, dtype=bool)
    can_follow = numpy.ones((n_tags, n_tags), dtype=bool)
    for j, tag in enumerate(tag_names):
        if tag.startswith("I-"):
            can_start[j] = False
            for i, previous in enumerate(tag_names):
                can_follow[i, j] = previous[2:] == tag[2:] and previous != OUTSIDE
    return _read_only(can_start, can_follow)


def _read_only(*arrays: numpy.ndarray) -> Tuple[numpy.ndarray, ...]:
    """The arrays, made read-only: the cached masks are shared."""
    for array in arrays:
        array.flags.writeable = False
    return arrays


def biluo_tag_names(labels: Sequence[str]) -> List[str]:
    """Tag set of a BILUO tagger: "O" first, then B-/I-/L-/U- per label."""
    names = [OUTSIDE]
    for label in labels:
        names.extend(f"{prefix}-{label}" for prefix in "BILU")
    return names


def biluo_transitions(tag_names: Sequence[str]) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Start, follow and end masks of BILUO: B-x and I-x go on with I-x or
    L-x; every other tag is followed by O, B-y or U-y. Read-only arrays,
    worked out once per tag set."""
    return _biluo_transitions(tuple(tag_names))


@lru_cache(maxsize=64)
def _biluo_transitions(tag_names: Tuple[str, ...]) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
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
    return _read_only(can_start, can_follow, ~inside)


def constrained_viterbi(
    log_probs: numpy.ndarray,
    can_start: numpy.ndarray,
    can_follow: numpy.ndarray,
    can_end: Optional[numpy.ndarray] = None,
) -> List[int]:
    """Most probable tag sequence among those the transition masks allow."""
    return batch_constrained_viterbi([log_probs], can_start, can_follow, can_end)[0]


def batch_constrained_viterbi(
    log_probs: Sequence[numpy.ndarray],
    can_start: numpy.ndarray,
    can_follow: numpy.ndarray,
    can_end: Optional[numpy.ndarray] = None,
) -> List[List[int]]:
    """constrained_viterbi of several (n_tokens, n_tags) arrays at once: one
    step per token position for all sequences still running, which saves
    the per-sequence Python loop on batches of short sentences. With no
    transition scores, a sequence whose best tag at each token already
    obeys the masks needs no search: no other path scores more."""
    lengths = numpy.array([len(scores) for scores in log_probs], dtype="int64")
    if not len(lengths) or not lengths.max():
        return [[] for _ in log_probs]
    best = numpy.concatenate(log_probs).argmax(axis=1)
    result = [path.tolist() for path in numpy.split(best, numpy.cumsum(lengths)[:-1])]
    searched = numpy.flatnonzero(~_allowed(best, lengths, can_start, can_follow, can_end))
    if len(searched):
        searched_paths = _viterbi([log_probs[i] for i in searched], lengths[searched], can_start, can_follow, can_end)
        for i, path in zip(searched, searched_paths):
            result[i] = path
    return result


def _allowed(paths: numpy.ndarray, lengths: numpy.ndarray, can_start, can_follow, can_end) -> numpy.ndarray:
    """Whether each of the concatenated paths obeys the transition masks."""
    ends = numpy.cumsum(lengths)
    starts = ends - lengths
    running = lengths > 0
    broken = ~can_follow[paths[:-1], paths[1:]]
    broken[starts[running][1:] - 1] = False  # from one path into the next
    n_broken = numpy.concatenate([[0], numpy.cumsum(broken)])
    last = len(n_broken) - 1  # an empty path may start past the end
    allowed = ~running | (n_broken[numpy.clip(ends - 1, 0, last)] == n_broken[numpy.minimum(starts, last)])
    allowed[running] &= can_start[paths[starts[running]]]
    if can_end is not None:
        allowed[running] &= can_end[paths[ends[running] - 1]]
    return allowed


def _viterbi(log_probs: Sequence[numpy.ndarray], lengths: numpy.ndarray, can_start, can_follow, can_end) -> List[List[int]]:
    """The search, over sequences none of which is empty. The forward pass
    keeps each step's path scores and no backpointers: going back, each
    sequence's best previous tag is looked up for its one current tag."""
    # Longest first, so the sequences running at step t are the first n_running[t].
    order = numpy.argsort(-lengths, kind="stable")
    lengths = lengths[order]
    n_steps, n_tags = int(lengths[0]), len(can_start)
    n_running = (lengths[None, :] > numpy.arange(n_steps)[:, None]).sum(axis=1)
    # Time-major, so that a step's running sequences are contiguous rows.
    emissions = numpy.zeros((n_steps, len(lengths), n_tags), dtype="float64")
    for row, index in enumerate(order):
        emissions[: lengths[row], row] = log_probs[index]
    may_follow = numpy.ascontiguousarray(can_follow, dtype=bool)
    best_previous = _best_previous(may_follow.tobytes(), n_tags)
    scores = numpy.empty_like(emissions)
    scores[0] = numpy.where(can_start, emissions[0], -numpy.inf)
    for t in range(1, n_steps):
        n = n_running[t]
        best_previous(scores[t - 1, :n], out=scores[t, :n])
        scores[t, :n] += emissions[t, :n]
    last = scores[lengths - 1, numpy.arange(len(lengths))]
    if can_end is not None:
        last = numpy.where(can_end, last, -numpy.inf)
    current = last.argmax(axis=1)
    paths = numpy.zeros((n_steps, len(lengths)), dtype=numpy.int64)
    may_precede = may_follow.T  # [tag, previous tag]
    for t in range(n_steps - 1, -1, -1):
        n = n_running[t]
        paths[t, :n] = current[:n]
        if t:
            # argmax takes the first of equal scores, as the forward maximum does.
            current[:n] = numpy.where(may_precede[current[:n]], scores[t - 1, :n], -numpy.inf).argmax(axis=1)
    result: List[List[int]] = [[] for _ in log_probs]
    for row, index in enumerate(order):
        result[index] = paths[: lengths[row], row].tolist()
    return result


class _BestPrevious:
    """The score of the best previous tag of every tag, among those it may
    follow. Tags that may follow any tag (O and B-x in BIO) share one
    maximum; the others look only at the few tags they may follow, so a
    step costs O(tags) rather than O(tags^2)."""

    def __init__(self, can_follow: numpy.ndarray):
        allowed = can_follow.T  # [tag, previous tag]
        self.restricted = numpy.flatnonzero(~allowed.all(axis=1))
        previous = [numpy.flatnonzero(allowed[tag]) for tag in self.restricted]
        width = max([len(tags) for tags in previous] + [1])
        # (width, restricted tags): a tag's column repeats its first
        # previous tag (a repeat never changes a maximum); a tag no tag may
        # precede keeps 0 and is set to -inf.
        self.previous = numpy.zeros((width, len(previous)), dtype=numpy.int64)
        for column, tags in enumerate(previous):
            if len(tags):
                self.previous[:, column] = tags[0]
                self.previous[: len(tags), column] = tags
        self.unreachable = self.restricted[[not len(tags) for tags in previous]]

    def __call__(self, score: numpy.ndarray, out: numpy.ndarray) -> None:
        """score (sequences, tags) -> out: the best score reaching each tag."""
        out[:] = score.max(axis=1)[:, None]
        if len(self.restricted):
            out[:, self.restricted] = score[:, self.previous].max(axis=1)
        if len(self.unreachable):
            out[:, self.unreachable] = -numpy.inf


@lru_cache(maxsize=64)
def _best_previous(can_follow: bytes, n_tags: int) -> _BestPrevious:
    """_BestPrevious of a transition mask, built once per tag set."""
    return _BestPrevious(numpy.frombuffer(can_follow, dtype=bool).reshape(n_tags, n_tags))


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
