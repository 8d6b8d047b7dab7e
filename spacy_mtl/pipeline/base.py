"""What every spacy-mtl component shares: heads over one encoder, trained
on one weighted sum of per-head losses."""
from functools import partial
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from spacy.pipeline import TrainablePipe
from spacy.pipeline.tok2vec import Tok2VecListener
from spacy.tokens import Doc
from spacy.training import Example, validate_examples
from spacy.util import minibatch
from spacy_transformers.data_classes import TransformerData
from spacy_transformers.layers import TransformerListener
from thinc.api import Optimizer, set_dropout_rate
from transformers.file_utils import ModelOutput

from ..compat import listener_batch, set_listener_backprop
from ..ml.optimizers import ScaledOptimizer
from ..names import SCORED_BY_KEY
from ..weighting import HeadWeights

# The default encoder input of a component: a listener to the pipeline's
# shared transformer, one vector per token (mean of its word pieces).
TRANSFORMER_LISTENER_CONFIG = """
[model.tok2vec]
@architectures = "spacy_mtl.TransformerListener.v1"
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
    def weights(self) -> HeadWeights:
        """How the heads' gradients are weighted (spacy_mtl/weighting.py)."""
        if "_weights" not in self.__dict__:
            self._weights = HeadWeights(self.cfg)
        return self._weights

    @property
    def head_names(self) -> List[str]:
        """The heads whose losses are weighted: those with a `<head>_weight`."""
        return [key[: -len("_weight")] for key in self.cfg if key.endswith("_weight")]

    def losses_and_gradients(self, examples: List[Example], outputs) -> Tuple[Dict[str, float], object]:
        raise NotImplementedError

    def gold_labels(self, docs: Iterable[Doc]) -> Dict[str, Set[str]]:
        """The labels reference docs annotate, by kind as in label_data."""
        raise NotImplementedError

    def unknown_labels(self, docs: Iterable[Doc]) -> Dict[str, List[str]]:
        """Labels reference docs annotate that the component has no output
        for, so never predicts, by kind as in label_data."""
        known = self.label_data
        unknown = {kind: sorted(labels - set(known.get(kind, ()))) for kind, labels in self.gold_labels(docs).items()}
        return {kind: labels for kind, labels in unknown.items() if labels}

    def annotates(self, head: str, doc: Doc) -> bool:
        """Whether a reference doc has gold annotation for a head."""
        raise NotImplementedError

    def has_gold(self, doc: Doc) -> bool:
        """Whether a reference doc has gold annotation for any head."""
        return any(self.annotates(head, doc) for head in self.head_names)

    def __call__(self, doc: Doc) -> Doc:
        if not self._predicts(doc):
            return doc
        return super().__call__(doc)

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """As TrainablePipe.pipe, but docs marked for other components only
        (SCORED_BY_KEY) pass through unannotated."""
        error_handler = self.get_error_handler()
        for docs in minibatch(stream, size=batch_size):
            try:
                predicted = [doc for doc in docs if self._predicts(doc)]
                if predicted:
                    self.set_annotations(predicted, self.predict(predicted))
                yield from docs
            except Exception as e:
                error_handler(self.name, self, docs, e)

    def _predicts(self, doc: Doc) -> bool:
        """False for a doc marked as scored by other components only."""
        scored_by = doc.user_data.get(SCORED_BY_KEY)
        return scored_by is None or self.name in scored_by

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
        with_gold = self._examples_with_gold(examples)
        if any(len(examples[i].predicted) for i in with_gold):
            if len(with_gold) < len(examples):
                self._narrow_listeners(examples, with_gold)
            head_losses = self._update_heads([examples[i] for i in with_gold])
        else:
            # Always backprop, even with all-zero gradients: the last listener of a
            # shared transformer is the one that runs its backward pass, for the
            # gradients of every component.
            self._send_zero_gradients()
            head_losses = {head: 0.0 for head in self.head_names}
            self.last_head_losses = {}
            self.weights.last_encoder_gradient_norm = None
        # Every parameter that ever had a gradient steps, batch with gold or not
        # (Adam's momentum keeps moving it), as when the heads ran on every doc.
        if sgd is not None:
            self.finish_update(sgd)
        for head, loss in head_losses.items():
            key = f"{self.name}:{head}"
            losses[key] = losses.get(key, 0.0) + loss
        losses[self.name] += self.weighted_loss(head_losses)
        return losses

    def _update_heads(self, examples: List[Example]) -> Dict[str, float]:
        """Forward and backward over docs with gold for some head; the
        unweighted loss of each head."""
        self._intercept_encoder_gradient()
        outputs, backprop = self.model.begin_update(self.model_inputs(examples))
        gold_docs = {head: sum(self.annotates(head, eg.reference) for eg in examples) for head in self.head_names}
        self.weights.begin_batch(gold_docs)
        head_losses, gradients = self.losses_and_gradients(examples, outputs)
        self.weights.end_batch()
        # (Every head with a loss has a weight, so is among head_names.)
        self.last_head_losses = {head: loss for head, loss in head_losses.items() if gold_docs[head]}
        backprop(gradients)
        if not self.last_head_losses:
            self.weights.last_encoder_gradient_norm = None
        return head_losses

    def _examples_with_gold(self, examples: List[Example]) -> List[int]:
        """The positions of the examples whose reference annotates some head.
        The others would add nothing to any loss or gradient (missing is not
        negative), so the heads skip them: in a mixed stream, most docs of a
        batch belong to other components' corpora."""
        return [i for i, eg in enumerate(examples) if self.has_gold(eg.reference)]

    def _waiting_listeners(self) -> List:
        """The model's listeners that hold an upstream batch and its backprop."""
        return [
            node for node in self.model.walk()
            if isinstance(node, (TransformerListener, Tok2VecListener)) and listener_batch(node)[1] is not None
        ]

    def _narrow_listeners(self, examples: List[Example], kept: List[int]) -> None:
        """Hand the model's listeners the upstream outputs of the kept
        examples' docs only. Their backprop fills in zeros for the others, so
        the upstream component still gets one gradient per doc of its batch."""
        docs = [examples[i].predicted for i in kept]
        for node in self._waiting_listeners():
            outputs, backprop = listener_batch(node)
            scatter = partial(_scatter_gradients, backprop, outputs, set(kept), self.model.ops)
            node.receive(node.get_batch_id(docs), [outputs[i] for i in kept], scatter)

    def _send_zero_gradients(self) -> None:
        for node in self._waiting_listeners():
            outputs, backprop = listener_batch(node)
            # spaCy's tok2vec listener has no backprop_and_clear: it keeps its
            # batch until the next one arrives.
            if isinstance(node, TransformerListener):
                backprop = node.backprop_and_clear
            backprop(_zero_gradients(self.model.ops, outputs))

    def _intercept_encoder_gradient(self) -> None:
        """Route the gradient that the model's listeners pass upstream through
        `_encoder_gradient`, which measures and scales it. The upstream
        component hands each listener its callback before this update runs;
        a tok2vec listener's forward pass returns that callback itself."""
        self.weights.last_encoder_gradient_norm = None
        for node in self._waiting_listeners():
            set_listener_backprop(node, partial(self._encoder_gradient, listener_batch(node)[1]))

    def _encoder_gradient(self, upstream: Callable, d_outputs: List, *args, **kwargs):
        self.weights.scale_encoder_gradient(self.model.ops, d_outputs)
        return upstream(d_outputs, *args, **kwargs)

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
        return self.weights.weighted_loss(head_losses)


