"""Maximum spanning tree decoding of arc scores (Chu-Liu-Edmonds), with the
constraint of exactly one word attached to the root.

Score matrices are (n + 1, n + 1): scores[d, h] is the score of word h
heading word d, with node 0 the artificial root (its row is ignored). A
decoded tree is a head array of length n + 1 whose entry 0 is 0.

The segments of a batch are decoded together, in stacks of matrices padded
to the longest of each: a round of the algorithm is a few array operations
over a whole stack, so a stack costs about the same number of numpy calls
however many segments it holds. Padding nodes hang from the root and head
nothing."""
from typing import Callable, List, NamedTuple, Optional, Sequence

import numpy

NEG_INF = -numpy.inf


def reaches_root(heads: numpy.ndarray) -> bool:
    """Whether every node's chain of heads ends at node 0: following the
    heads 2^k times at once, k = log2(n) doublings cover any path."""
    ancestors = numpy.asarray(heads).copy()
    ancestors[0] = 0
    for _ in range(_doublings(len(ancestors))):
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
    scores = numpy.array(scores, dtype="float64")[None]
    return _spanning_trees(scores, numpy.ones(scores.shape[:2], dtype=bool))[0]


def tree_score(scores: numpy.ndarray, heads: numpy.ndarray) -> float:
    return float(scores[numpy.arange(1, len(heads)), heads[1:]].sum())


def decode_tree(scores: numpy.ndarray) -> numpy.ndarray:
    """The best tree with exactly one word attached to the root."""
    return decode_trees(numpy.asarray(scores)[None], [len(scores) - 1])[0]


def decode_trees(scores: numpy.ndarray, lengths: Sequence[int]) -> numpy.ndarray:
    """The best one-root tree of each segment: scores (segments, n + 1,
    n + 1), segment s's words the first lengths[s]; heads (segments, n + 1),
    0 beyond each length. Segments of similar length are decoded together
    (groups of at least MIN_GROUP, their lengths within 1.5x + 8 of the
    shortest), so that short ones are not padded to the longest."""
    scores = numpy.asarray(scores)
    return _decode_in_groups(lengths, scores.shape[1], lambda group, size: scores[group, :size, :size])


def decode_dependent_rows(arcs: numpy.ndarray, lengths: Sequence[int]) -> numpy.ndarray:
    """decode_trees of scores given without the root's row (which no tree
    uses): arcs (segments, n, n + 1), arcs[s, d - 1, h] the score of node h
    heading word d. Each group's matrices are built at its own size, so a
    batch padded to its longest segment is never copied whole."""
    return decode_dependent_groups(lengths, arcs.shape[1] + 1, lambda group, size: arcs[group, : size - 1, :size])


def decode_dependent_groups(
    lengths: Sequence[int], n_nodes: int, dependent_rows: Callable[[numpy.ndarray, int], numpy.ndarray]
) -> numpy.ndarray:
    """decode_dependent_rows of scores computed one group at a time:
    dependent_rows(group, size) gives the (segments, size - 1, size) rows
    of the group's segments (indices into lengths), padded to size nodes.
    A caller never needs the scores of a whole batch padded to its longest
    segment."""

    def stack(group: numpy.ndarray, size: int) -> numpy.ndarray:
        square = numpy.zeros((len(group), size, size))
        square[:, 1:] = dependent_rows(group, size)
        return square

    return _decode_in_groups(lengths, n_nodes, stack)


def _decode_in_groups(lengths: Sequence[int], n_nodes: int, stack: Callable[[numpy.ndarray, int], numpy.ndarray]) -> numpy.ndarray:
    """Decode segments in groups of similar length; stack(group, size) gives
    the group's (segments, size, size) score matrices."""
    lengths = numpy.asarray(lengths, dtype=numpy.intp)
    heads = numpy.zeros((len(lengths), n_nodes), dtype=numpy.intp)
    order = numpy.argsort(lengths, kind="stable")
    start = 0
    while start < len(order):
        shortest = lengths[order[start]]
        end = start + 1
        while end < len(order) and (end - start < MIN_GROUP or lengths[order[end]] <= 1.5 * shortest + 8):
            end += 1
        group = order[start:end]
        size = lengths[group].max() + 1
        heads[group, :size] = _decode_stack(stack(group, size), lengths[group])
        start = end
    return heads


# Segments decoded together at the least.
MIN_GROUP = 32


def _decode_stack(scores: numpy.ndarray, lengths: numpy.ndarray) -> numpy.ndarray:
    """decode_trees of one stack. When the unconstrained maximum spanning
    tree has several root children, each of them is tried as the only one
    and the best resulting tree is kept."""
    scores = numpy.asarray(scores, dtype="float64")  # a copy already
    real = numpy.arange(scores.shape[1])[None, :] <= numpy.asarray(lengths)[:, None]
    _floor_masked_arcs(scores, real)
    heads = _spanning_trees(scores.copy(), real)
    root_children = (heads == 0) & real
    root_children[:, 0] = False
    several = numpy.flatnonzero(root_children.sum(axis=1) > 1)
    if len(several):
        segments, children = numpy.nonzero(root_children[several])
        segments = several[segments]
        constrained = scores[segments]
        kept = constrained[numpy.arange(len(children)), children, 0]
        constrained[:, 1:, 0] = NEG_INF
        constrained[numpy.arange(len(children)), children, 0] = kept
        candidates = _spanning_trees(constrained, real[segments])
        totals = _tree_scores(scores[segments], candidates, real[segments])
        # The best candidate of each segment; the first among equals.
        order = numpy.lexsort((numpy.arange(len(segments)), -totals, segments))
        first = numpy.r_[True, segments[order][1:] != segments[order][:-1]]
        heads[segments[order][first]] = candidates[order][first]
    heads[~real] = 0
    return heads


