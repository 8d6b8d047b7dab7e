"""Inter-task affinity (Fifty et al. 2021, "Efficiently identifying task
groupings for multi-task learning"): which heads help which, measured while
a multi-task config trains.

Every `every` steps, before the step's update, on the step's own batch:

- each head's loss L_j(θ) (the components' dropout off);
- for each head i with gold in the batch: the gradient of L_i alone at the
  shared transformer's parameters θ, a lookahead step θ' = θ - η ∇L_i, every
  head's loss L_j(θ') on the same batch, and θ put back. The affinity of i
  to j is Z_i→j = 1 - L_j(θ') / L_j(θ): positive when i's step lowers j's loss;
- the cosine similarity of the heads' gradients at θ.

Each entry is the mean over the measurements whose batch held gold for both
heads. The measurement leaves training as it was: the weights are restored,
the gradients zeroed, the random states and the components' weighting state
put back, and the optimizer is never called (tests/test_affinity.py checks
the weights after training with and without it).
"""
import copy
import itertools
import random
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.language import Language
from spacy.training import Example
from thinc.api import Model
from thinc.shims import PyTorchShim

from .compat import torch_module
from .inputs import InputError, first_line
from .weighting import multitask_heads, multitask_pipes


def shared_parameters(nlp: Language) -> List[torch.Tensor]:
    """The trainable parameters of the pipeline's PyTorch encoder components
    (those other components listen to: spacy-transformers' transformer)."""
    params = []
    for _, component in nlp.pipeline:
        if getattr(component, "listeners", None) is None or not isinstance(getattr(component, "model", None), Model):
            continue
        for node in component.model.walk():
            for shim in node.shims:
                if isinstance(shim, PyTorchShim):
                    params.extend(p for p in torch_module(shim).parameters() if p.requires_grad)
    if not params:
        raise InputError("affinity needs a shared PyTorch encoder (a transformer component) in the pipeline")
    return params


class AffinityMeter:
    """Takes the measurements and keeps their running sums."""

    def __init__(self, nlp: Language, lookahead_rate: float):
        self.nlp = nlp
        self.lookahead_rate = lookahead_rate
        self.heads = [key for key, _, _ in multitask_heads(nlp)]
        if len(self.heads) < 2:
            raise InputError(f"affinity needs at least two heads; the pipeline has {self.heads or 'none'}")
        self.params = shared_parameters(nlp)
        n = len(self.heads)
        self.lookahead_sum, self.lookahead_count = numpy.zeros((n, n)), numpy.zeros((n, n), dtype=int)
        self.cosine_sum, self.cosine_count = numpy.zeros((n, n)), numpy.zeros((n, n), dtype=int)
        self.measurements = 0

    def measure(self, examples: List[Example]) -> None:
        """One measurement on a batch, leaving no trace in training."""
        with _training_state_kept(self.nlp):
            base = self._losses(examples)
            present = [i for i, key in enumerate(self.heads) if base.get(key, 0.0) > 0.0]
            gradients = {}
            for i in present:
                gradients[i] = self._head_gradient(examples, self.heads[i])
                after = self._lookahead_losses(examples, gradients[i])
                for j in present:
                    self.lookahead_sum[i, j] += 1.0 - after[self.heads[j]] / base[self.heads[j]]
                    self.lookahead_count[i, j] += 1
            for i, j in itertools.product(present, present):
                self.cosine_sum[i, j] += _cosine(gradients[i], gradients[j])
                self.cosine_count[i, j] += 1
        self.measurements += 1

    def result(self) -> Dict[str, Any]:
        return {
            "heads": self.heads,
            "lookahead": _means(self.lookahead_sum, self.lookahead_count),
            "cosine": _means(self.cosine_sum, self.cosine_count),
            "pairs_measured": self.lookahead_count.tolist(),
            "measurements": self.measurements,
            "lookahead_rate": self.lookahead_rate,
        }

    def _losses(self, examples: List[Example]) -> Dict[str, float]:
        """Each head's unweighted loss on the batch, with the components'
        dropout off (the transformer's own dropout layers act as in training)."""
        losses: Dict[str, float] = {}
        self.nlp.update(examples, drop=0.0, sgd=False, losses=losses)
        _zero_gradients(self.nlp)
        return {key: losses.get(key, 0.0) for key in self.heads}

    def _head_gradient(self, examples: List[Example], head_key: str) -> torch.Tensor:
        """The gradient of one head's loss alone at the shared parameters:
        every other head's weight set to 0 for one backward pass."""
        with _only_head(self.nlp, head_key):
            self.nlp.update(examples, drop=0.0, sgd=False)
        gradient = torch.cat([_flat_grad(p) for p in self.params])
        _zero_gradients(self.nlp)
        return gradient

    def _lookahead_losses(self, examples: List[Example], gradient: torch.Tensor) -> Dict[str, float]:
        saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            offset = 0
            for p in self.params:
                p.add_(gradient[offset : offset + p.numel()].view_as(p), alpha=-self.lookahead_rate)
                offset += p.numel()
        try:
            return self._losses(examples)
        finally:
            with torch.no_grad():
                for p, value in zip(self.params, saved):
                    p.copy_(value)


