"""Each internal of thinc, spacy-transformers or srsly that spacy_mtl/compat.py
relies on still behaves as it assumes, in the installed versions. A failure
names the reliance to revisit there."""
import numpy
import pytest
import spacy
import srsly
import torch
from spacy.pipeline.tok2vec import Tok2VecListener
from spacy.tokens import Doc, DocBin
from spacy_transformers.layers import TransformerListener
from thinc.api import Adam, Model, PyTorchWrapper
from thinc.shims import PyTorchShim

from pipelines import TRF_MODEL, examples_for
from spacy_mtl import compat

LISTENERS = (TransformerListener, Tok2VecListener)
TOK2VEC_LISTENER = {
    "@architectures": "spacy.Tok2VecListener.v1", "width": 96, "upstream": "*",  # the tok2vec factory's width
}


def listening_pipeline(kind: str, tiny_bert):
    nlp = spacy.blank("en")
    if kind == "transformer":
        nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(tiny_bert)}})
        nlp.add_pipe("slot_intent")
    else:
        nlp.add_pipe("tok2vec")
        nlp.add_pipe("slot_intent", config={"model": {"tok2vec": TOK2VEC_LISTENER}})
    return nlp


@pytest.mark.parametrize("kind", ["transformer", "tok2vec"])
def test_listeners_keep_their_batch_and_backprop(kind, tiny_bert, snips_docs):
    nlp = listening_pipeline(kind, tiny_bert)
    examples = examples_for(nlp, snips_docs[:4])
    nlp.initialize(lambda: examples)
    upstream = nlp.get_pipe(kind)
    upstream.update(examples)  # hands its outputs to the listeners
    listener = next(node for node in nlp.get_pipe("slot_intent").model.walk() if isinstance(node, LISTENERS))
    outputs, backprop = compat.listener_batch(listener)
    message = f"{type(listener).__name__} no longer keeps its batch in _outputs/_backprop: see listener_batch in spacy_mtl/compat.py"
    assert outputs is not None and len(outputs) == len(examples) and callable(backprop), message
    received = []
    compat.set_listener_backprop(listener, lambda d_outputs, *args, **kwargs: received.append(d_outputs))
    compat.listener_batch(listener)[1]("gradients")
    assert received == ["gradients"], message


def test_a_layers_forward_function_can_be_read_and_replaced():
    def forward(model, X, is_train):
        return X, lambda dY: dY

    model = Model("identity", forward)
    message = "thinc's Model no longer keeps its forward function in _func: see layer_forward in spacy_mtl/compat.py"
    assert compat.layer_forward(model) is forward, message
    compat.set_layer_forward(model, lambda model, X, is_train: (X * 2, lambda dY: dY * 2))
    assert model.predict(numpy.ones(3)).tolist() == [2.0, 2.0, 2.0], message


def test_a_pytorch_shim_holds_its_module():
    module = torch.nn.Linear(2, 3)
    message = "thinc's PyTorchShim no longer holds its module in _model: see torch_module in spacy_mtl/compat.py"
    assert compat.torch_module(PyTorchShim(module)) is module, message
    assert compat.torch_module(PyTorchWrapper(module).shims[0]) is module, message


def test_a_pytorch_shim_steps_through_finish_update_with_a_grad_scaler():
    """finish_update_at_once replaces PyTorchShim.finish_update and reads
    the shim's _grad_scaler; with thinc's Adam it is thinc's loop."""
    module = torch.nn.Linear(2, 3)
    shim = PyTorchShim(module)
    message = "thinc's PyTorchShim changed finish_update or _grad_scaler: see finish_update_at_once in spacy_mtl/compat.py"
    assert PyTorchShim.finish_update is compat.finish_update_at_once, message
    assert isinstance(shim._grad_scaler.found_inf, bool), message
    module.weight.grad = torch.ones_like(module.weight)
    before = module.weight.detach().clone()
    shim.finish_update(Adam(0.1))
    assert not torch.equal(module.weight.detach(), before) and not module.weight.grad.any(), message