def _floor_masked_arcs(scores: numpy.ndarray, real: numpy.ndarray) -> None:
    """Arcs masked with -inf stay usable as a last resort, below every other
    arc of their segment, so a tree always exists."""
    between_real = real[:, :, None] & real[:, None, :]
    finite = numpy.isfinite(scores)
    if (finite | ~between_real).all():
        return
    floors = numpy.where(finite & between_real, scores, numpy.inf).min(axis=(1, 2))
    floors = numpy.where(numpy.isfinite(floors), floors, 0.0)
    numpy.copyto(scores, numpy.broadcast_to(floors[:, None, None] - 1e6, scores.shape), where=~finite & between_real)


def _tree_scores(scores: numpy.ndarray, heads: numpy.ndarray, real: numpy.ndarray) -> numpy.ndarray:
    arcs = numpy.take_along_axis(scores, heads[:, :, None], axis=2)[:, :, 0]
    return numpy.where(real, arcs, 0.0)[:, 1:].sum(axis=1)


def _doublings(n_nodes: int) -> int:
    """Pointer doublings that follow any path of n_nodes nodes to its end."""
    return max(1, (max(n_nodes, 2) - 1).bit_length())  # ceil(log2(n_nodes))


def _spanning_trees(scores: numpy.ndarray, real: numpy.ndarray) -> numpy.ndarray:
    """Chu-Liu-Edmonds on a stack of score matrices, changed in place; real
    (segments, nodes) says which nodes exist.

    Every group of nodes (at first each node alone) takes its best head
    group; each cycle this makes is contracted into one group, all at once,
    until no segment has a cycle. A contraction only rewrites the rows and
    columns of the cycle's groups: entering the cycle means breaking it at
    one group, so an arc into a group counts less its cycle arc; leaving it
    means the best group of the cycle as head. The arcs taken are then
    unrolled from the last contraction to the first."""
    _mask_impossible_arcs(scores, real)
    graph = _GroupGraph(scores)
    contractions = []
    # Only a segment that has just contracted a cycle can have a new one.
    active = numpy.arange(len(scores))
    while len(active):
        cycles = _cycle_leaders(graph.best[active])
        with_cycle = (cycles >= 0).any(axis=1)
        active, cycles = active[with_cycle], cycles[with_cycle]
        if len(active):
            contractions.append(graph.contract(active, cycles))
    return graph.unroll(contractions)


def _mask_impossible_arcs(scores: numpy.ndarray, real: numpy.ndarray) -> None:
    """No self loops and no head for the root; padding nodes hang from the
    root and head nothing."""
    n_nodes = scores.shape[1]
    scores[~real] = NEG_INF
    scores[~real, 0] = 0.0
    numpy.copyto(scores, NEG_INF, where=~real[:, None, :])
    scores[:, numpy.arange(n_nodes), numpy.arange(n_nodes)] = NEG_INF
    scores[:, 0] = NEG_INF
    scores[:, 0, 0] = 0.0


