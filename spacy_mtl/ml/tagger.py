"""A token tagger head: a hidden layer, then one score per label."""
import torch

from .torch_util import mlp


class Tagger(torch.nn.Module):
    def __init__(self, n_in: int, hidden_width: int, n_labels: int, dropout: float):
        super().__init__()
        self.hidden = mlp(n_in, hidden_width, dropout)
        self.output = torch.nn.Linear(hidden_width, n_labels)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden(X))
