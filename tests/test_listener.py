"""The shared-pooling transformer listener: the vectors of spacy-transformers'
listener, pooled once per batch at inference for every listener."""
import gc

import numpy
import pytest
import spacy
from thinc.api import chain, reduce_mean
from thinc.layers import Linear

from pipelines import TRF_MODEL
from spacy_mtl.ml import listener as shared

STOCK_LISTENER = "spacy-transformers.TransformerListener.v1"
SHARED_LISTENER = "spacy_mtl.TransformerListener.v1"
TEXTS = ["Book a table for two in Boston tonight", "", "Acme Corp hired John Smith .", "play some jazz"]


@pytest.fixture()
def annotated(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(tiny_bert)}})
    nlp.initialize()
    return nlp, list(nlp.pipe(TEXTS))


def listener(architecture: str, docs):
    """A listener, sized as the transformer component sizes its listeners."""
    model = spacy.registry.resolve({"model": {"@architectures": architecture, "pooling": {"@layers": "reduce_mean.v1"}}})["model"]
    model.layers[0].set_dim("nO", docs[0]._.trf_data.width)
    return model


def stock_vectors(docs):
    return listener(STOCK_LISTENER, docs).predict(docs)


def test_listeners_share_the_vectors_of_a_batch(annotated):
    _, docs = annotated
    first, second = listener(SHARED_LISTENER, docs), listener(SHARED_LISTENER, docs)
    vectors, again = first.predict(docs), second.predict(docs)
    assert all(a is b for a, b in zip(vectors, again))
    for ours, theirs in zip(vectors, stock_vectors(docs)):
        numpy.testing.assert_array_equal(ours, theirs)
    # Another batch is pooled anew.
    fewer = second.predict(docs[:2])
    assert len(fewer) == 2 and fewer[0] is not vectors[0]
    numpy.testing.assert_array_equal(fewer[0], vectors[0])


def test_pooling_with_weights_is_not_shared(annotated):
    _, docs = annotated
    width = docs[0]._.trf_data.width
    poolings = []
    for layer in (listener(SHARED_LISTENER, docs), listener(SHARED_LISTENER, docs)):
        pooling = chain(reduce_mean(), Linear(width, width))
        pooling.initialize()
        layer.layers[1].layers[0] = pooling
        poolings.append(layer)
    first, second = (layer.predict(docs) for layer in poolings)
    assert not numpy.allclose(first[0], second[0])


def test_the_cache_does_not_keep_a_batch_alive(annotated):
    nlp, _ = annotated
    docs = list(nlp.pipe(TEXTS))
    first = listener(SHARED_LISTENER, docs)
    first.predict(docs)
    assert shared._SHARED.outputs
    del docs
    gc.collect()
    assert not shared._SHARED.outputs


def test_training_runs_each_listener_own_pooling(annotated):
    _, docs = annotated
    # With no batch received from the transformer, a listener reads doc._.trf_data.
    first, second = listener(SHARED_LISTENER, docs), listener(SHARED_LISTENER, docs)
    (vectors, _), (again, _) = first.begin_update(docs), second.begin_update(docs)
    assert vectors[0] is not again[0]
    numpy.testing.assert_array_equal(vectors[0], again[0])


def test_all_in_one_outputs_equal_the_stock_listener(all_in_one_path):
    texts = ["John Smith , who works for Acme Corp , played some jazz in Boston .", "book a flight to denver", ""]
    nlp = spacy.load(all_in_one_path)
    names = ("slot_intent", "ner_re", "cascade")
    assert {nlp.config["components"][name]["model"]["tok2vec"]["@architectures"] for name in names} == {SHARED_LISTENER}
    overrides = {f"components.{name}.model.tok2vec.@architectures": STOCK_LISTENER for name in names}
    stock = spacy.load(all_in_one_path, config=overrides)
    ours = [outputs_of(doc) for doc in nlp.pipe(texts * 3, batch_size=4)]
    assert ours == [outputs_of(doc) for doc in stock.pipe(texts * 3, batch_size=4)]
    assert any(doc["ents"] for doc, _ in ours) and any(doc["cats"] for doc, _ in ours)


def outputs_of(doc):
    relations = [(r.head.start, r.tail.start, r.label, r.score) for r in doc._.relations]
    return doc.to_json(), relations
