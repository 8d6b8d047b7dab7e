import json
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.tokens import Doc

from pipelines import encoder_weights, examples_for, make_nlp, train, update

CNN_LISTENER = {"@architectures": "spacy.Tok2VecListener.v1", "width": 64, "upstream": "*"}


@pytest.fixture(scope="module")
def trained(tiny_bert, snips_docs):
    nlp = make_nlp(tiny_bert)
    examples = examples_for(nlp, snips_docs)
    history = train(nlp, examples)
    return nlp, examples, history


def predictions(nlp, texts):
    docs = list(nlp.pipe(texts))
    return [(doc.cats, [(s.start, s.end, s.label_) for s in doc.spans["slots"]]) for doc in docs]


def assert_same_predictions(a, b):
    for (cats_a, slots_a), (cats_b, slots_b) in zip(a, b):
        assert slots_a == slots_b
        assert cats_a.keys() == cats_b.keys()
        numpy.testing.assert_allclose(list(cats_a.values()), list(cats_b.values()), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_it_learns(trained):
    nlp, examples, history = trained
    for head in ("slot_intent:slots", "slot_intent:intent"):
        assert history[-1][head] < 0.25 * history[0][head]
    scores = nlp.evaluate(examples)
    # Chance is 1/7 for intents and close to 0 for exact slot spans.
    assert scores["intent_acc"] > 0.8
    assert scores["slot_f"] > 0.6
    assert scores["sent_acc"] > 0.4


def test_predictions_land_in_cats_and_spans(trained):
    nlp, examples, _ = trained
    pipe = nlp.get_pipe("slot_intent")
    doc = nlp(Doc(nlp.vocab, words=[t.text for t in examples[0].reference]))
    assert set(doc.cats) == set(pipe.intents)
    assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-4)
    assert max(doc.cats, key=doc.cats.get) == next(iter(examples[0].reference.cats))
    assert all(span.label_ in pipe.slot_labels for span in doc.spans["slots"])
    predicted = {(s.start, s.end, s.label_) for s in doc.spans["slots"]}
    gold = {(s.start, s.end, s.label_) for s in examples[0].reference.spans["slots"]}
    assert predicted & gold


def test_empty_and_pretokenized_docs(trained):
    nlp, _, _ = trained
    empty = nlp("")
    assert len(empty.spans["slots"]) == 0 and len(empty.cats) == len(nlp.get_pipe("slot_intent").intents)
    docs = list(nlp.pipe(["", "play some jazz", Doc(nlp.vocab, words=["add", "this", "song"])]))
    assert [len(doc) for doc in docs] == [0, 3, 3]


def test_to_disk_round_trip(trained, tmp_path):
    nlp, examples, _ = trained
    texts = [eg.reference.text for eg in examples[:8]]
    nlp.to_disk(tmp_path / "pipeline")
    reloaded = spacy.load(tmp_path / "pipeline")
    assert_same_predictions(predictions(nlp, texts), predictions(reloaded, texts))


