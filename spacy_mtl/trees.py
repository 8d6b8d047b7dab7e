"""Maximum spanning tree decoding of arc scores (Chu-Liu-Edmonds), with the
constraint of exactly one word attached to the root.

Score matrices are (n + 1, n + 1): scores[d, h] is the score of word h
heading word d, with node 0 the artificial root (its row is ignored). A
decoded tree is a head array of length n + 1 whose entry 0 is 0."""
from typing import List, Optional

import numpy

NEG_INF = -numpy.inf


def reaches_root(heads: numpy.ndarray) -> bool:
    """Whether every node's chain of heads ends at node 0: following the
    heads 2^k times at once, k = log2(n) doublings cover any path."""
    ancestors = numpy.asarray(heads).copy()
    ancestors[0] = 0
    for _ in range(max(1, int(numpy.ceil(numpy.log2(len(ancestors)))))):
        ancestors = ancestors[ancestors]
    return bool((ancestors == 0).all())


def find_cycle(heads: numpy.ndarray) -> Optional[List[int]]:
    """The nodes of one cycle of a head array (node 0 is the root), or None."""
    if reaches_root(heads):
        return None  # most greedy trees: no need for the walk
    state = numpy.zeros(len(heads), dtype="int8")  # 0 unseen, 1 on the walk, 2 done
    state[0] = 2
    for start in range(1, len(heads)):
        walk = []
        node = start
        while state[node] == 0:
            state[node] = 1
            walk.append(node)
            node = heads[node]
        if state[node] == 1:
            return walk[walk.index(node):]
        state[walk] = 2
    return None


def chu_liu_edmonds(scores: numpy.ndarray) -> numpy.ndarray:
    """The highest-scoring spanning tree rooted at node 0 (several words may
    attach to the root)."""
    scores = numpy.array(scores, dtype="float64")
    numpy.fill_diagonal(scores, NEG_INF)
    scores[0] = NEG_INF
    scores[0, 0] = 0.0
    heads = scores.argmax(axis=1)
    cycle = find_cycle(heads)
    if cycle is None:
        return heads
    # Contract the cycle into one node (the last of the smaller graph):
    # entering it means breaking the cycle at its best word, leaving it means
    # the best cycle word as head.
    in_cycle = numpy.zeros(len(scores), dtype=bool)
    in_cycle[cycle] = True
    cycle = numpy.flatnonzero(in_cycle)
    outside = numpy.flatnonzero(~in_cycle)
    n_outside = len(outside)
    enter = scores[cycle][:, outside] - scores[cycle, heads[cycle]][:, None]
    leave = scores[outside][:, cycle]
    contracted = numpy.full((n_outside + 1, n_outside + 1), NEG_INF)
    contracted[:n_outside, :n_outside] = scores[outside][:, outside]
    contracted[n_outside, :n_outside] = enter.max(axis=0)
    contracted[:n_outside, n_outside] = leave.max(axis=1)
    contracted_heads = chu_liu_edmonds(contracted)
    for index, node in enumerate(outside[1:], start=1):
        head = contracted_heads[index]
        heads[node] = outside[head] if head < n_outside else cycle[leave[index].argmax()]
    entry_head = contracted_heads[n_outside]
    heads[cycle[enter[:, entry_head].argmax()]] = outside[entry_head]
    return heads


def tree_score(scores: numpy.ndarray, heads: numpy.ndarray) -> float:
    return float(scores[numpy.arange(1, len(heads)), heads[1:]].sum())


def decode_tree(scores: numpy.ndarray) -> numpy.ndarray:
    """The best tree found with exactly one word attached to the root: when
    the unconstrained maximum spanning tree has several, each of them is
    tried as the only root child and the best resulting tree is kept."""
    scores = numpy.array(scores, dtype="float64")
    # Arcs masked with -inf stay usable as a last resort, so a tree always exists.
    finite = numpy.isfinite(scores)
    if not finite.all():
        floor = scores[finite].min() if finite.any() else 0.0
        scores[~finite] = floor - 1e6
    heads = chu_liu_edmonds(scores)
    root_children = numpy.flatnonzero(heads[1:] == 0) + 1
    if len(root_children) == 1:
        return heads
    best, best_score = None, NEG_INF
    for child in root_children:
        constrained = scores.copy()
        constrained[1:, 0] = NEG_INF
        constrained[child, 0] = scores[child, 0]
        candidate = chu_liu_edmonds(constrained)
        score = tree_score(scores, candidate)
        if score > best_score:
            best, best_score = candidate, score
    return best
