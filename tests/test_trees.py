"""Tree decoding: every score matrix gives a well-formed tree, and the
maximum spanning tree is the best one."""
import pytest
import itertools

import numpy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spacy_mtl.trees import chu_liu_edmonds, decode_dependent_rows, decode_tree, decode_trees, find_cycle, tree_score


def score_matrices(max_words: int):
    sizes = st.integers(min_value=1, max_value=max_words)
    scores = st.floats(min_value=-50, max_value=50, allow_nan=False, width=32)
    return sizes.flatmap(lambda n: arrays("float64", (n + 1, n + 1), elements=scores))


def all_trees(n_words: int, one_root: bool):
    for heads in itertools.product(range(n_words + 1), repeat=n_words):
        heads = numpy.array((0,) + heads)
        if any(heads[i] == i for i in range(1, n_words + 1)) or find_cycle(heads) is not None:
            continue
        if one_root and (heads[1:] == 0).sum() != 1:
            continue
        yield heads


def assert_well_formed(heads: numpy.ndarray) -> None:
    assert heads[0] == 0
    assert ((heads[1:] >= 0) & (heads[1:] < len(heads))).all()
    assert (heads[1:] != numpy.arange(1, len(heads))).all()
    assert (heads[1:] == 0).sum() == 1
    assert find_cycle(heads) is None


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(score_matrices(40))
def test_decoding_always_gives_a_tree(scores):
    assert_well_formed(decode_tree(scores))


@settings(max_examples=100, deadline=None)
@given(score_matrices(12), st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), max_size=30))
def test_masked_arcs_still_give_a_tree(scores, masked):
    for dep, head in masked:
        if dep < len(scores) and head < len(scores):
            scores[dep, head] = -numpy.inf
    assert_well_formed(decode_tree(scores))


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(score_matrices(5))
def test_maximum_spanning_tree_is_optimal(scores):
    n_words = len(scores) - 1
    best = max(tree_score(scores, heads) for heads in all_trees(n_words, one_root=False))
    assert abs(tree_score(scores, chu_liu_edmonds(scores)) - best) < 1e-6
    best_one_root = max(tree_score(scores, heads) for heads in all_trees(n_words, one_root=True))
    decoded = decode_tree(scores)
    assert sum(decoded[1:] == 0) == 1
    assert abs(tree_score(scores, decoded) - best_one_root) < 1e-6


def test_a_greedy_cycle_is_broken_at_its_cheapest_arc():
    # Words 1 and 2 prefer each other; the best tree enters the cycle at 1.
    scores = numpy.array([[0, 0, 0], [5, 0, 10], [1, 9, 0]], dtype=float)
    assert decode_tree(scores).tolist() == [0, 0, 1]


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.lists(st.integers(0, n - 1), min_size=n, max_size=n)))
def test_find_cycle_finds_a_cycle_exactly_when_some_word_never_reaches_the_root(heads):
    heads = numpy.array([0] + heads[1:])

    def reaches_root(node):
        seen = set()
        while node != 0 and node not in seen:
            seen.add(node)
            node = heads[node]
        return node == 0

    cycle = find_cycle(heads)
    assert (cycle is None) == all(reaches_root(node) for node in range(len(heads)))
    if cycle is not None:
        assert [heads[node] for node in cycle] == cycle[1:] + cycle[:1]


def one_cycle_at_a_time(scores: numpy.ndarray) -> numpy.ndarray:
    """The textbook recursion, as a reference: contract the first cycle
    found, solve the smaller graph, expand."""
    scores = numpy.array(scores, dtype="float64")
    numpy.fill_diagonal(scores, -numpy.inf)
    scores[0] = -numpy.inf
    scores[0, 0] = 0.0
    heads = scores.argmax(axis=1)
    cycle = find_cycle(heads)
    if cycle is None:
        return heads
    cycle = sorted(cycle)
    outside = [node for node in range(len(scores)) if node not in cycle]
    enter = scores[numpy.ix_(cycle, outside)] - scores[cycle, heads[cycle]][:, None]
    leave = scores[numpy.ix_(outside, cycle)]
    contracted = numpy.full((len(outside) + 1,) * 2, -numpy.inf)
    contracted[:-1, :-1] = scores[numpy.ix_(outside, outside)]
    contracted[-1, :-1] = enter.max(axis=0)
    contracted[:-1, -1] = leave.max(axis=1)
    smaller = one_cycle_at_a_time(contracted)
    for index, node in enumerate(outside[1:], start=1):
        head = smaller[index]
        heads[node] = outside[head] if head < len(outside) else cycle[leave[index].argmax()]
    heads[cycle[enter[:, smaller[-1]].argmax()]] = outside[smaller[-1]]
    return heads


def test_deep_and_simultaneous_cycles_give_the_maximum_tree():
    """Scores led by the head, as an untrained parser gives them, nest one
    cycle in the next; noisy ones make many cycles at once."""
    rng = numpy.random.default_rng(0)
    for n_words in (8, 30, 90):
        for popularity in (0.0, 3.0):
            for _ in range(5):
                scores = rng.normal(size=(n_words + 1, n_words + 1)) + popularity * rng.normal(size=n_words + 1)
                reference = one_cycle_at_a_time(scores)
                decoded = chu_liu_edmonds(scores)
                assert find_cycle(decoded) is None and decoded[0] == 0
                assert tree_score(scores, decoded) == pytest.approx(tree_score(scores, reference), abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(st.lists(score_matrices(15), min_size=1, max_size=6))
def test_a_batch_decodes_each_segment_as_alone(matrices):
    """Padded to the longest, with masked arcs, empty and one-word segments."""
    size = max(len(scores) for scores in matrices)
    stack = numpy.full((len(matrices), size, size), 123.0)  # padding must not count
    for i, scores in enumerate(matrices):
        scores[numpy.abs(scores) > 45] = -numpy.inf
        stack[i, : len(scores), : len(scores)] = scores
    decoded = decode_trees(stack, [len(scores) - 1 for scores in matrices])
    for heads, scores in zip(decoded, matrices):
        assert heads.tolist() == decode_tree(scores).tolist() + [0] * (size - len(scores))


def test_segments_of_many_lengths_are_decoded_as_alone():
    """Enough segments to be decoded in groups of similar length."""
    rng = numpy.random.default_rng(1)
    lengths = rng.integers(0, 60, size=100)
    stack = rng.normal(size=(100, 61, 61)) + 2 * rng.normal(size=(100, 1, 61))
    decoded = decode_trees(stack, lengths)
    for heads, scores, length in zip(decoded, stack, lengths):
        assert heads.tolist() == decode_tree(scores[: length + 1, : length + 1]).tolist() + [0] * (60 - length)


def test_scores_without_the_root_row_decode_as_the_square_matrices():
    """The parser's (segments, n, n + 1) arc scores, padded to the longest
    segment, give the trees of the square matrices, whatever the root's
    row holds."""
    rng = numpy.random.default_rng(2)
    lengths = rng.integers(0, 40, size=70)
    arcs = rng.normal(size=(70, 40, 41)).astype("float32") + 2 * rng.normal(size=(70, 1, 41)).astype("float32")
    square = numpy.full((70, 41, 41), 1e4)
    square[:, 1:] = arcs
    assert decode_dependent_rows(arcs, lengths).tolist() == decode_trees(square, lengths).tolist()
