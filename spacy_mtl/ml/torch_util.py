"""Small PyTorch helpers of the cascade's heads."""
import torch

# Padding and impossible arcs; finite, so softmax and fp16 stay well defined.
MASKED_SCORE = -1e4


def mlp(n_in: int, n_out: int, dropout: float) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(n_in, n_out), torch.nn.GELU())


def unpack(packed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(tokens, ...) rows back to (segments, positions, ...), zeros as padding."""
    padded = packed.new_zeros(*mask.shape, *packed.shape[1:])
    padded[mask] = packed
    return padded
