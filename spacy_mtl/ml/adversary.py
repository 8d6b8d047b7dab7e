"""The corpus discriminator of adversarial multi-task training (Liu et al.
2017): a doc's pooled encoder vectors, through a gradient-reversal layer,
classified by the corpus the doc came from. The discriminator learns to tell
the corpora apart; the reversed gradient teaches the shared encoder to make
them indistinguishable."""
from typing import Callable, List, Optional, Tuple

from spacy.util import registry
from thinc.api import Model, chain
from thinc.types import Floats2d

from .heads import logits_layer, mean_pool

OUTPUT_LAYER = "output_layer"


def gradient_reversal(strength: float = 1.0) -> Model[List[Floats2d], List[Floats2d]]:
    """Identity forward; backward, the gradient times -attrs["strength"]
    (Ganin and Lempitsky 2015). The component sets the strength per update."""
    return Model("gradient_reversal", _reversal_forward, attrs={"strength": strength})


def _reversal_forward(model: Model, X: List[Floats2d], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    def backprop(dY: List[Floats2d]) -> List[Floats2d]:
        strength = model.attrs["strength"]
        return [-strength * d for d in dY]

    return X, backprop


@registry.architectures("spacy_mtl.CorpusAdversary.v1")
def build_corpus_adversary(
    tok2vec: Model, hidden_width: int = 64, dropout: float = 0.1, nO: Optional[int] = None
) -> Model[list, Floats2d]:
    """Corpus logits per doc: the mean of its token vectors from `tok2vec`
    (a listener to the shared encoder), reversed, then a hidden layer."""
    layer, output_layer = logits_layer(hidden_width, dropout, nO)
    reversal = gradient_reversal()
    model = chain(tok2vec, reversal, mean_pool(), layer)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("reversal", reversal)
    model.set_ref(OUTPUT_LAYER, output_layer)
    return model
