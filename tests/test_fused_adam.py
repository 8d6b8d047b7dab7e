"""spacy_mtl.FusedAdam.v1 steps a PyTorch module's parameters at once, and
takes the step thinc's Adam takes: the same weights and averages after
several steps, with clipping, weight decay, a learning-rate scale and a
schedule; and the same pipeline after training."""
import copy

import numpy
import pytest
import torch
from spacy.util import fix_random_seed
from thinc.api import Adam, PyTorchWrapper, chain, Linear

from pipelines import encoder_weights, examples_for, make_nlp, update
from spacy_mtl.ml.optimizers import FusedAdam, ScaledOptimizer, create_fused_adam

SETTINGS = {
    "decay": {"L2": 0.01, "L2_is_weight_decay": True, "grad_clip": 0.5},
    "l2_gradient": {"L2": 0.1, "L2_is_weight_decay": False, "grad_clip": 1.0},
    "no_clipping": {"L2": 0.0, "grad_clip": 0.0},
}


def model_pair(seed: int):
    """Two identical models: a PyTorch module (with a frozen parameter)
    followed by a thinc layer."""
    torch.manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 4))
    module[1].bias.requires_grad_(False)
    models = []
    for copy_ in (module, copy.deepcopy(module)):
        model = chain(PyTorchWrapper(copy_), Linear(3, 4))
        model.initialize(X=numpy.zeros((2, 6), dtype="f"))
        models.append(model)
    models[1].layers[1].set_param("W", models[0].layers[1].get_param("W").copy())
    models[1].layers[1].set_param("b", models[0].layers[1].get_param("b").copy())
    return models


def train_step(model, optimizer, inputs, targets, lr_scale: float):
    outputs, backprop = model.begin_update(inputs)
    backprop((outputs - targets) * 5.0)
    model.finish_update(optimizer if lr_scale == 1.0 else ScaledOptimizer(optimizer, lr_scale))
    optimizer.step_schedules()


def averages_by_name(optimizer, model) -> dict:
    """The optimizer's parameter averages of the model, by layer and name
    (its keys hold the ids of the shim and of the thinc layer)."""
    shim_id, linear_id = model.layers[0].shims[0].id, model.layers[1].id
    layers = {shim_id: "torch", linear_id: "thinc"}
    return {(layers[id_], name): average for (id_, name), average in optimizer.averages.items() if id_ in layers}


def torch_parameters(model):
    return {name: param.detach().numpy().copy() for name, param in model.layers[0].shims[0]._model.named_parameters()}


@pytest.mark.parametrize("lr_scale", [1.0, 3.0])
@pytest.mark.parametrize("setting", SETTINGS)
def test_steps_match_thincs_adam(setting, lr_scale):
    reference, fused = model_pair(seed=0)
    schedule = [0.01, 0.02, 0.015, 0.005, 0.01, 0.012]
    thinc_adam = Adam(learn_rate=iter(schedule), use_averages=True, **SETTINGS[setting])
    fused_adam = create_fused_adam(learn_rate=iter(schedule), use_averages=True, **SETTINGS[setting])
    rng = numpy.random.default_rng(0)
    for _ in range(5):
        inputs = rng.normal(size=(5, 6)).astype("f")
        targets = rng.normal(size=(5, 3)).astype("f")
        train_step(reference, thinc_adam, inputs, targets, lr_scale)
        train_step(fused, fused_adam, inputs, targets, lr_scale)
        expected, found = torch_parameters(reference), torch_parameters(fused)
        assert expected.keys() == found.keys()
        for name in expected:
            numpy.testing.assert_allclose(found[name], expected[name], rtol=1e-5, atol=5e-6, err_msg=name)
        numpy.testing.assert_allclose(fused.layers[1].get_param("W"), reference.layers[1].get_param("W"), rtol=1e-5, atol=5e-6)
    expected, found = averages_by_name(thinc_adam, reference), averages_by_name(fused_adam, fused)
    assert expected.keys() == found.keys() and len(expected) == 7
    for name in expected:
        numpy.testing.assert_allclose(found[name], expected[name], rtol=1e-5, atol=5e-6, err_msg=name)
    # The frozen parameter took no step and has no average.
    assert torch_parameters(fused)["1.bias"].tolist() == torch_parameters(model_pair(seed=0)[0])["1.bias"].tolist()


def test_the_gradients_are_zeroed_and_an_overflowed_step_is_skipped():
    _, model = model_pair(seed=1)
    module = model.layers[0].shims[0]._model
    optimizer = FusedAdam(0.01)
    for param in module.parameters():
        param.grad = torch.ones_like(param)
    before = {name: param.detach().clone() for name, param in module.named_parameters()}
    optimizer.step_torch_module(7, module, skip=True)
    assert all(torch.equal(param, before[name]) for name, param in module.named_parameters())
    assert all(not param.grad.any() for param in module.parameters())
    for param in module.parameters():
        param.grad = torch.ones_like(param)
    optimizer.step_torch_module(7, module)
    assert not any(torch.equal(param, before[name]) for name, param in module.named_parameters())
    assert optimizer.nr_update[(7, "0.weight")] == 1


@pytest.mark.slow
def test_a_pipeline_trains_as_with_thincs_adam(tiny_bert, snips_docs):
    """The shared transformer after 6 steps of slot_intent training moves as
    with thinc's Adam (Adam's steps are sign-like where a gradient is near
    zero, so single weights may differ by a rounding; the whole change may
    not), and predicts the same."""
    trained, initial = [], None
    for create_optimizer in (Adam, create_fused_adam):
        fix_random_seed(0)
        nlp = make_nlp(tiny_bert)
        examples = examples_for(nlp, snips_docs[:30])
        nlp.initialize(lambda: examples)
        initial = encoder_weights(nlp)
        optimizer = create_optimizer(learn_rate=0.003)
        for step in range(6):
            update(nlp, examples[5 * step : 5 * step + 5], optimizer)
        trained.append(nlp)
    adam_change = encoder_weights(trained[0]) - initial
    difference = encoder_weights(trained[1]) - encoder_weights(trained[0])
    assert numpy.linalg.norm(difference) < 1e-3 * numpy.linalg.norm(adam_change)
    texts = [doc.text for doc in snips_docs[30:40]]
    for adam_doc, fused_doc in zip(*(list(nlp.pipe(texts)) for nlp in trained)):
        assert [(s.start, s.end, s.label_) for s in fused_doc.spans["slots"]] == [
            (s.start, s.end, s.label_) for s in adam_doc.spans["slots"]
        ]
        assert max(fused_doc.cats, key=fused_doc.cats.get) == max(adam_doc.cats, key=adam_doc.cats.get)