def _flat_grad(param: torch.Tensor) -> torch.Tensor:
    if param.grad is None:
        return torch.zeros(param.numel(), dtype=param.dtype, device=param.device)
    return param.grad.detach().reshape(-1).clone()


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    norms = float(a.norm() * b.norm())
    return float(a @ b) / norms if norms > 0 else 0.0


def _means(sums: numpy.ndarray, counts: numpy.ndarray) -> List[List[Optional[float]]]:
    return [[float(s / c) if c else None for s, c in zip(row_sums, row_counts)] for row_sums, row_counts in zip(sums, counts)]


class _GradientZeroer:
    """An 'optimizer' that leaves every parameter as it is and zeroes its
    gradient: finish_update with it clears what a measurement accumulated."""

    def __call__(self, key, weights, gradient, *, lr_scale: float = 1.0):
        gradient *= 0
        return weights, gradient


def _zero_gradients(nlp: Language) -> None:
    zeroer = _GradientZeroer()
    for _, component in nlp.pipeline:
        if getattr(component, "is_trainable", False) and isinstance(getattr(component, "model", None), Model):
            component.model.finish_update(zeroer)


class _only_head:
    """Within the block, every head's weight is 0 but `head_key`'s, 1."""

    def __init__(self, nlp: Language, head_key: str):
        self.heads = multitask_heads(nlp)
        self.head_key = head_key

    def __enter__(self):
        self.saved = [(pipe, head, pipe.cfg[f"{head}_weight"]) for _, pipe, head in self.heads]
        for key, pipe, head in self.heads:
            pipe.cfg[f"{head}_weight"] = 1.0 if key == self.head_key else 0.0

    def __exit__(self, *exc):
        for pipe, head, weight in self.saved:
            pipe.cfg[f"{head}_weight"] = weight


class _training_state_kept:
    """Saves what a measurement's forward and backward passes could change
    besides the weights and gradients (the random states, each component's
    weighting state and last losses), and puts it back."""

    def __init__(self, nlp: Language):
        self.nlp = nlp

    def __enter__(self):
        self.random_states = (random.getstate(), numpy.random.get_state(), torch.get_rng_state())
        self.pipes = [
            (pipe, copy.deepcopy({k: v for k, v in vars(pipe.weights).items() if k != "cfg"}),
             copy.deepcopy(getattr(pipe, "last_head_losses", None)))
            for _, pipe in multitask_pipes(self.nlp)
        ]

    def __exit__(self, *exc):
        random.setstate(self.random_states[0])
        numpy.random.set_state(self.random_states[1])
        torch.set_rng_state(self.random_states[2])
        for pipe, weight_state, last_losses in self.pipes:
            vars(pipe.weights).update(weight_state)
            if last_losses is not None:
                pipe.last_head_losses = last_losses


def best_grouping(heads: Sequence[str], affinity: List[List[Optional[float]]], n_groups: int) -> Tuple[List[List[str]], float]:
    """The partition of the heads into n_groups non-empty groups with the
    highest total affinity within groups (both directions of each pair;
    unmeasured pairs count 0), by trying every partition (Fifty et al.'s
    exhaustive search: a few thousand for eight heads)."""
    if not 1 <= n_groups <= len(heads):
        raise InputError(f"groups {n_groups}: must be between 1 and the number of heads ({len(heads)})")
    values = numpy.array([[value or 0.0 for value in row] for row in affinity])
    best, best_score = None, -numpy.inf
    for labels in _partitions(len(heads), n_groups):
        score = sum(values[i, j] for i in range(len(heads)) for j in range(len(heads)) if i != j and labels[i] == labels[j])
        if score > best_score:
            best, best_score = labels, score
    groups = [[heads[i] for i in range(len(heads)) if best[i] == g] for g in range(n_groups)]
    return groups, float(best_score)


