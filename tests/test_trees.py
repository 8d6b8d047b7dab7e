"""Tree decoding: every score matrix gives a well-formed tree, and the
maximum spanning tree is the best one."""
import pytest
import itertools

import numpy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spacy_mtl.trees import chu_liu_edmonds, decode_tree, find_cycle, tree_score


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
