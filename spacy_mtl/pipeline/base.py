"""What every spacy-mtl component shares: heads over one encoder, trained
on one weighted sum of per-head losses."""
from typing import Dict, Iterable, List, Optional, Tuple

from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples
from thinc.api import Optimizer, set_dropout_rate

from ..ml.optimizers import ScaledOptimizer

# The default encoder input of a component: a listener to the pipeline's
# shared transformer, one vector per token (mean of its word pieces).
TRANSFORMER_LISTENER_CONFIG = """
[model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[model.tok2vec.pooling]
@layers = "reduce_mean.v1"
"""


class MultiTaskPipe(TrainablePipe):
    """Subclasses define `losses_and_gradients(examples, outputs)`: the loss
    of each head (unweighted) and the gradient of the model's outputs, with
    each head's gradient scaled by `cfg["<head>_weight"]`."""

    # The unweighted loss of each head with gold in the latest update (for
    # loss weighting): a head without gold in a batch has no loss to observe.
    last_head_losses: Dict[str, float] = {}

    @property
    def head_names(self) -> List[str]:
        """The heads whose losses are weighted: those with a `<head>_weight`."""
        return [key[: -len("_weight")] for key in self.cfg if key.endswith("_weight")]

    def losses_and_gradients(self, examples: List[Example], outputs) -> Tuple[Dict[str, float], object]:
        raise NotImplementedError

    def annotates(self, head: str, doc: Doc) -> bool:
        """Whether a reference doc has gold annotation for a head."""
        raise NotImplementedError

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd=None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        validate_examples(examples, f"{type(self).__name__}.update")
        examples = list(examples)
        if not any(len(eg.predicted) for eg in examples):
            # The transformer skips such a batch too: nothing waits for a backprop.
            return losses
        set_dropout_rate(self.model, drop)
        outputs, backprop = self.model.begin_update(self.model_inputs(examples))
        head_losses, gradients = self.losses_and_gradients(examples, outputs)
        self.last_head_losses = {
            head: loss for head, loss in head_losses.items() if any(self.annotates(head, eg.reference) for eg in examples)
        }
        # Always backprop, even with all-zero gradients: the last listener of a
        # shared transformer is the one that runs its backward pass, for the
        # gradients of every component.
        backprop(gradients)
        if sgd is not None:
            self.finish_update(sgd)
        for head, loss in head_losses.items():
            key = f"{self.name}:{head}"
            losses[key] = losses.get(key, 0.0) + loss
        losses[self.name] += self.weighted_loss(head_losses)
        return losses

    def finish_update(self, sgd: Optimizer) -> None:
        """Step the component's own parameters (its heads: the shared
        transformer steps in its own component), with the learning rate
        scaled by `cfg["heads_learn_rate_scale"]`: heads that start from
        scratch, or see their task in few batches of a mixed stream, can move
        faster than the pretrained encoder."""
        scale = self.cfg.get("heads_learn_rate_scale", 1.0)
        self.model.finish_update(sgd if scale == 1.0 else ScaledOptimizer(sgd, scale))

    def model_inputs(self, examples: List[Example]):
        """What the model reads in training: the predicted docs, by default."""
        return [eg.predicted for eg in examples]

    def get_loss(self, examples: Iterable[Example], outputs) -> Tuple[float, object]:
        head_losses, gradients = self.losses_and_gradients(list(examples), outputs)
        return self.weighted_loss(head_losses), gradients

    def weighted_loss(self, head_losses: Dict[str, float]) -> float:
        return sum(self.cfg[f"{head}_weight"] * loss for head, loss in head_losses.items())

