"""Which encoder layer a cascade level reads: one hidden state, or a learned
scalar mix of all of them (Peters et al. 2018)."""
from typing import Union

import torch

# The `layers` value of a level that reads a learned mix of every layer.
LAYER_MIX = "mix"


class LayerMix(torch.nn.Module):
    """gamma * sum_l softmax(w)_l h_l over the encoder's hidden states
    (Peters et al. 2018), or one chosen hidden state."""

    def __init__(self, n_states: int, layer: Union[int, str]):
        super().__init__()
        self.n_states = n_states
        self.layer = layer
        if layer == LAYER_MIX:
            self.weights = torch.nn.Parameter(torch.zeros(n_states))
            self.gamma = torch.nn.Parameter(torch.ones(1))  # 1-d: thinc optimizers reject 0-d params

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        states = X.view(*X.shape[:-1], self.n_states, X.shape[-1] // self.n_states)
        if self.layer != LAYER_MIX:
            return states[..., self.layer, :]
        weights = torch.softmax(self.weights, dim=0).to(states.dtype)
        return self.gamma * torch.einsum("...lh,l->...h", states, weights)