def _partitions(n: int, k: int) -> Iterable[List[int]]:
    """Every assignment of n items to exactly k unlabelled groups (restricted
    growth strings)."""
    def grow(labels: List[int], used: int):
        if len(labels) == n:
            if used == k:
                yield list(labels)
            return
        for label in range(min(used + 1, k)):
            labels.append(label)
            yield from grow(labels, max(used, label + 1))
            labels.pop()

    yield from grow([], 0)


def train_with_affinity(
    nlp: Language, batches: Iterable[List[Example]], take_step: Callable[[List[Example]], None], *, steps: int,
    every: int, lookahead_rate: float, progress: Optional[Callable[[int], None]] = None,
) -> Dict[str, Any]:
    """`steps` training steps (take_step(batch) each), with a measurement
    before every `every`-th step's update; the affinity result."""
    meter = AffinityMeter(nlp, lookahead_rate)
    for step, batch in zip(range(steps), batches):
        if every and step % every == 0:
            meter.measure(batch)
        take_step(batch)
        if progress is not None:
            progress(step)
    return meter.result()


def check_every_head_has_gold(nlp: Language, batches: List[List[Example]]) -> None:
    """An InputError naming the heads with no gold in the batches."""
    missing = [
        key for key, pipe, head in multitask_heads(nlp)
        if not any(pipe.annotates(head, eg.reference) for batch in batches for eg in batch)
    ]
    if missing:
        raise InputError(
            f"{', '.join(missing)}: no gold in the first {len(batches)} training batches; affinity needs every "
            "head's gold in the stream (add its corpus, or leave its component out)"
        )


def affinity_from_config(
    config_path, overrides: Dict[str, Any], *, steps: int, every: int, lookahead_rate: float,
    gpu_id: int = -1, progress: Optional[Callable[[int], None]] = None, check_batches: int = 20,
) -> Dict[str, Any]:
    """Train the config's pipeline for `steps` steps as `spacy train` does
    (before_update callback, gradient accumulation, dropout, the config's
    optimizer), measuring affinity every `every` steps."""
    from spacy import require_gpu
    from spacy.schemas import ConfigSchemaTraining
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import create_train_batches, subdivide_batch
    from spacy.util import load_config, registry, resolve_dot_names
    from thinc.api import ConfigValidationError

    if gpu_id >= 0:
        require_gpu(gpu_id)
    try:
        nlp = init_nlp(load_config(config_path, overrides=overrides, interpolate=False), use_gpu=gpu_id)
        config = nlp.config.interpolate()
        T = registry.resolve(config["training"], schema=ConfigSchemaTraining)
        (train_corpus,) = resolve_dot_names(config, [T["train_corpus"]])
    except (ConfigValidationError, OSError, ValueError) as err:
        raise InputError(f"{config_path}: {_config_error(err)}") from err
    stream = (batch for _, batch in create_train_batches(nlp, train_corpus, T["batcher"], T["max_epochs"]))
    first = list(itertools.islice(stream, min(steps, check_batches)))
    check_every_head_has_gold(nlp, first)
    optimizer, before_update = T["optimizer"], T["before_update"]
    trainable = [c for _, c in nlp.pipeline if getattr(c, "is_trainable", False) and c.model not in (True, False, None)]
    step_count = itertools.count()

    def take_step(batch: List[Example]) -> None:
        if before_update is not None:
            before_update(nlp, {"step": next(step_count), "epoch": 0})
        for part in subdivide_batch(batch, T["accumulate_gradient"]):
            nlp.update(part, drop=T["dropout"], sgd=False)
        for component in trainable:
            component.finish_update(optimizer)
        optimizer.step_schedules()

    result = train_with_affinity(nlp, itertools.chain(first, stream), take_step, steps=steps, every=every,
                                 lookahead_rate=lookahead_rate, progress=progress)
    result.update({"config": str(config_path), "overrides": overrides, "steps": steps, "every": every})
    return result


def _config_error(err: Exception) -> str:
    """The first problem a config error names, on one line."""
    problems = getattr(err, "errors", None)
    if problems:
        where = " -> ".join(str(part) for part in problems[0].get("loc", []))
        return f"{getattr(err, 'title', 'config error')}: {where}: {problems[0].get('msg', '')}"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return ": ".join(lines[:2]) if lines else first_line(err)
