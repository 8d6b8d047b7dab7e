"""The biaffine dependency parser head (Dozat and Manning 2017): arc scores
between every dependent and every head of a segment, and label scores of each
dependent with the head it is given."""
from typing import Dict

import torch

from ..trees import decode_dependent_rows
from .torch_util import MASKED_SCORE, mlp, unpack

# Outputs with a gradient, in the order the backward pass passes them.
ARC_SCORES, DEP_LABEL_SCORES, USED_HEADS = "arcs", "dep_labels", "used_heads"


class BiaffineParser(torch.nn.Module):
    """Arc scores (segments, dependents, 1 + heads), column 0 the root, and
    label scores of each dependent with the head it is given."""

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
        (segments, positions) says where they sit. Scores come out padded."""
        n_segments, n_tokens = mask.shape
        root = self.root.to(X.dtype)
        # Two matrix products, the first over the real tokens only (a padded
        # batch is mostly padding); einsum's three-way contraction is slower on a CPU.
        dep = unpack(self.arc_dep(X) @ self.arc_weight.to(X.dtype), mask)
        head = torch.cat([self.arc_head(root).expand(n_segments, 1, -1), unpack(self.arc_head(X), mask)], dim=1)
        arcs = torch.bmm(dep, head.transpose(1, 2))
        arcs = arcs + (head @ self.arc_head_bias.to(X.dtype))[:, None, :]
        candidates = torch.cat([mask.new_ones(n_segments, 1), mask], dim=1)
        self_loops = torch.zeros(n_tokens, n_tokens + 1, dtype=torch.bool, device=X.device)
        self_loops[:, 1:] = torch.eye(n_tokens, dtype=torch.bool, device=X.device)
        allowed = candidates[:, None, :] & ~self_loops[None]
        arcs = arcs.masked_fill(~allowed, MASKED_SCORE)
        heads = self._fill_heads(arcs, mask, heads)
        # Label scores only at real tokens: with the head each one is given,
        # found among the packed tokens (row 0 the root).
        label_heads = torch.cat([self.label_head(root)[None], self.label_head(X)])
        segment_offsets = torch.cumsum(mask.sum(dim=1), dim=0) - mask.sum(dim=1)
        columns = heads.clamp(min=0)
        rows = torch.where(columns == 0, 0, segment_offsets[:, None] + columns)[mask]
        # Not label_heads[rows]: on the CPU, with several threads, its backward
        # adds up the gradients of tokens that share a head in a different
        # order each time, and training does not repeat itself.
        label_dep, label_head = self.label_dep(X), label_heads.index_select(0, rows)
        labels = _label_bilinear(label_dep, self.label_weight.to(X.dtype), label_heads, rows)
        labels = labels + self.label_linear(torch.cat([label_dep, label_head], dim=-1))
        return {ARC_SCORES: arcs, DEP_LABEL_SCORES: unpack(labels, mask), USED_HEADS: heads}

    def _fill_heads(self, arcs: torch.Tensor, mask: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        """Given heads where known; elsewhere the decoded tree (inference) or
        the best-scoring head (training, where those tokens carry no loss)."""
        missing = (heads < 0) & mask
        if not bool(missing.any()):
            return heads
        heads = heads.clone()
        if self.training:
            heads[missing] = arcs.argmax(dim=-1)[missing]
            return heads
        # One transfer off the device, and all the batch's trees decoded at once.
        decoding = torch.nonzero(missing.any(dim=1)).flatten()
        scores = arcs[decoding].detach().float().cpu().numpy()
        trees = decode_dependent_rows(scores, mask[decoding].sum(dim=1).tolist())[:, 1:]
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
