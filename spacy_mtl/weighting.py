"""Task loss weighting, all of it: what a component multiplies each head's
gradient by, what it sends the shared encoder, and the callback that sets
the weights before every update.

Every spacy-mtl component scales each head's gradient by
`cfg["<head>_weight"]` before it reaches the shared encoder: with Adam a
head's own update hardly depends on the scale of its loss, the balance of
gradients at the encoder does. A component holds a HeadWeights, which
applies the weights (times a per-batch doc scale with
`weigh_docs_equally`), and measures and scales the gradient the component
sends to the encoder. The callback (spacy_mtl.loss_weighting.v1) sets the
weights before every update, as base weight (the component's config) x a
factor from a strategy:

- "static": factor 1 (or a schedule over steps);
- "uncertainty": Kendall et al. 2018, total loss sum_t exp(-s_t) L_t + s_t
  with s_t learned: the factor is exp(-s_t), and s_t follows the gradient
  1 - exp(-s_t) L_t of the observed losses (Adam);
- "dwa": dynamic weight averaging, Liu et al. 2019: factors
  T * softmax(r_t / temperature) with r_t = L_t(e-1) / L_t(e-2), the ratio
  of a task's mean losses over the two previous epochs.
- "gradnorm": the aim of GradNorm (Chen et al. 2018) with alpha = 0, equal
  gradient norms at the encoder, in closed form instead of learned: the
  gradient each component sends to the encoder is scaled so that its
  running norm is the geometric mean of all components' running norms. It
  acts per component, not per head: a component's heads reach the encoder
  through one gradient. The head weights stay as configured.
"""
import math
from typing import Any, Dict, Iterable, List, Optional, Tuple

from spacy.language import Language
from spacy.util import registry


class HeadWeights:
    """A component's weighting of its heads' gradients, read from its cfg at
    each use (the callback may change it between updates)."""

    def __init__(self, cfg: Dict[str, Any]) -> None:
        self.cfg = cfg
        # The factor the component's gradient to the shared encoder is
        # multiplied by (gradnorm sets it; the heads' own gradients are not
        # scaled), and that gradient's norm before scaling in the latest
        # update: None when that update had no gold for any head (its
        # gradient was zero, no observation).
        self.encoder_gradient_scale = 1.0
        self.last_encoder_gradient_norm: Optional[float] = None
        # With cfg["weigh_docs_equally"]: each head's factor for the batch
        # being updated, and its running mean of docs with gold per batch.
        self.batch_doc_scales: Dict[str, float] = {}
        self.gold_docs_per_batch: Dict[str, RunningMean] = {}

    def head(self, head: str) -> float:
        """The factor of a head's gradient in the current batch: its
        `cfg["<head>_weight"]`, times its doc scale."""
        return self.encoder_share(head) * self.doc_scale(head)

    def encoder_share(self, head: str) -> float:
        """The head's configured weight alone: for a head whose own layers
        take the doc scale and whose gradient to the encoder takes the
        weight (ner_re's relations, whose scorer is a layer of its own)."""
        return self.cfg[f"{head}_weight"]

    def doc_scale(self, head: str) -> float:
        return self.batch_doc_scales.get(head, 1.0)

    def weighted_loss(self, head_losses: Dict[str, float]) -> float:
        return sum(self.cfg[f"{head}_weight"] * loss for head, loss in head_losses.items())

    def begin_batch(self, gold_docs: Dict[str, int]) -> None:
        """Set the doc scales of a batch with `gold_docs` docs with gold per
        head. A head's loss is a mean over its gold in the batch, so a doc
        counts for more in a batch that holds few of its kind: in a mixed
        stream, a batch with 1 doc of a corpus pulls as hard as one with 20.
        Scaled by the batch's docs over their running mean, each doc counts
        about the same in every batch, while a head's average gradient per
        batch stays as large."""
        self.batch_doc_scales = {}
        if not self.cfg.get("weigh_docs_equally"):
            return
        for head, n_gold in gold_docs.items():
            if n_gold:
                mean = self.gold_docs_per_batch.setdefault(head, RunningMean())
                self.batch_doc_scales[head] = n_gold / mean.update(n_gold)

    def end_batch(self) -> None:
        self.batch_doc_scales = {}

    def scale_encoder_gradient(self, ops, d_outputs: List) -> None:
        """Measure (adding to the norm of this update) and scale, in place,
        the gradient a component sends to the encoder: one array per doc."""
        arrays = [_encoder_gradient_array(d) for d in d_outputs]
        squared = _sum_of_squares(ops, arrays)
        self.last_encoder_gradient_norm = ((self.last_encoder_gradient_norm or 0.0) ** 2 + squared) ** 0.5
        if self.encoder_gradient_scale != 1.0:
            for array in arrays:
                array *= self.encoder_gradient_scale


