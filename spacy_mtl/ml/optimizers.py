"""Optimizer wrappers shared by the components and their models, and the
averaged weights of PyTorch layers."""
import contextlib

from thinc.api import Optimizer
from thinc.shims import PyTorchShim
from thinc.util import xp2torch


class ScaledOptimizer:
    """Calls an optimizer with its learning rate scaled by a factor (thinc's
    optimizers take a per-call learning rate scale)."""

    def __init__(self, optimizer: Optimizer, lr_scale: float):
        self.optimizer = optimizer
        self.lr_scale = lr_scale

    def __call__(self, key, weights, gradient, *, lr_scale: float = 1.0):
        return self.optimizer(key, weights, gradient, lr_scale=lr_scale * self.lr_scale)


@contextlib.contextmanager
def use_params_with_averages(shim: PyTorchShim, params):
    """`PyTorchShim.use_params` that finds the averages of `use_averages =
    true`. thinc 8.3's `finish_update` has the optimizer average a shim's
    parameters under `(shim.id, name)` keys, but its `use_params` only reads
    `pytorch_<id>_<name>` keys: evaluation and saving kept PyTorch's last
    weights beside averaged thinc weights. Parameters without an average
    (frozen ones) and buffers keep their values."""
    prefix = f"pytorch_{shim.id}_"
    own_names = shim._model.state_dict().keys()
    state_dict = {}
    for key, value in params.items():
        if isinstance(key, tuple) and len(key) == 2 and key[0] == shim.id:
            name = key[1]
        elif isinstance(key, str) and key.startswith(prefix):
            name = key[len(prefix) :]
        else:
            continue
        # A thinc layer's (id, name) key can share the shim's id number.
        if name in own_names:
            state_dict[name] = xp2torch(value, device=shim.device)
    if not state_dict:
        yield
        return
    backup = {name: value.clone() for name, value in shim._model.state_dict().items()}
    shim._model.load_state_dict(state_dict, strict=False)
    try:
        yield
    finally:
        shim._model.load_state_dict(backup)


PyTorchShim.use_params = use_params_with_averages