def test_pytorch_wrapper_forward_is_the_wrappers_forward():
    module = torch.nn.Linear(2, 3)
    wrapper = PyTorchWrapper(module)
    message = "thinc.layers.pytorchwrapper.forward is no longer PyTorchWrapper's forward: see spacy_mtl/compat.py"
    assert compat.layer_forward(wrapper) is compat.pytorch_wrapper_forward, message


def test_trfs2arrays_forward_is_the_listeners_pooling_forward():
    from spacy_transformers.layers import trfs2arrays
    from thinc.api import reduce_mean

    layer = trfs2arrays(reduce_mean(), 1.0)
    message = "spacy_transformers.layers.trfs2arrays.forward is no longer its layer's forward: see spacy_mtl/compat.py"
    assert compat.layer_forward(layer) is compat.trfs2arrays_forward, message


def test_set_pytorch_transformer_takes_a_model_and_a_transformer():
    import inspect

    parameters = list(inspect.signature(compat.set_pytorch_transformer).parameters)
    assert parameters == ["model", "hf_model"], (
        f"spacy_transformers' set_pytorch_transformer now takes {parameters}: see spacy_mtl/compat.py"
    )


def averaged_wrapper():
    """A PyTorch layer with averages that differ from its weights."""
    model = PyTorchWrapper(torch.nn.Linear(2, 2))
    model.initialize()
    optimizer = Adam(0.1, use_averages=True)
    for _ in range(3):
        _, backprop = model.begin_update(model.ops.asarray2f(numpy.ones((4, 2), dtype="float32")))
        backprop(model.ops.asarray2f(numpy.ones((4, 2), dtype="float32")))
        model.finish_update(optimizer)
    return model, optimizer


def test_use_params_swaps_in_the_averages_of_pytorch_layers():
    model, optimizer = averaged_wrapper()
    module = compat.torch_module(model.shims[0])
    last = module.weight.detach().clone()
    assert PyTorchShim.use_params is compat.use_params_with_averages
    assert any(isinstance(key, tuple) and key[0] == model.shims[0].id for key in optimizer.averages), (
        "thinc's optimizer no longer averages a shim's parameters under (shim.id, name): see use_params_with_averages"
    )
    with model.use_params(optimizer.averages):
        averaged = module.weight.detach().clone()
    assert not torch.equal(averaged, last)
    assert torch.equal(module.weight, last)


def test_thincs_own_use_params_still_misses_the_averages():
    """While this holds, the replaced method is needed; when a thinc release
    fails it, the replacement in spacy_mtl/compat.py can go."""
    model, optimizer = averaged_wrapper()
    module = compat.torch_module(model.shims[0])
    last = module.weight.detach().clone()
    with compat.THINC_USE_PARAMS(model.shims[0], optimizer.averages):
        assert torch.equal(module.weight, last), "thinc's use_params now finds the averages: drop the replacement"


def test_docbins_look_up_srslys_msgpack_decoders():
    vocab = spacy.blank("en").vocab
    data = DocBin(docs=[Doc(vocab, words=["a", "b"])], store_user_data=True).to_bytes()
    calls = []
    found = srsly.msgpack_decoders.get_all()
    srsly.msgpack_decoders.get_all = lambda: calls.append(1) or found
    try:
        list(DocBin().from_bytes(data).get_docs(vocab))
    finally:
        del srsly.msgpack_decoders.get_all
    assert calls, "srsly no longer looks up msgpack decoders with msgpack_decoders.get_all: see spacy_mtl/compat.py"
    with compat.msgpack_decoders_looked_up_once():
        assert "get_all" in vars(srsly.msgpack_decoders)
        docs = list(DocBin().from_bytes(data).get_docs(vocab))
    assert "get_all" not in vars(srsly.msgpack_decoders)
    assert [t.text for t in docs[0]] == ["a", "b"]
