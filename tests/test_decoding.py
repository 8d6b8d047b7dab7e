import itertools

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spacy_mtl.ml.decoding import (
    batch_constrained_viterbi,
    biluo_tag_names,
    biluo_to_spans,
    biluo_transitions,
    bio_tag_names,
    bio_to_spans,
    bio_transitions,
    constrained_viterbi,
    spans_to_biluo,
    spans_to_bio,
)

TAGS = bio_tag_names(["from", "to", "date"])
CAN_START, CAN_FOLLOW = bio_transitions(TAGS)


def is_valid_bio(tags):
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


@settings(max_examples=300, deadline=None)
@given(arrays(numpy.float64, st.tuples(st.integers(0, 12), st.just(len(TAGS))), elements=st.floats(-20, 0)))
def test_decoding_never_yields_an_orphan_inside_tag(log_probs):
    tags = [TAGS[i] for i in constrained_viterbi(log_probs, CAN_START, CAN_FOLLOW)]
    assert len(tags) == len(log_probs)
    assert is_valid_bio(tags)
    assert spans_to_bio(len(tags), bio_to_spans(tags)) == tags


def best_valid_score(log_probs, can_start, can_follow):
    """The best score among all allowed sequences, by enumeration."""
    n_tokens, n_tags = log_probs.shape
    best = -numpy.inf
    for path in itertools.product(range(n_tags), repeat=n_tokens):
        if can_start[path[0]] and all(can_follow[a, b] for a, b in zip(path, path[1:])):
            best = max(best, sum(log_probs[t, tag] for t, tag in enumerate(path)))
    return best


SMALL_TAGS = bio_tag_names(["a", "b"])
SMALL_MASKS = bio_transitions(SMALL_TAGS)


@settings(max_examples=60, deadline=None)
@given(arrays(numpy.float64, st.tuples(st.integers(1, 5), st.just(len(SMALL_TAGS))), elements=st.floats(-20, 0)))
def test_decoding_finds_the_best_valid_sequence(log_probs):
    path = constrained_viterbi(log_probs, *SMALL_MASKS)
    score = sum(log_probs[t, tag] for t, tag in enumerate(path))
    assert numpy.isclose(score, best_valid_score(log_probs, *SMALL_MASKS))


def test_decoding_repairs_what_argmax_gets_wrong():
    # argmax says O I-to I-to: the best valid sequence is O B-to I-to
    probs = numpy.full((3, len(TAGS)), 0.01)
    probs[0, TAGS.index("O")] = 0.9
    probs[1, TAGS.index("I-to")], probs[1, TAGS.index("B-to")] = 0.6, 0.35
    probs[2, TAGS.index("I-to")] = 0.9
    tags = [TAGS[i] for i in constrained_viterbi(numpy.log(probs), CAN_START, CAN_FOLLOW)]
    assert tags == ["O", "B-to", "I-to"]


def test_unconstrained_best_path_is_kept_when_valid():
    rng = numpy.random.default_rng(0)
    log_probs = numpy.log(rng.dirichlet(numpy.ones(len(TAGS)), size=6))
    log_probs[:, TAGS.index("O")] += 10  # O everywhere is the best, and valid
    assert constrained_viterbi(log_probs, CAN_START, CAN_FOLLOW) == [0] * 6


BILUO = biluo_tag_names(["Peop", "Loc"])
BILUO_MASKS = biluo_transitions(BILUO)


def is_valid_biluo(tags):
    open_label = None
    for tag in tags:
        prefix, label = tag[:1], tag[2:]
        if open_label is not None and not (prefix in "IL" and label == open_label):
            return False
        if open_label is None and prefix in "IL":
            return False
        open_label = label if prefix in "BI" else None
    return open_label is None


@settings(max_examples=300, deadline=None)
@given(arrays(numpy.float64, st.tuples(st.integers(0, 12), st.just(len(BILUO))), elements=st.floats(-20, 0)))
def test_biluo_decoding_is_always_valid(log_probs):
    tags = [BILUO[i] for i in constrained_viterbi(log_probs, *BILUO_MASKS)]
    assert is_valid_biluo(tags)
    assert spans_to_biluo(len(tags), biluo_to_spans(tags)) == tags


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 15), min_size=1, max_size=8), st.integers(0, 2**32 - 1))
def test_batch_decoding_matches_decoding_one_by_one(lengths, seed):
    # Sequences of different lengths (empty ones too) share one padded batch:
    # a finished sequence must not be changed by the steps of longer ones.
    rng = numpy.random.default_rng(seed)
    for tags, masks in ((TAGS, (CAN_START, CAN_FOLLOW)), (BILUO, BILUO_MASKS)):
        batch = [numpy.log(rng.dirichlet(numpy.ones(len(tags)) * 0.3, size=n) + 1e-9) for n in lengths]
        expected = [constrained_viterbi(log_probs, *masks) for log_probs in batch]
        assert batch_constrained_viterbi(batch, *masks) == expected


@pytest.mark.parametrize("transitions,names", [(bio_transitions, ["O", "B-x", "I-x"]), (biluo_transitions, ["O", "B-x", "I-x", "L-x", "U-x"])])
def test_transition_masks_are_shared_and_read_only(transitions, names):
    first, second = transitions(names), transitions(list(names))
    assert all(a is b for a, b in zip(first, second))
    with pytest.raises(ValueError, match="read-only"):
        first[1][0, 0] = not first[1][0, 0]