class _GroupGraph:
    """scores[s, a, b]: the best arc into group a from group b, each group
    named by its smallest node; arcs[s, a, b] the original nodes of that arc
    (dependent * nodes + head). best[s, a]: group a's best head group;
    group_of[s, v]: node v's group."""

    def __init__(self, scores: numpy.ndarray):
        n_segments, n_nodes, _ = scores.shape
        nodes = numpy.arange(n_nodes, dtype="int64")
        self.n_nodes = n_nodes
        self.scores = scores
        self.arcs = numpy.broadcast_to(nodes[:, None] * n_nodes + nodes[None, :], scores.shape).copy()
        self.best = scores.argmax(axis=2)
        self.identity = numpy.tile(nodes, (n_segments, 1))  # every node its own group
        self.group_of = self.identity.copy()
        self.rows_of = numpy.arange(n_segments)[:, None]

    def contract(self, active: numpy.ndarray, cycles: numpy.ndarray) -> "_Contraction":
        """Contract the cycles of the active segments, as _cycle_leaders
        gives them (one row per active segment)."""
        segments, members = numpy.nonzero(cycles >= 0)
        leaders = cycles[segments, members]
        segments = active[segments]
        order = numpy.lexsort((members, leaders, segments))
        segments, members, leaders = segments[order], members[order], leaders[order]
        layout = _CycleLayout(segments * cycles.shape[1] + leaders)
        cycle_heads = self.best[segments, members]
        contraction = _Contraction(segments, members, layout.starts, self.arcs[segments, members, cycle_heads], self.group_of.copy())
        cycle_segments, cycle_groups = segments[layout.starts], leaders[layout.starts]
        # Rows first, so that the columns of a cycle see the rows of another
        # contracted beside it.
        rows = self.scores[segments, members]
        entering = rows - rows[numpy.arange(len(rows)), cycle_heads][:, None]
        values, arcs = _best_by_cycle(entering, layout, self.arcs[segments, members])
        self.scores[cycle_segments, cycle_groups, :] = values
        self.arcs[cycle_segments, cycle_groups, :] = arcs
        values, arcs = _best_by_cycle(self.scores[segments, :, members], layout, self.arcs[segments, :, members])
        self.scores[cycle_segments, :, cycle_groups] = values
        self.arcs[cycle_segments, :, cycle_groups] = arcs
        absorbed = members != leaders
        absorbed_segments, absorbed_members = segments[absorbed], members[absorbed]
        self.scores[absorbed_segments, absorbed_members, :] = NEG_INF
        self.scores[absorbed_segments, :, absorbed_members] = NEG_INF
        self.scores[cycle_segments, cycle_groups, cycle_groups] = NEG_INF
        merged_into = self.identity.copy()
        merged_into[segments, members] = leaders
        # A group headed by a cycle's group keeps that arc, now to the cycle.
        self.best = merged_into[self.rows_of, self.best]
        self.best[absorbed_segments, absorbed_members] = 0
        self.best[cycle_segments, cycle_groups] = self.scores[cycle_segments, cycle_groups].argmax(axis=1)
        self.group_of = merged_into[self.rows_of, self.group_of]
        return contraction

    def unroll(self, contractions: List["_Contraction"]) -> numpy.ndarray:
        """Each node's head. From the last contraction back, the arc a
        cycle's group takes goes to the group it enters; every other group
        of the cycle keeps its cycle arc."""
        arcs = self.arcs[self.rows_of, numpy.arange(self.n_nodes), self.best]
        for c in reversed(contractions):
            cycle_segments, cycle_groups = c.segments[c.starts], c.members[c.starts]
            entering = arcs[cycle_segments, cycle_groups]
            arcs[c.segments, c.members] = c.cycle_arcs
            arcs[cycle_segments, c.group_of[cycle_segments, entering // self.n_nodes]] = entering
        return (arcs % self.n_nodes).astype(numpy.intp)


class _Contraction(NamedTuple):
    segments: numpy.ndarray  # of each group on a cycle, cycle by cycle
    members: numpy.ndarray  # the groups on a cycle
    starts: numpy.ndarray  # where each cycle begins; its first member leads it
    cycle_arcs: numpy.ndarray  # each member's cycle arc
    group_of: numpy.ndarray  # each node's group before the contraction


def _best_by_cycle(values: numpy.ndarray, cycles: "_CycleLayout", arcs: numpy.ndarray):
    """Per cycle and column, the best of its members' rows (the first
    member among equals), with the arc's original nodes."""
    stacked = numpy.full((cycles.n_cycles, cycles.longest, values.shape[1]), NEG_INF)
    stacked[cycles.cycle_of, cycles.position] = values
    member = cycles.starts[:, None] + stacked.argmax(axis=1)
    columns = numpy.arange(values.shape[1])
    return values[member, columns], arcs[member, columns]


class _CycleLayout:
    """Members sorted by cycle: each member's cycle and place in it."""

    def __init__(self, keys: numpy.ndarray):
        first = numpy.empty(len(keys), dtype=bool)
        first[:1] = True
        numpy.not_equal(keys[1:], keys[:-1], out=first[1:])
        self.starts = numpy.flatnonzero(first)
        self.cycle_of = numpy.cumsum(first) - 1
        self.position = numpy.arange(len(keys)) - self.starts[self.cycle_of]
        self.n_cycles, self.longest = len(self.starts), int(self.position.max()) + 1


def _cycle_leaders(heads: numpy.ndarray) -> numpy.ndarray:
    """For each node on a cycle, the smallest node of its cycle; -1 for the
    others. After n steps every walk is on the cycle it ends in, and on a
    cycle those endpoints are the whole cycle."""
    n_nodes = heads.shape[1]
    offsets = numpy.arange(len(heads))[:, None] * n_nodes
    pointers = heads + offsets  # into the flattened stack
    pointers[:, 0] = offsets[:, 0]
    far = pointers
    for _ in range(_doublings(n_nodes)):
        far = far.ravel()[far]
    on_cycle = numpy.zeros(heads.size, dtype=bool)
    on_cycle[far.ravel()] = True
    on_cycle = on_cycle.reshape(heads.shape)
    on_cycle[:, 0] = False
    leaders = numpy.where(on_cycle, numpy.arange(n_nodes), n_nodes)
    for _ in range(_doublings(n_nodes)):
        leaders = numpy.minimum(leaders, leaders.ravel()[pointers])
        pointers = pointers.ravel()[pointers]
    return numpy.where(on_cycle, leaders, -1)


