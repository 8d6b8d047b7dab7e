"""The biaffine dependency parser head (Dozat and Manning 2017): arc scores
between every dependent and every head of a segment, and label scores of each
dependent with the head it is given."""
from typing import Dict

import numpy
import torch

from ..trees import decode_dependent_groups
from .torch_util import MASKED_SCORE, mlp, unpack

# Outputs with a gradient, in the order the backward pass passes them.
ARC_SCORES, DEP_LABEL_SCORES, USED_HEADS = "arcs", "dep_labels", "used_heads"


class BiaffineParser(torch.nn.Module):
    """Arc scores (segments, dependents, 1 + heads), column 0 the root, or
    at inference the decoded trees, and label scores of each dependent with
    the head it is given."""

    def __init__(self, n_in: int, arc_width: int, label_width: int, n_labels: int, dropout: float):
        super().__init__()
        self.root = torch.nn.Parameter(torch.randn(n_in) * 0.1)
        self.arc_dep, self.arc_head = mlp(n_in, arc_width, dropout), mlp(n_in, arc_width, dropout)
        self.label_dep, self.label_head = mlp(n_in, label_width, dropout), mlp(n_in, label_width, dropout)
        self.arc_weight = torch.nn.Parameter(torch.zeros(arc_width, arc_width))
        self.arc_head_bias = torch.nn.Parameter(torch.zeros(arc_width))
        self.label_weight = torch.nn.Parameter(torch.zeros(n_labels, label_width, label_width))
        self.label_linear = torch.nn.Linear(2 * label_width, n_labels)

    def forward(self, X: torch.Tensor, mask: torch.Tensor, heads: torch.Tensor) -> Dict[str, torch.Tensor]:
        """X: the real tokens of the segments, packed (tokens, width); mask
        (segments, positions) says where they sit. Scores come out padded;
        arc scores only in training, where the loss reads them: inference
        scores the arcs of each group of segments of similar length as it
        decodes their trees."""
        root = self.root.to(X.dtype)
        # Two matrix products, the first over the real tokens only (a padded
        # batch is mostly padding); einsum's three-way contraction is slower
        # on a CPU. (This order of the layers keeps dropout's draws.)
        dep = self.arc_dep(X) @ self.arc_weight.to(X.dtype)
        root_head, head = self.arc_head(root), self.arc_head(X)
        # Each segment's length, and the packed row of its first token.
        lengths = mask.sum(dim=1)
        offsets = torch.cumsum(lengths, dim=0) - lengths
        outputs = {}
        if self.training:
            outputs[ARC_SCORES] = self._padded_arcs(dep, root_head, head, mask, lengths)
            heads = self._best_heads(outputs[ARC_SCORES], mask, heads)
        else:
            heads = self._decoded_heads(dep, root_head, head, mask, heads, lengths, offsets)
        # Label scores only at real tokens: with the head each one is given,
        # found among the packed tokens (row 0 the root).
        label_heads = torch.cat([self.label_head(root)[None], self.label_head(X)])
        columns = heads.clamp(min=0)
        rows = torch.where(columns == 0, 0, offsets[:, None] + columns)[mask]
        # Not label_heads[rows]: on the CPU, with several threads, its backward
        # adds up the gradients of tokens that share a head in a different
        # order each time, and training does not repeat itself.
        label_dep, label_head = self.label_dep(X), label_heads.index_select(0, rows)
        labels = _label_bilinear(label_dep, self.label_weight.to(X.dtype), label_heads, rows)
        labels = labels + self.label_linear(torch.cat([label_dep, label_head], dim=-1))
        outputs.update({DEP_LABEL_SCORES: unpack(labels, mask), USED_HEADS: heads})
        return outputs

    def _arcs(self, dep: torch.Tensor, head: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(segments, positions, 1 + positions) arc scores of padded
        dependents and heads (head row 0 the root); impossible arcs (to
        padding, self loops) get MASKED_SCORE."""
        n_segments, n_positions = dep.shape[:2]
        arcs = torch.bmm(dep, head.transpose(1, 2))
        arcs = arcs + (head @ self.arc_head_bias.to(dep.dtype))[:, None, :]
        positions = torch.arange(n_positions, device=dep.device)
        candidates = torch.cat([lengths.new_ones(n_segments, 1, dtype=torch.bool), positions[None, :] < lengths[:, None]], dim=1)
        self_loops = torch.zeros(n_positions, n_positions + 1, dtype=torch.bool, device=dep.device)
        self_loops[:, 1:] = torch.eye(n_positions, dtype=torch.bool, device=dep.device)
        return arcs.masked_fill(~(candidates[:, None, :] & ~self_loops[None]), MASKED_SCORE)

    def _padded_arcs(
        self, dep: torch.Tensor, root_head: torch.Tensor, head: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        heads = torch.cat([root_head.expand(mask.shape[0], 1, -1), unpack(head, mask)], dim=1)
        return self._arcs(unpack(dep, mask), heads, lengths)

    def _best_heads(self, arcs: torch.Tensor, mask: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        """Given heads where known, the best-scoring head elsewhere (those
        tokens carry no loss)."""
        missing = (heads < 0) & mask
        if not bool(missing.any()):
            return heads
        heads = heads.clone()
        heads[missing] = arcs.argmax(dim=-1)[missing]
        return heads

    def _decoded_heads(
        self, dep: torch.Tensor, root_head: torch.Tensor, head: torch.Tensor, mask: torch.Tensor, heads: torch.Tensor,
        lengths: torch.Tensor, offsets: torch.Tensor,
    ) -> torch.Tensor:
        """Given heads where known, the decoded tree elsewhere. The arcs of
        each group of segments the decoder takes together are scored at the
        group's own size, and come off the device once per group. lengths
        and offsets: each segment's, and the packed row of its first token."""
        missing = (heads < 0) & mask
        if not bool(missing.any()):
            return heads
        padding = len(dep)  # a zero row after the packed tokens
        dep = torch.cat([dep, dep.new_zeros(1, dep.shape[1])])
        head = torch.cat([head, head.new_zeros(1, head.shape[1])])
        decoding = torch.nonzero(missing.any(dim=1)).flatten()

        def dependent_rows(group: numpy.ndarray, size: int) -> numpy.ndarray:
            segments = decoding[torch.as_tensor(group, device=dep.device)]
            positions = torch.arange(size - 1, device=dep.device)
            real = positions[None, :] < lengths[segments][:, None]
            rows = torch.where(real, offsets[segments][:, None] + positions, padding).flatten()
            group_dep = dep.index_select(0, rows).view(len(group), size - 1, -1)
            group_head = torch.cat([root_head.expand(len(group), 1, -1), head.index_select(0, rows).view(len(group), size - 1, -1)], dim=1)
            return self._arcs(group_dep, group_head, lengths[segments]).float().cpu().numpy()

        trees = decode_dependent_groups(lengths[decoding].tolist(), mask.shape[1] + 1, dependent_rows)[:, 1:]
        heads = heads.clone()
        trees = torch.as_tensor(trees, dtype=heads.dtype, device=heads.device)
        heads[decoding] = torch.where(missing[decoding], trees, heads[decoding])
        return heads


def _label_bilinear(dep: torch.Tensor, weight: torch.Tensor, heads: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """dep_i^T weight_l heads[rows_i] for every token i and label l: the
    heads' largest product (tokens x labels x width^2). In each chunk of
    tokens, weight_l heads_h is computed once per distinct head h (about a
    third as many as tokens), then multiplied with the tokens of each head
    (_products_by_head); the chunks keep memory bounded on long segments."""
    chunks = []
    for start in range(0, dep.shape[0], LABEL_CHUNK):
        distinct, of_token, counts = torch.unique(rows[start : start + LABEL_CHUNK], return_inverse=True, return_counts=True)
        per_head = torch.einsum("lef,hf->hle", weight, heads.index_select(0, distinct))
        chunks.append(_products_by_head(per_head, dep[start : start + LABEL_CHUNK], of_token, counts))
    return torch.cat(chunks) if chunks else dep.new_zeros(0, weight.shape[0])


# Tokens whose label scores are computed at once.
LABEL_CHUNK = 1024
# Tokens of one head multiplied with its (labels x width) matrix in one batch
# entry; a head's further tokens (a long list's head) each take their own.
HEAD_GROUP = 16


def _products_by_head(per_head: torch.Tensor, dep: torch.Tensor, of_token: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """per_head[of_token_i] @ dep_i for every token i, (tokens, labels).
    Each head's tokens are gathered into a (heads, group, width) batch, one
    product per head: copying each token's (labels x width) matrix instead
    costs more than the products themselves. Padding takes token 0, whose
    padded scores are never read."""
    n_heads, n_tokens = per_head.shape[0], dep.shape[0]
    group = min(int(counts.max()), HEAD_GROUP)
    order = torch.argsort(of_token, stable=True)
    firsts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(of_token)
    rank[order] = torch.arange(n_tokens, device=dep.device) - firsts[of_token[order]]
    grouped = rank < group
    cells = of_token * group + rank
    members = torch.zeros(n_heads * group, dtype=torch.int64, device=dep.device)
    members[cells[grouped]] = torch.nonzero(grouped).flatten()
    batch = dep.index_select(0, members).view(n_heads, group, -1)
    products = torch.bmm(batch, per_head.transpose(1, 2)).flatten(0, 1)
    rest = torch.nonzero(~grouped).flatten()
    if not len(rest):
        return products.index_select(0, cells)
    extra = torch.bmm(per_head.index_select(0, of_token[rest]), dep.index_select(0, rest)[:, :, None]).squeeze(-1)
    cells[rest] = products.shape[0] + torch.arange(len(rest), device=dep.device)
    return torch.cat([products, extra]).index_select(0, cells)