class RunningMean:
    """An exponential moving average, bias-corrected as Adam's moments are,
    so that its first values are not pulled towards zero."""

    def __init__(self, decay: float = 0.99) -> None:
        self.decay = decay
        self.average = 0.0
        self.count = 0

    def update(self, value: float) -> float:
        """Add a value; the mean so far."""
        self.count += 1
        self.average = self.decay * self.average + (1.0 - self.decay) * value
        return self.average / (1.0 - self.decay**self.count)


def _sum_of_squares(ops, arrays: List) -> float:
    """One dot product over all the docs' arrays: on a GPU, one small
    operation per doc and a read-back each would cost more than the sum.
    In float32, as a mixed-precision transformer's float16 squares overflow."""
    if not arrays:
        return 0.0
    flat = ops.xp.concatenate([array.ravel() for array in arrays]).astype("float32", copy=False)
    return float(flat @ flat)


def _encoder_gradient_array(d_output):
    """The array inside one doc's gradient to a listener: a transformer's
    last hidden state, or a tok2vec's token vectors."""
    model_output = getattr(d_output, "model_output", None)
    if model_output is None:
        return d_output
    return model_output.last_hidden_state


STRATEGIES = ("static", "uncertainty", "dwa", "gradnorm")

# "component:head", the key of a head's loss in the training losses.
HeadKey = str


def multitask_pipes(nlp: Language) -> List[Tuple[str, Any]]:
    """(name, component) of every component with weighted heads: spacy-mtl's
    components, known by their HeadWeights (and head_names,
    last_head_losses)."""
    return [(name, pipe) for name, pipe in nlp.pipeline if isinstance(getattr(pipe, "weights", None), HeadWeights)]


def multitask_heads(nlp: Language) -> List[Tuple[HeadKey, Any, str]]:
    """(key, component, head) of every head of every spacy-mtl component."""
    return [(f"{name}:{head}", pipe, head) for name, pipe in multitask_pipes(nlp) for head in pipe.head_names]


@registry.callbacks("spacy_mtl.loss_weighting.v1")
def create_loss_weighting(
    strategy: str = "static",
    schedules: Dict[HeadKey, Any] = {},
    learn_rate: float = 0.01,
    temperature: float = 2.0,
    norm_decay: float = 0.95,
    max_scale: float = 10.0,
) -> "LossWeighting":
    """For [training.before_update]. strategy: static, uncertainty, dwa or
    gradnorm. schedules: "component:head" -> a schedule over steps, multiplied in.
    learn_rate: of the uncertainty parameters s_t.
    temperature: of dynamic weight averaging.
    norm_decay: of gradnorm's running gradient norms (per step with gold).
    max_scale: gradnorm's scales stay within [1 / max_scale, max_scale]."""
    return LossWeighting(
        strategy,
        schedules=schedules,
        learn_rate=learn_rate,
        temperature=temperature,
        norm_decay=norm_decay,
        max_scale=max_scale,
    )


