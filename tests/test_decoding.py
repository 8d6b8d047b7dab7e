import numpy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spacy_mtl.ml.decoding import bio_tag_names, bio_to_spans, bio_transitions, constrained_viterbi, spans_to_bio

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
