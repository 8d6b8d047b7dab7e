"""Small pipelines for the tests: a tiny transformer and slot_intent; and
the project's scripts, loaded as modules."""
import importlib.util
from pathlib import Path
from typing import List

import numpy
import spacy
from spacy.tokens import Doc
from spacy.training import Example

TRF_MODEL = {
    "@architectures": "spacy-transformers.TransformerModel.v3",
    "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 64, "stride": 48},
    "tokenizer_config": {"use_fast": True},
}


def make_nlp(tiny_bert: Path, **slot_intent_config) -> spacy.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(tiny_bert)}})
    nlp.add_pipe("slot_intent", config=slot_intent_config)
    return nlp


def examples_for(nlp, docs) -> List[Example]:
    return [Example(Doc(nlp.vocab, words=[t.text for t in doc]), doc) for doc in docs]


def update(nlp, examples, optimizer, losses=None):
    """One step as `spacy train` takes it: every component's update first,
    then every optimizer step. (nlp.update(sgd=...) steps the transformer
    before the listeners have backpropagated into it.)"""
    nlp.update(examples, sgd=False, losses=losses, drop=0.0)
    for _, component in nlp.pipeline:
        if getattr(component, "is_trainable", False) and component.model not in (True, False, None):
            component.finish_update(optimizer)


def train(nlp, examples, n_epochs=25, learn_rate=0.003):
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = learn_rate
    history = []
    for _ in range(n_epochs):
        losses = {}
        for i in range(0, len(examples), 10):
            update(nlp, examples[i : i + 10], optimizer, losses)
        history.append(losses)
    return history


def component_weights(component) -> List[numpy.ndarray]:
    """Every parameter of a component, thinc's and PyTorch's, as copies on
    the host (from a GPU too)."""
    arrays = []
    for node in component.model.walk():
        arrays += [node.ops.to_numpy(node.get_param(name)).copy() for name in node.param_names if node.has_param(name)]
        for shim in node.shims:
            arrays += [p.detach().cpu().numpy().copy() for p in shim._model.parameters()]
    return arrays


def encoder_weights(nlp) -> numpy.ndarray:
    """The shared transformer's parameters, flattened (a copy)."""
    module = nlp.get_pipe("transformer").model.transformer
    return numpy.concatenate([p.detach().cpu().numpy().ravel() for p in module.parameters()])


def load_project_script(name: str):
    """A script of project/scripts as a module, to test its functions."""
    path = Path(__file__).parents[1] / "project" / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def outputs_without(nlp, name: str, texts: List[str], folder: Path) -> List[dict]:
    """The pipeline's outputs (Doc.to_json) on the texts, checked to be the
    same after a save and load round trip and after removing component `name`."""
    outputs = [doc.to_json() for doc in nlp.pipe(texts)]
    nlp.to_disk(folder / "model")
    assert [doc.to_json() for doc in spacy.load(folder / "model").pipe(texts)] == outputs
    nlp.remove_pipe(name)
    assert [doc.to_json() for doc in nlp.pipe(texts)] == outputs
    return outputs