class LossWeighting:
    def __init__(
        self,
        strategy: str,
        *,
        schedules: Dict[HeadKey, Any] = {},
        learn_rate: float = 0.01,
        temperature: float = 2.0,
        norm_decay: float = 0.95,
        max_scale: float = 10.0,
    ):
        if strategy not in STRATEGIES:
            raise ValueError(f"Unknown loss weighting strategy '{strategy}'; choose one of {STRATEGIES}")
        if not 0.0 <= norm_decay < 1.0:
            raise ValueError(f"norm_decay must be in [0, 1), got {norm_decay}")
        if max_scale < 1.0:
            raise ValueError(f"max_scale must be >= 1, got {max_scale}")
        self.strategy = strategy
        self.schedules = dict(schedules)
        self.learn_rate = learn_rate
        self.temperature = temperature
        self.norm_decay = norm_decay
        self.max_scale = max_scale
        self.encoder_gradient_norms: Dict[str, float] = {}  # running, per component
        self.base: Dict[HeadKey, float] = {}
        self.log_variances: Dict[HeadKey, float] = {}  # s_t of uncertainty weighting
        self._adam: Dict[HeadKey, Tuple[float, float, int]] = {}
        self.epoch_losses: Dict[int, Dict[HeadKey, List[float]]] = {}
        self.factors: Dict[HeadKey, float] = {}
        # A generator schedule's latest value and the step it belongs to.
        self._schedule_positions: Dict[HeadKey, Tuple[float, int]] = {}

    def __call__(self, nlp: Language, args: Dict[str, Any]) -> None:
        heads = multitask_heads(nlp)
        unknown = set(self.schedules) - {key for key, _, _ in heads}
        if unknown:
            raise ValueError(f"Loss weight schedules for unknown heads {sorted(unknown)}; heads: {[k for k, _, _ in heads]}")
        for key, pipe, head in heads:
            self.base.setdefault(key, pipe.cfg[f"{head}_weight"])
        losses = {key: pipe.last_head_losses[head] for key, pipe, head in heads if head in pipe.last_head_losses}
        self.factors = self.update_factors(losses, args.get("epoch", 0))
        for key, pipe, head in heads:
            pipe.cfg[f"{head}_weight"] = self.base[key] * self.factors.get(key, 1.0) * self._scheduled(key, args.get("step", 0))
        if self.strategy == "gradnorm":
            pipes = multitask_pipes(nlp)
            norms = {name: pipe.weights.last_encoder_gradient_norm for name, pipe in pipes}
            scales = self.update_encoder_gradient_scales(norms)
            for name, pipe in pipes:
                pipe.weights.encoder_gradient_scale = scales.get(name, 1.0)

    def update_factors(self, losses: Dict[HeadKey, float], epoch: int) -> Dict[HeadKey, float]:
        """The strategy's factor per head, given the losses of the last step."""
        if self.strategy == "uncertainty":
            for key, loss in losses.items():
                self._step_log_variance(key, loss)
            return {key: math.exp(-s) for key, s in self.log_variances.items()}
        if self.strategy == "dwa":
            for key, loss in losses.items():
                self.epoch_losses.setdefault(epoch, {}).setdefault(key, []).append(loss)
            return self._dwa_factors(epoch)
        return {}

    def update_encoder_gradient_scales(self, norms: Dict[str, Optional[float]]) -> Dict[str, float]:
        """gradnorm's scale per component, given the norms of the gradients
        the components sent to the encoder in the last step."""
        for name, norm in norms.items():
            if norm:
                previous = self.encoder_gradient_norms.get(name, norm)
                self.encoder_gradient_norms[name] = self.norm_decay * previous + (1.0 - self.norm_decay) * norm
        running = self.encoder_gradient_norms
        if len(running) < 2:
            return {}
        target = math.exp(_mean(math.log(norm) for norm in running.values()))
        return {name: min(max(target / norm, 1.0 / self.max_scale), self.max_scale) for name, norm in running.items()}

    def _step_log_variance(self, key: HeadKey, loss: float) -> None:
        """One Adam step on s in exp(-s) L + s: gradient 1 - exp(-s) L."""
        s = self.log_variances.get(key, 0.0)
        m, v, t = self._adam.get(key, (0.0, 0.0, 0))
        gradient = 1.0 - math.exp(-s) * loss
        t += 1
        m = 0.9 * m + 0.1 * gradient
        v = 0.999 * v + 0.001 * gradient**2
        s -= self.learn_rate * (m / (1 - 0.9**t)) / (math.sqrt(v / (1 - 0.999**t)) + 1e-8)
        self.log_variances[key] = s
        self._adam[key] = (m, v, t)

    def _dwa_factors(self, epoch: int) -> Dict[HeadKey, float]:
        previous, before = self.epoch_losses.get(epoch - 1), self.epoch_losses.get(epoch - 2)
        if not previous or not before:
            return {}  # the first two epochs: equal factors
        keys = [key for key in previous if key in before and _mean(before[key]) > 0]
        ratios = {key: _mean(previous[key]) / _mean(before[key]) for key in keys}
        top = max(ratios.values(), default=0.0)
        exps = {key: math.exp((ratio - top) / self.temperature) for key, ratio in ratios.items()}
        total = sum(exps.values())
        return {key: len(exps) * value / total for key, value in exps.items()}

    def _scheduled(self, key: HeadKey, step: int) -> float:
        schedule = self.schedules.get(key)
        if schedule is None:
            return 1.0
        if callable(schedule):  # thinc Schedule objects
            return float(schedule(step=step))
        # thinc 8's schedules are generators of one value a step: advance this
        # one to the training step, however often the callback is called.
        value, at = self._schedule_positions.get(key, (1.0, -1))
        if step < at:
            raise ValueError(f"The loss weight schedule of '{key}' was at step {at}, and was asked for step {step}")
        while at < step:
            value, at = float(next(schedule)), at + 1
        self._schedule_positions[key] = (value, at)
        return value


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
