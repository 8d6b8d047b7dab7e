"""A transformer listener whose token vectors are pooled once per batch at
inference, however many components listen to the transformer.

spacy-transformers' listener aligns the word pieces of every doc to its
tokens and pools them (`trfs2arrays`) in each listening component: with
three components, three times over the same transformer output. This one
keeps the last batch's pooled vectors and hands them to the next listener
that asks for the same batch with a pooling layer of the same kind."""
import threading
import weakref
from typing import List, Optional, Tuple

from spacy.tokens import Doc
from spacy.util import registry
from spacy_transformers.data_classes import TransformerData
from spacy_transformers.layers import TransformerListener
from thinc.api import Model, chain
from thinc.types import Floats2d, Ragged

from ..compat import trfs2arrays_forward


@registry.architectures("spacy_mtl.TransformerListener.v1")
def build_transformer_listener(
    pooling: Model[Ragged, Floats2d], grad_factor: float = 1.0, upstream: str = "*"
) -> Model[List[Doc], List[Floats2d]]:
    """spacy-transformers.TransformerListener.v1 (same arguments, same
    vectors) with the pooled vectors shared between listeners at inference."""
    listener = TransformerListener(upstream_name=upstream)
    return chain(listener, shared_trfs2arrays(pooling, grad_factor))


def shared_trfs2arrays(pooling: Model[Ragged, Floats2d], grad_factor: float) -> Model[List[TransformerData], List[Floats2d]]:
    return Model("trfs2arrays", _forward, layers=[pooling], attrs={"grad_factor": grad_factor})


def _forward(model: Model, trf_datas: List[TransformerData], is_train: bool):
    pooling = model.layers[0]
    # Training backpropagates through each listener's own pooling; a pooling
    # layer with weights pools differently in each component.
    if is_train or any(node.param_names for node in pooling.walk()):
        return trfs2arrays_forward(model, trf_datas, is_train)
    outputs = _SHARED.get(pooling.name, trf_datas)
    if outputs is None:
        outputs, _ = trfs2arrays_forward(model, trf_datas, is_train)
        _SHARED.put(pooling.name, trf_datas, outputs)
    return list(outputs), _no_gradient


def _no_gradient(d_outputs):
    raise ValueError("Pooled transformer vectors shared at inference have no backward pass")


class _LastBatch(threading.local):
    """The pooled vectors of the last batch seen in this thread, kept while
    its transformer outputs live (weak references: the cache never keeps a
    batch's docs or their transformer data alive)."""

    def __init__(self) -> None:
        self.key: Optional[Tuple] = None
        self.refs: List[weakref.ref] = []
        self.outputs: List[Floats2d] = []

    def get(self, pooling_name: str, trf_datas: List[TransformerData]) -> Optional[List[Floats2d]]:
        if self.key != (pooling_name, len(trf_datas)) or not trf_datas:
            return None
        if any(ref() is not trf_data for ref, trf_data in zip(self.refs, trf_datas)):
            return None
        return self.outputs

    def put(self, pooling_name: str, trf_datas: List[TransformerData], outputs: List[Floats2d]) -> None:
        self.clear()
        if not trf_datas:
            return
        self.key = (pooling_name, len(trf_datas))
        self.refs = [weakref.ref(trf_data) for trf_data in trf_datas]
        self.outputs = outputs
        # Freed with the batch: a long document's vectors must not outlive it.
        weakref.finalize(trf_datas[0], self._clear_if, self.refs[0])

    def _clear_if(self, ref: weakref.ref) -> None:
        if self.refs and self.refs[0] is ref:
            self.clear()

    def clear(self) -> None:
        self.key, self.refs, self.outputs = None, [], []


_SHARED = _LastBatch()
