"""Optimizers: a wrapper that scales the learning rate, shared by the
components and their models, and FusedAdam."""
from typing import Dict, Generator, List, Tuple, Union

import torch
from thinc.api import Optimizer, registry
from thinc.optimizers import ADAM_DEFAULTS
from thinc.util import torch2xp

from .. import compat  # noqa: F401  (PyTorch shims call FusedAdam.step_torch_module through its patch)

# A setting, or its schedule (as thinc's optimizers take them).
FloatOrSeq = Union[float, List[float], Generator]


class ScaledOptimizer:
    """Calls an optimizer with its learning rate scaled by a factor (thinc's
    optimizers take a per-call learning rate scale)."""

    def __init__(self, optimizer: Optimizer, lr_scale: float):
        self.optimizer = optimizer
        self.lr_scale = lr_scale

    def __call__(self, key, weights, gradient, *, lr_scale: float = 1.0):
        return self.optimizer(key, weights, gradient, lr_scale=lr_scale * self.lr_scale)

    @property
    def step_torch_module(self):
        """The wrapped optimizer's whole-module step, scaled (an
        AttributeError if it steps one array at a time)."""
        step = self.optimizer.step_torch_module

        def scaled_step(shim_id, module, *, lr_scale: float = 1.0, skip: bool = False):
            step(shim_id, module, lr_scale=lr_scale * self.lr_scale, skip=skip)

        return scaled_step


class FusedAdam(Optimizer):
    """thinc's Adam, with the parameters of each PyTorch module stepped
    together by PyTorch's multi-tensor (`_foreach`) operations: one step for
    the transformer's and the cascade's parameters instead of one optimizer
    call, and two array conversions, per parameter. The step is thinc's
    (per-parameter gradient clipping, L2 as weight decay or as a gradient
    term, bias-corrected Adam, parameter averages under the same keys), so it
    matches the Adam optimizer to float rounding; thinc layers' parameters
    take thinc's own step. PyTorch shims call `step_torch_module` (see
    compat.finish_update_at_once)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._moments: Dict[Tuple[int, str], Tuple[torch.Tensor, torch.Tensor]] = {}
        self._torch_averages: Dict[Tuple[int, str], torch.Tensor] = {}

    def step_torch_module(self, shim_id: int, module: torch.nn.Module, *, lr_scale: float = 1.0,
                          skip: bool = False) -> None:
        """Step every parameter of `module` that has a gradient (unless
        `skip`: an overflowed mixed-precision gradient), then zero the
        gradients, as thinc's PyTorchShim.finish_update does."""
        named = [(name, param) for name, param in module.named_parameters() if param.grad is not None]
        grads = [param.grad for _, param in named]
        with torch.no_grad():
            stepped = [(name, param) for name, param in named if param.numel() > 0]
            if stepped and not skip:
                keys = [(shim_id, name) for name, _ in stepped]
                self._step(keys, [param.data for _, param in stepped], [param.grad for _, param in stepped], lr_scale)
            if grads:
                torch._foreach_zero_(grads)

    def _step(self, keys: List, params: List[torch.Tensor], grads: List[torch.Tensor], lr_scale: float) -> None:
        for key in keys:
            self.nr_update[key] += 1
        if self.L2 != 0 and not self.L2_is_weight_decay:
            torch._foreach_add_(grads, params, alpha=self.L2)
        if self.grad_clip:
            norms = torch.stack(torch._foreach_norm(grads))
            factors = torch.where(norms >= self.grad_clip, self.grad_clip / norms, torch.ones_like(norms))
            torch._foreach_mul_(grads, list(factors.unbind()))
        mom1, mom2 = zip(*(self._moments_of(key, param) for key, param in zip(keys, params)))
        torch._foreach_mul_(mom1, self.b1)
        torch._foreach_add_(mom1, grads, alpha=1 - self.b1)
        torch._foreach_mul_(mom2, self.b2)
        torch._foreach_addcmul_(mom2, grads, grads, value=1 - self.b2)
        denominators = torch._foreach_sqrt(mom2)
        torch._foreach_add_(denominators, self.eps)
        groups = _by_update_count(keys, self.nr_update)
        for nr_upd, group in groups:
            rate = self.learn_rate * (1.0 - self.b2**nr_upd) ** 0.5 / (1.0 - self.b1**nr_upd)
            torch._foreach_addcdiv_([params[i] for i in group], [mom1[i] for i in group],
                                    [denominators[i] for i in group], value=-rate * lr_scale)
        if self.L2 != 0 and self.L2_is_weight_decay:
            torch._foreach_mul_(params, 1 - lr_scale * self.learn_rate * self.L2)
        if self.averages is not None:
            self._update_averages(keys, params, groups)

    def _moments_of(self, key, param: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if key not in self._moments:
            self._moments[key] = (torch.zeros_like(param), torch.zeros_like(param))
        return self._moments[key]

    def _update_averages(self, keys: List, params: List[torch.Tensor], groups: List[Tuple[int, List[int]]]) -> None:
        """thinc's averages: ema -= (1 - decay) * (ema - weights), decay =
        min((1 + t) / (10 + t), 0.9999), starting from zeros; kept where
        thinc keeps them (`averages[key]`, an array sharing the tensor's memory)."""
        for key, param in zip(keys, params):
            if key not in self._torch_averages:
                self._torch_averages[key] = torch.zeros_like(param)
                self.averages[key] = torch2xp(self._torch_averages[key])
        for nr_upd, group in groups:
            decay = min((1.0 + nr_upd) / (10.0 + nr_upd), 0.9999)
            torch._foreach_lerp_([self._torch_averages[keys[i]] for i in group], [params[i] for i in group],
                                 1.0 - decay)


def _by_update_count(keys: List, nr_update: Dict) -> List[Tuple[int, List[int]]]:
    """Indices of the keys grouped by their update count (the step's bias
    correction and averaging rate depend on it)."""
    groups: Dict[int, List[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(nr_update[key], []).append(index)
    return sorted(groups.items())


@registry.optimizers("spacy_mtl.FusedAdam.v1")
def create_fused_adam(
    learn_rate: FloatOrSeq = ADAM_DEFAULTS["learn_rate"],
    *,
    L2: FloatOrSeq = ADAM_DEFAULTS["L2"],
    beta1: FloatOrSeq = ADAM_DEFAULTS["beta1"],
    beta2: FloatOrSeq = ADAM_DEFAULTS["beta2"],
    eps: FloatOrSeq = ADAM_DEFAULTS["eps"],
    grad_clip: FloatOrSeq = ADAM_DEFAULTS["grad_clip"],
    L2_is_weight_decay: bool = ADAM_DEFAULTS["L2_is_weight_decay"],
    use_averages: bool = True,
) -> FusedAdam:
    """Adam.v1's settings and step; PyTorch modules' parameters stepped at once."""
    return FusedAdam(learn_rate, L2=L2, beta1=beta1, beta2=beta2, eps=eps, grad_clip=grad_clip,
                     L2_is_weight_decay=L2_is_weight_decay, use_averages=use_averages)
