"""Every place where spacy-mtl relies on an internal of thinc,
spacy-transformers or srsly: a private attribute, a function outside their
public API, or a replaced function. Each reliance is named here with why no
public route serves, and tests/test_compat.py checks each against the
installed versions (the bounds in setup.cfg), so that a release that changes
one fails there with a message naming it, not silently in training.
"""
import contextlib
from typing import Any, Callable, Dict, List, Optional, Tuple

import srsly
import torch
from spacy_transformers.layers.transformer_model import set_pytorch_transformer  # noqa: F401  (re-exported)
from spacy_transformers.layers.trfs2arrays import forward as trfs2arrays_forward  # noqa: F401  (re-exported)
from thinc.api import Model
from thinc.layers.pytorchwrapper import forward as pytorch_wrapper_forward  # noqa: F401  (re-exported)
from thinc.shims import PyTorchShim
from thinc.util import xp2torch

__all__ = [
    "listener_batch", "set_listener_backprop", "layer_forward", "set_layer_forward",
    "torch_module", "pytorch_wrapper_forward", "use_params_with_averages",
    "msgpack_decoders_looked_up_once", "set_pytorch_transformer", "finish_update_at_once",
    "trfs2arrays_forward",
]


# -- Listeners (spacy-transformers' TransformerListener, spaCy's Tok2VecListener)
# A listener keeps the upstream batch it received in `_outputs` and the
# callback for its gradient in `_backprop`. A component that runs its heads on
# part of a batch, or on none of it, must still backprop one gradient per doc
# to the upstream component (the last listener of a shared transformer runs
# the transformer's backward pass for every component): it reads the batch,
# and wraps the callback to measure and scale the encoder's gradient. Neither
# listener exposes them otherwise.


def listener_batch(listener: Model) -> Tuple[Optional[List], Optional[Callable]]:
    """The outputs and backprop callback a listener holds, or (None, None)."""
    return listener._outputs, listener._backprop


def set_listener_backprop(listener: Model, backprop: Callable) -> None:
    listener._backprop = backprop


# -- A layer's forward function
# thinc's Model keeps its forward function in `_func`, with no setter. The
# transformer's PyTorch wrapper is built inside spacy-transformers' builder;
# running it over groups of rows of similar length (split_by_length) wraps
# that function in place.


def layer_forward(model: Model) -> Callable:
    return model._func


def set_layer_forward(model: Model, forward: Callable) -> None:
    model._func = forward


# -- The PyTorch module inside a shim
# thinc's PyTorchShim holds its torch module in `_model`; there is no public
# accessor. Freezing, dropout per doc and the averaged weights read it.


def torch_module(shim: PyTorchShim) -> torch.nn.Module:
    return shim._model


# -- spacy_transformers.layers.transformer_model.set_pytorch_transformer
# The all-layers encoder loads its Hugging Face model as TransformerModel.v3
# does, through the function TransformerModel's init uses; the package's
# `layers` exports the model, not this function.


# -- spacy_transformers.layers.trfs2arrays.forward
# The listener that shares its pooled vectors (ml/listener.py) pools as
# spacy-transformers' listener does, through the forward function of its
# `trfs2arrays` layer; the package exports the layer's builder only, and
# the layer keeps no state, so the function alone is what it reuses.


# -- thinc.layers.pytorchwrapper.forward
# The cascade's heads are one PyTorch module behind thinc's PyTorchWrapper
# forward, in a Model of the cascade's own (its own shim, which scales the
# heads' learning rate); `thinc.api` exports the wrapper's builder only.


# -- Averaged parameters of PyTorch layers (a replaced method)
# thinc 8.3's `Model.finish_update` has the optimizer average a shim's
# parameters under `(shim.id, name)` keys, but `PyTorchShim.use_params` only
# looks for `pytorch_<id>_<name>` keys: with `use_averages = true`,
# evaluation and saving used PyTorch's last weights beside averaged thinc
# weights. spaCy calls `use_params` itself, so the method is replaced.


@contextlib.contextmanager
def use_params_with_averages(shim: PyTorchShim, params: Dict[Any, Any]):
    """`PyTorchShim.use_params` that also finds the `(shim.id, name)`
    averages. Parameters without an average (frozen ones) and buffers keep
    their values."""
    prefix = f"pytorch_{shim.id}_"
    module = torch_module(shim)
    own_names = module.state_dict().keys()
    state_dict = {}
    for key, value in params.items():
        if isinstance(key, tuple) and len(key) == 2 and key[0] == shim.id:
            name = key[1]
        elif isinstance(key, str) and key.startswith(prefix):
            name = key[len(prefix):]
        else:
            continue
        # A thinc layer's (id, name) key can share the shim's id number.
        if name in own_names:
            state_dict[name] = xp2torch(value, device=shim.device)
    if not state_dict:
        yield
        return
    backup = {name: value.clone() for name, value in module.state_dict().items()}
    module.load_state_dict(state_dict, strict=False)
    try:
        yield
    finally:
        module.load_state_dict(backup)


THINC_USE_PARAMS = PyTorchShim.use_params
PyTorchShim.use_params = use_params_with_averages


# -- One optimizer step per PyTorch module (a replaced method)
# `PyTorchShim.finish_update` calls the optimizer once per parameter,
# converting each parameter and gradient to an array and back: for MiniLM,
# 100 calls a step, each a handful of small operations. An optimizer with a
# `step_torch_module` method (spacy_mtl.FusedAdam.v1) steps all of a
# module's parameters at once; any other optimizer gets thinc's loop. The
# shim's `_grad_scaler` says whether a mixed-precision gradient overflowed
# (the step is then skipped, as thinc skips it).


def finish_update_at_once(shim: PyTorchShim, optimizer: Any) -> None:
    """`PyTorchShim.finish_update`, with a whole-module step where the
    optimizer has one."""
    step = getattr(optimizer, "step_torch_module", None)
    if step is None:
        THINC_FINISH_UPDATE(shim, optimizer)
        return
    step(shim.id, torch_module(shim), skip=shim._grad_scaler.found_inf)
    shim._grad_scaler.update()


THINC_FINISH_UPDATE = PyTorchShim.finish_update
PyTorchShim.finish_update = finish_update_at_once


# -- srsly's msgpack decoders (a method replaced for a block)
# A DocBin decodes two msgpack blobs per doc, and for each srsly looks up its
# decoders with `msgpack_decoders.get_all()`: a scan of every installed
# distribution's entry points and of every function registered with
# catalogue, most of the time of reading a corpus. No setting caches it.


@contextlib.contextmanager
def msgpack_decoders_looked_up_once():
    """Within this block, srsly's msgpack decoders are looked up once."""
    decoders = srsly.msgpack_decoders
    if "get_all" in vars(decoders):
        yield
        return
    found = decoders.get_all()
    decoders.get_all = lambda: found
    try:
        yield
    finally:
        del decoders.get_all