def _has_no_gradient(output) -> bool:
    """An empty doc's transformer output: spacy-transformers' pooling sends
    no gradient for it (its backprop list skips the doc)."""
    return isinstance(output, TransformerData) and "last_hidden_state" not in output.model_output


def _zero_gradient(ops, output):
    """A zero gradient for one doc's listener output."""
    if isinstance(output, TransformerData):
        hidden = output.model_output.last_hidden_state
        return TransformerData(
            model_output=ModelOutput(last_hidden_state=ops.alloc(hidden.shape, dtype=hidden.dtype)),
            wordpieces=output.wordpieces,
            align=output.align,
        )
    return ops.alloc(output.shape, dtype=output.dtype)


def _zero_gradients(ops, outputs: List) -> List:
    return [_zero_gradient(ops, output) for output in outputs if not _has_no_gradient(output)]


def _scatter_gradients(backprop: Callable, outputs: List, kept: Set[int], ops, d_kept: List, *args, **kwargs):
    """Backprop the kept docs' gradients, with zeros for the other docs, in
    the order (and with the gaps) of the listener's whole batch."""
    d_kept = iter(d_kept)
    d_outputs = [
        next(d_kept) if i in kept else _zero_gradient(ops, output)
        for i, output in enumerate(outputs)
        if not _has_no_gradient(output)
    ]
    return backprop(d_outputs, *args, **kwargs)


class AuxiliaryObjective(TrainablePipe):
    """A component that only trains: it adds a loss on the shared encoder
    and annotates nothing, so at inference it passes docs through and a
    trained pipeline works the same without it."""

    def __call__(self, doc: Doc) -> Doc:
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        yield from stream

    def predict(self, docs: Iterable[Doc]) -> None:
        return None

    def set_annotations(self, docs: Iterable[Doc], scores) -> None:
        return None