@pytest.mark.slow
def test_loads_in_a_process_that_never_imports_spacy_mtl(trained, tmp_path):
    nlp, examples, _ = trained
    nlp.to_disk(tmp_path / "pipeline")
    text = examples[0].reference.text
    script = (
        "import json, sys, spacy\n"
        f"nlp = spacy.load({str(tmp_path / 'pipeline')!r})\n"
        f"doc = nlp({text!r})\n"
        "print(json.dumps([doc.cats, [[s.start, s.end, s.label_] for s in doc.spans['slots']]]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    cats, slots = json.loads(result.stdout)
    expected = predictions(nlp, [text])
    assert_same_predictions([(cats, [tuple(s) for s in slots])], expected)


def test_multiprocess_pipe_matches_single_process(trained):
    nlp, examples, _ = trained
    texts = [eg.reference.text for eg in examples[:6]]
    assert_same_predictions(predictions(nlp, texts), [
        (doc.cats, [(s.start, s.end, s.label_) for s in doc.spans["slots"]])
        for doc in nlp.pipe(texts, n_process=2, batch_size=2)
    ])


@pytest.mark.slow
def test_without_intent_feeding_and_multi_label(tiny_bert, snips_docs):
    docs = [doc.copy() for doc in snips_docs[:30]]
    for doc in docs[:10]:  # multi-intent utterances, as in ATIS
        doc.cats = {f"{next(iter(doc.cats))}#AddToPlaylist": 1.0}
    nlp = make_nlp(tiny_bert, multi_label=True, model={"intent_to_slots": False})
    history = train(nlp, examples_for(nlp, docs), n_epochs=20)
    assert history[-1]["slot_intent"] < 0.5 * history[0]["slot_intent"]
    pipe = nlp.get_pipe("slot_intent")
    assert all("#" not in intent for intent in pipe.intents)
    assert not nlp.get_pipe("slot_intent").model.has_ref("label_embedding")
    assert nlp.evaluate(examples_for(nlp, docs))["intent_acc"] > 0.5


def test_trains_on_a_cnn_tok2vec(snips_docs):
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": {"width": 64, "depth": 2}})
    nlp.add_pipe("slot_intent", config={"model": {"tok2vec": CNN_LISTENER}})
    history = train(nlp, examples_for(nlp, snips_docs), n_epochs=10, learn_rate=0.005)
    assert history[-1]["slot_intent"] < 0.5 * history[0]["slot_intent"]


def test_heads_learn_rate_scale_speeds_up_the_heads_only(tiny_bert, snips_docs):
    """One SGD step: the heads move 4x as far with heads_learn_rate_scale 4,
    the shared transformer as far as without."""
    from thinc.api import SGD, fix_random_seed

    steps = {}
    for scale in (1.0, 4.0):
        fix_random_seed(0)
        nlp = make_nlp(tiny_bert, heads_learn_rate_scale=scale)
        examples = examples_for(nlp, snips_docs[:10])
        nlp.initialize(lambda: examples)
        before = parameters(nlp)
        fix_random_seed(1)
        update(nlp, examples, SGD(0.01))
        steps[scale] = {part: after - before[part] for part, after in parameters(nlp).items()}
    assert numpy.abs(steps[1.0]["heads"]).sum() > 0
    numpy.testing.assert_allclose(steps[4.0]["heads"], 4 * steps[1.0]["heads"], rtol=1e-4, atol=1e-7)
    numpy.testing.assert_allclose(steps[4.0]["transformer"], steps[1.0]["transformer"], rtol=1e-4, atol=1e-7)


def parameters(nlp):
    """The slot_intent heads' and the transformer's parameters, flattened."""
    heads = nlp.get_pipe("slot_intent").model
    head_params = [node.get_param(name).ravel() for node in heads.walk() for name in node.param_names if node.has_param(name)]
    return {"heads": numpy.concatenate(head_params).copy(), "transformer": encoder_weights(nlp)}


def test_intent_fed_to_slots_matches_each_doc_taken_alone():
    """Every token of a doc gets its doc's embedded intent distribution
    appended; backward, each doc's tokens add up their share for its intent
    (docs without tokens included)."""
    from thinc.api import Model

    from spacy_mtl.ml.heads import build_soft_label_embedding
    from spacy_mtl.ml.slot_intent import _feed_intent

    rng = numpy.random.default_rng(0)
    embedding = build_soft_label_embedding(width=3, nI=4)
    embedding.initialize()
    model = Model("feed", lambda model, X, is_train: (X, None), refs={"label_embedding": embedding})
    model.attrs["multi_label"] = False
    tokvecs = [rng.normal(size=(n, 5)).astype("float32") for n in (2, 0, 3)]
    logits = rng.normal(size=(3, 4)).astype("float32")
    inputs, backprop = _feed_intent(model, tokvecs, logits, is_train=True)
    probs = numpy.exp(logits) / numpy.exp(logits).sum(axis=1, keepdims=True)
    intent_vecs = probs @ embedding.get_param("E")
    for doc_inputs, doc_tokvecs, doc_intent in zip(inputs, tokvecs, intent_vecs):
        assert doc_inputs.shape == (len(doc_tokvecs), 8)
        numpy.testing.assert_allclose(doc_inputs[:, :5], doc_tokvecs)
        numpy.testing.assert_allclose(doc_inputs[:, 5:], numpy.tile(doc_intent, (len(doc_tokvecs), 1)), rtol=1e-5)
    d_inputs = [rng.normal(size=x.shape).astype("float32") for x in inputs]
    d_tokvecs, d_logits = backprop(d_inputs)
    for d, d_in in zip(d_tokvecs, d_inputs):
        numpy.testing.assert_allclose(d, d_in[:, :5])
    d_probs = numpy.stack([d[:, 5:].sum(axis=0) for d in d_inputs]) @ embedding.get_param("E").T
    expected = probs * (d_probs - (d_probs * probs).sum(axis=1, keepdims=True))
    numpy.testing.assert_allclose(d_logits, expected, rtol=1e-4, atol=1e-6)
