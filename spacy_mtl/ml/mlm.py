"""The head of the masked-language-model auxiliary objective: BERT's
prediction transform (dense, GELU, layer norm). Its output is scored against
the encoder's own input embeddings (a tied decoder), which the component
reads from the encoder at each update, so the head holds no vocabulary-sized
weights of its own and the embeddings are stepped once, by the encoder."""
import torch
from spacy.util import registry
from thinc.api import Model, PyTorchWrapper


class MaskedLMTransform(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.dense = torch.nn.Linear(width, width)
        self.norm = torch.nn.LayerNorm(width)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.nn.functional.gelu(self.dense(hidden)))


@registry.architectures("spacy_mtl.MaskedLMHead.v1")
def build_masked_lm_head(hidden_width: int = 384) -> Model:
    """hidden_width: the encoder's hidden size (384 for all-MiniLM-L6-v2)."""
    model = PyTorchWrapper(MaskedLMTransform(hidden_width))
    model.attrs["hidden_width"] = hidden_width
    return model


def mask_wordpieces(input_ids: torch.Tensor, maskable: torch.Tensor, mask_id: int, vocab_size: int, rate: float):
    """BERT's masking: each maskable piece is chosen with probability `rate`
    (at least one per batch); a chosen piece becomes [MASK] 80% of the time,
    a random piece 10%, and stays 10%. Returns the masked ids and the labels
    (-100 where nothing is predicted)."""
    chosen = torch.bernoulli(torch.full(input_ids.shape, rate)).bool() & maskable
    if not chosen.any():
        candidates = maskable.flatten().nonzero().flatten()
        chosen.view(-1)[candidates[torch.randint(len(candidates), (1,))]] = True
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    replaced = chosen & torch.bernoulli(torch.full(input_ids.shape, 0.8)).bool()
    randomized = chosen & ~replaced & torch.bernoulli(torch.full(input_ids.shape, 0.5)).bool()
    masked = input_ids.clone()
    masked[replaced] = mask_id
    masked[randomized] = torch.randint(vocab_size, input_ids.shape)[randomized]
    return masked, labels
