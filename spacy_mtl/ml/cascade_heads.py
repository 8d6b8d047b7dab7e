"""The cascade's heads as one PyTorch module: per level a layer choice, the
soft label embeddings of the levels it reads, and a tagger or the parser."""
from typing import Dict, List, Union

import torch

from .biaffine import BiaffineParser
from .casing import N_CASING_CLASSES
from .layer_mix import LayerMix
from .tagger import Tagger
from .torch_util import unpack

TAGGER_KINDS = ("tag", "pos", "chunk")
PARSER_KIND = "dep"
LEVEL_KINDS = TAGGER_KINDS + (PARSER_KIND,)


class CascadeHeads(torch.nn.Module):
    def __init__(
        self,
        input_width: int,
        n_labels: Dict[str, int],
        levels: List[str],
        inputs: Dict[str, List[str]],
        layers: Dict[str, Union[int, str]],
        n_hidden_states: int,
        hidden_width: int,
        label_embedding_width: int,
        arc_width: int,
        dep_label_width: int,
        dropout: float,
        casing_width: int = 0,
    ):
        super().__init__()
        if input_width % n_hidden_states:
            raise ValueError(f"Encoder width {input_width} is not a multiple of n_hidden_states = {n_hidden_states}")
        width = input_width // n_hidden_states
        self.levels = list(levels)
        self.inputs = inputs
        self.mixes = torch.nn.ModuleDict({level: LayerMix(n_hidden_states, layers[level]) for level in levels})
        self.label_embeddings = torch.nn.ModuleDict()
        for level in levels:
            for source in inputs[level]:
                if source not in self.label_embeddings:
                    self.label_embeddings[source] = torch.nn.Linear(n_labels[source], label_embedding_width, bias=False)
        self.casing = torch.nn.Embedding(N_CASING_CLASSES, casing_width) if casing_width else None
        self.heads = torch.nn.ModuleDict()
        for level in levels:
            n_in = width + casing_width + label_embedding_width * len(inputs[level])
            if level == PARSER_KIND:
                self.heads[level] = BiaffineParser(n_in, arc_width, dep_label_width, n_labels[level], dropout)
            else:
                self.heads[level] = Tagger(n_in, hidden_width, n_labels[level], dropout)

    def forward(self, X: torch.Tensor, lengths: torch.Tensor, heads: torch.Tensor, casing: torch.Tensor) -> Dict[str, torch.Tensor]:
        """X (tokens, width) and casing (tokens,): the segments' real tokens,
        packed in order (short sentences padded to the longest of a batch
        would be mostly padding); lengths (segments,); heads (segments,
        longest segment), -1 where unknown. Scores come out padded."""
        mask = torch.arange(heads.shape[1], device=X.device)[None, :] < lengths[:, None]
        shared = [self.casing(casing).to(X.dtype)] if self.casing is not None else []
        outputs: Dict[str, torch.Tensor] = {}
        soft_labels: Dict[str, torch.Tensor] = {}
        for level in self.levels:
            features = [self.mixes[level](X)] + shared
            for source in self.inputs[level]:
                if source not in soft_labels:
                    probs = torch.softmax(outputs[source].float(), dim=-1).to(X.dtype)
                    soft_labels[source] = self.label_embeddings[source](probs)
                features.append(soft_labels[source])
            level_input = torch.cat(features, dim=-1)
            if level == PARSER_KIND:
                outputs.update(self.heads[level](level_input, mask, heads))
            else:
                outputs[level] = self.heads[level](level_input)
        return {name: unpack(scores, mask) if name in TAGGER_KINDS else scores for name, scores in outputs.items()}
