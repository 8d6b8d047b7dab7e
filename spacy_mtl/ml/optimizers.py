"""Optimizer wrappers shared by the components and their models."""
from thinc.api import Optimizer


class ScaledOptimizer:
    """Calls an optimizer with its learning rate scaled by a factor (thinc's
    optimizers take a per-call learning rate scale)."""

    def __init__(self, optimizer: Optimizer, lr_scale: float):
        self.optimizer = optimizer
        self.lr_scale = lr_scale

    def __call__(self, key, weights, gradient, *, lr_scale: float = 1.0):
        return self.optimizer(key, weights, gradient, lr_scale=lr_scale * self.lr_scale)
