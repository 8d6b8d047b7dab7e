"""Docs that annotate only some tasks: missing labels carry no gradient, and
the encoder still receives every gradient that is there (docs/architecture.md,
"Partial annotation" and "The last listener")."""
import numpy
import pytest
import spacy
import torch
from spacy.tokens import Doc
from thinc.api import Adam, fix_random_seed

from pipelines import TRF_MODEL, encoder_weights, examples_for, make_nlp, update
from spacy_mtl.training import LossWeighting


def encoder_change(nlp, examples, **weights) -> float:
    """How far one update on `examples` moves the shared encoder, with
    slot_intent's head weights set to `weights` if given. A fresh Adam
    without weight decay moves a weight only if it has a gradient."""
    if weights:
        nlp.get_pipe("slot_intent").cfg.update(weights)
    before = encoder_weights(nlp)
    update(nlp, examples, Adam(0.001, L2=0.0))
    return float(numpy.abs(encoder_weights(nlp) - before).sum())


def without_intent(doc):
    doc = doc.copy()
    doc.cats = {}
    return doc


def without_slots(doc):
    doc = doc.copy()
    del doc.spans["slots"]
    return doc


@pytest.fixture(scope="module")
def nlp(tiny_bert, snips_docs):
    nlp = make_nlp(tiny_bert)
    nlp.initialize(lambda: examples_for(nlp, snips_docs))
    return nlp


def test_mixed_batch_trains_both_heads(nlp, snips_docs):
    docs = [without_intent(d) for d in snips_docs[:5]] + [without_slots(d) for d in snips_docs[5:10]]
    examples = examples_for(nlp, docs)
    losses = {}
    update(nlp, examples, Adam(0.001), losses)
    assert losses["slot_intent:slots"] > 0 and losses["slot_intent:intent"] > 0
    # Each head alone moves the encoder, through the docs it has labels for.
    assert encoder_change(nlp, examples, slots_weight=1.0, intent_weight=0.0) > 0
    assert encoder_change(nlp, examples, slots_weight=0.0, intent_weight=1.0) > 0


def encoder_gradient(nlp, *parts) -> numpy.ndarray:
    """The shared encoder's gradient after one update per part, as
    `spacy train` runs them with accumulate_gradient > 1 (a copy)."""
    module = nlp.get_pipe("transformer").model.transformer
    # The transformer's own dropout is on whenever it trains.
    for layer in module.modules():
        if isinstance(layer, torch.nn.Dropout):
            layer.p = 0.0
        if hasattr(layer, "dropout_prob"):
            layer.dropout_prob = 0.0
    module.zero_grad(set_to_none=False)
    for examples in parts:
        nlp.update(examples, sgd=False, drop=0.0)
    # (The pooler takes no part in any loss: it has no gradient.)
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in module.parameters()]
    return numpy.concatenate([g.detach().cpu().numpy().ravel() for g in grads])


def test_accumulated_parts_add_their_encoder_gradients(tiny_bert, snips_docs):
    """A batch cut into parts (one with slots only, one with intents only):
    the encoder's gradient is the sum of the parts' gradients, so the one
    optimizer step that follows carries every task of the batch."""
    nlp = make_nlp(tiny_bert)
    nlp.initialize(lambda: examples_for(nlp, snips_docs))
    slots_only = examples_for(nlp, [without_intent(d) for d in snips_docs[:5]])
    intents_only = examples_for(nlp, [without_slots(d) for d in snips_docs[5:10]])
    from_slots = encoder_gradient(nlp, slots_only)
    from_intents = encoder_gradient(nlp, intents_only)
    both = encoder_gradient(nlp, slots_only, intents_only)
    assert numpy.abs(from_slots).sum() > 0 and numpy.abs(from_intents).sum() > 0
    numpy.testing.assert_allclose(both, from_slots + from_intents, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("strip,head_weights", [
    (without_intent, {"slots_weight": 0.0, "intent_weight": 1.0}),
    (without_slots, {"slots_weight": 1.0, "intent_weight": 0.0}),
])
def test_missing_labels_are_not_negatives(nlp, snips_docs, strip, head_weights):
    examples = examples_for(nlp, [strip(d) for d in snips_docs[:6]])
    # Only the head whose labels are missing is weighted: no gradient at all.
    assert encoder_change(nlp, examples, **head_weights) == 0.0
    assert encoder_change(nlp, examples, slots_weight=1.0, intent_weight=1.0) > 0


@pytest.mark.parametrize("strip,observed", [(without_intent, {"slots"}), (without_slots, {"intent"})])
def test_loss_weighting_observes_only_heads_with_gold(nlp, snips_docs, strip, observed):
    """A batch without a head's labels is no observation of its loss: were
    it taken as a loss of 0, uncertainty weighting would shrink the weight
    of every task on each batch that lacks it."""
    pipe = nlp.get_pipe("slot_intent")
    configured = dict(pipe.cfg)
    weighting = LossWeighting("uncertainty", learn_rate=0.1)
    update(nlp, examples_for(nlp, snips_docs[:6]), Adam(0.001))
    weighting(nlp, {"step": 0, "epoch": 0})
    before = dict(pipe.cfg)
    update(nlp, examples_for(nlp, [strip(d) for d in snips_docs[6:12]]), Adam(0.001))
    assert set(pipe.last_head_losses) == observed
    weighting(nlp, {"step": 1, "epoch": 0})
    moved = {head for head in ("slots", "intent") if pipe.cfg[f"{head}_weight"] != before[f"{head}_weight"]}
    pipe.cfg.update(configured)  # the module's other tests use the configured weights
    assert moved == observed


def tagged(docs):
    docs = [doc.copy() for doc in docs]
    for doc in docs:
        for token in doc:
            token.tag_ = "SHORT" if len(token.text) <= 3 else "LONG"
    return docs


@pytest.fixture(scope="module")
def last_listener_cases(snips_docs, conll04_sample, cascade_docs):
    """Per component: its config, and docs to initialize it on."""
    from spacy_mtl.convert import read_spert

    cascade = {"levels": ["chunk", "dep"], "inputs": {"chunk": [], "dep": ["chunk"]}}
    return {
        "slot_intent": ({}, snips_docs[:10]),
        "ner_re": ({}, list(read_spert(conll04_sample[0]))[:10]),
        "cascade": (cascade, cascade_docs[:5] + cascade_docs[20:25]),
    }


@pytest.mark.parametrize("name,annotated", [
    ("slot_intent", {"slots", "intent"}), ("ner_re", {"entities", "relations"}), ("cascade", {"chunk", "dep"}),
])
def test_heads_report_losses_only_for_batches_with_their_gold(tiny_bert, last_listener_cases, name, annotated):
    config, init_docs = last_listener_cases[name]
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(tiny_bert)}})
    pipe = nlp.add_pipe(name, config={"model": config} if config else {})
    nlp.initialize(lambda: examples_for(nlp, init_docs))
    update(nlp, examples_for(nlp, init_docs), Adam(0.001))
    assert set(pipe.last_head_losses) == annotated
    assert pipe.weights.last_encoder_gradient_norm > 0
    words_only = [Doc(nlp.vocab, words=[t.text for t in d]) for d in init_docs]
    update(nlp, examples_for(nlp, words_only), Adam(0.001))
    assert pipe.last_head_losses == {}
    assert pipe.weights.last_encoder_gradient_norm is None  # a zero gradient is no observation


@pytest.mark.parametrize("last", ["slot_intent", "ner_re", "cascade"])
def test_last_listener_backprops_on_a_batch_without_its_labels(tiny_bert, last_listener_cases, last):
    """A tagger listens to the same transformer before the component. On a
    batch with tags only, the tagger's gradient reaches the encoder only if
    the component (the last listener) still runs its backward pass."""
    config, init_docs = last_listener_cases[last]
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(tiny_bert)}})
    nlp.add_pipe("tagger", config={"model": {"tok2vec": {
        "@architectures": "spacy-transformers.TransformerListener.v1",
        "grad_factor": 1.0,
        "pooling": {"@layers": "reduce_mean.v1"},
    }}})
    nlp.add_pipe(last, config={"model": config} if config else {})
    docs = tagged(init_docs)
    nlp.initialize(lambda: examples_for(nlp, docs))
    tags_only = examples_for(nlp, [Doc(nlp.vocab, words=[t.text for t in d], tags=[t.tag_ for t in d]) for d in docs])
    # The tagger's output layer starts at zero, so its first step sends no
    # gradient down; measure the second.
    update(nlp, tags_only, Adam(0.001))
    assert encoder_change(nlp, tags_only) > 0


def own_gradient(pipe) -> numpy.ndarray:
    """The gradients of a component's own parameters (a copy): thinc
    parameters, and those of PyTorch modules it wraps."""
    grads = [node.get_grad(name).ravel() for node in pipe.model.walk() for name in node.param_names if node.has_grad(name)]
    for node in pipe.model.walk():
        for shim in node.shims:
            grads += [p.grad.detach().cpu().numpy().ravel() for p in shim._model.parameters() if p.grad is not None]
    return numpy.concatenate(grads)


def clear_gradients(pipe) -> None:
    for node in pipe.model.walk():
        for shim in node.shims:
            shim._model.zero_grad(set_to_none=True)
        for param in node.param_names:
            if node.has_grad(param):
                node.set_grad(param, node.ops.alloc(node.get_grad(param).shape))


def assert_only_the_encoder_gradient_is_scaled(results) -> None:
    """results: scale -> (encoder gradient, heads' gradient, recorded norm)."""
    (encoder, heads, norm), (scaled_encoder, scaled_heads, scaled_norm) = results[1.0], results[2.5]
    assert numpy.abs(encoder).sum() > 0 and norm > 0
    # (Threaded float32 sums: a few entries differ in the 4th digit.)
    numpy.testing.assert_allclose(scaled_encoder, 2.5 * encoder, rtol=1e-3, atol=1e-6)
    numpy.testing.assert_allclose(scaled_heads, heads, rtol=1e-4, atol=1e-7)
    assert scaled_norm == pytest.approx(norm, rel=1e-5)


def updated_once(tiny_bert, last_listener_cases, name):
    """A transformer and the component, initialized and updated once (its
    zero-initialized layers get weights); the examples it was updated on.
    Seeded: the comparisons of float32 gradients then see the same weights
    in every run."""
    fix_random_seed(0)
    config, init_docs = last_listener_cases[name]
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(tiny_bert)}})
    pipe = nlp.add_pipe(name, config={"model": config} if config else {})
    nlp.initialize(lambda: examples_for(nlp, init_docs))
    examples = examples_for(nlp, init_docs)
    update(nlp, examples, Adam(0.001))
    return nlp, pipe, examples


def gradients_of(nlp, pipe, examples):
    """The encoder's and the component's own gradients from one update."""
    clear_gradients(pipe)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        encoder = encoder_gradient(nlp, examples)
    return encoder, own_gradient(pipe)


@pytest.mark.parametrize("name", ["slot_intent", "ner_re", "cascade"])
def test_encoder_gradient_scale_reaches_the_encoder_only(tiny_bert, last_listener_cases, name):
    """gradnorm's scale multiplies what a component sends to the encoder
    (docs/architecture.md, "Loss weights"), not its heads' gradients; the recorded norm is the
    one before scaling."""
    nlp, pipe, examples = updated_once(tiny_bert, last_listener_cases, name)
    results = {}
    for scale in (1.0, 2.5):
        pipe.weights.encoder_gradient_scale = scale
        encoder, heads = gradients_of(nlp, pipe, examples)
        results[scale] = (encoder, heads, pipe.weights.last_encoder_gradient_norm)
    assert_only_the_encoder_gradient_is_scaled(results)


@pytest.mark.parametrize("name", ["slot_intent", "ner_re", "cascade"])
def test_weigh_docs_equally_scales_a_batch_by_its_docs_with_gold(tiny_bert, last_listener_cases, name):
    """After a batch with 10 docs of gold, a batch with 2 pulls the encoder
    and the heads with 2 over the running mean of docs per batch (decay
    0.99, bias-corrected) times its pull without the option."""
    nlp, pipe, examples = updated_once(tiny_bert, last_listener_cases, name)
    few = examples[:2]
    scales = set()
    for head in pipe.head_names:
        n_many = sum(pipe.annotates(head, eg.reference) for eg in examples)
        n_few = sum(pipe.annotates(head, eg.reference) for eg in few)
        if n_few:
            mean = (0.99 * 0.01 * n_many + 0.01 * n_few) / (1 - 0.99**2)
            scales.add(round(n_few / mean, 6))
    # Every head with gold in the 2 docs has the same scale, so the whole
    # gradient takes it.
    (expected,) = scales
    assert expected < 0.75
    encoder, heads = gradients_of(nlp, pipe, few)
    pipe.cfg["weigh_docs_equally"] = True
    gradients_of(nlp, pipe, examples)
    scaled_encoder, scaled_heads = gradients_of(nlp, pipe, few)
    assert numpy.abs(encoder).sum() > 0
    numpy.testing.assert_allclose(scaled_encoder, expected * encoder, rtol=1e-3, atol=1e-6)
    numpy.testing.assert_allclose(scaled_heads, expected * heads, rtol=1e-3, atol=1e-7)


def test_encoder_gradient_scale_reaches_a_tok2vec_encoder(snips_docs):
    from test_slot_intent import CNN_LISTENER

    nlp = spacy.blank("en")
    tok2vec = nlp.add_pipe("tok2vec", config={"model": {"width": 64, "depth": 2}})
    pipe = nlp.add_pipe("slot_intent", config={"model": {"tok2vec": CNN_LISTENER}})
    examples = examples_for(nlp, snips_docs[:10])
    nlp.initialize(lambda: examples)
    update(nlp, examples, Adam(0.001))
    results = {}
    for scale in (1.0, 2.5):
        pipe.weights.encoder_gradient_scale = scale
        clear_gradients(tok2vec)
        clear_gradients(pipe)
        nlp.update(examples, sgd=False, drop=0.0)
        results[scale] = (own_gradient(tok2vec), own_gradient(pipe), pipe.weights.last_encoder_gradient_norm)
    assert_only_the_encoder_gradient_is_scaled(results)


def test_gradnorm_sets_each_components_scale_from_batches_with_its_gold():
    nlp = spacy.blank("en")
    slot_intent, ner_re = nlp.add_pipe("slot_intent"), nlp.add_pipe("ner_re")
    weighting = LossWeighting("gradnorm", norm_decay=0.0)
    slot_intent.last_head_losses, slot_intent.weights.last_encoder_gradient_norm = {"slots": 1.0}, 1.0
    ner_re.last_head_losses, ner_re.weights.last_encoder_gradient_norm = {"relations": 1.0}, 4.0
    weighting(nlp, {"step": 0, "epoch": 0})
    assert (slot_intent.weights.encoder_gradient_scale, ner_re.weights.encoder_gradient_scale) == pytest.approx((2.0, 0.5))
    # A batch without ner_re's gold (its zero gradient) is no observation.
    ner_re.last_head_losses, ner_re.weights.last_encoder_gradient_norm = {}, 0.0
    weighting(nlp, {"step": 1, "epoch": 0})
    assert (slot_intent.weights.encoder_gradient_scale, ner_re.weights.encoder_gradient_scale) == pytest.approx((2.0, 0.5))


@pytest.fixture(scope="module")
def mixed_nlp_and_docs(tiny_bert, snips_docs, conll04_sample, cascade_docs):
    """One transformer under the three components, without dropout, and a
    batch of docs from their three corpora."""
    from spacy_mtl.convert import read_spert

    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(tiny_bert)}})
    nlp.add_pipe("slot_intent")
    nlp.add_pipe("ner_re")
    nlp.add_pipe("cascade", config={"model": {
        "levels": ["chunk", "dep"], "inputs": {"chunk": [], "dep": ["chunk"]}, "dropout": 0.0,
    }})
    docs = snips_docs[:4] + list(read_spert(conll04_sample[0]))[:4] + cascade_docs[:3] + cascade_docs[20:23]
    nlp.initialize(lambda: examples_for(nlp, docs))
    update(nlp, examples_for(nlp, docs), Adam(0.001))  # zero-initialized layers get weights
    return nlp, docs


def gradients_of_one_update(nlp, examples) -> dict:
    """The encoder's and each component's gradient from one update (copies)."""
    components = [name for name in ("slot_intent", "ner_re", "cascade") if name in nlp.pipe_names]
    encoder = nlp.get_pipe("tok2vec") if "tok2vec" in nlp.pipe_names else None
    for name in components:
        clear_gradients(nlp.get_pipe(name))
    if encoder is None:
        gradients = {"encoder": encoder_gradient(nlp, examples)}
    else:
        clear_gradients(encoder)
        nlp.update(examples, sgd=False, drop=0.0)
        gradients = {"encoder": own_gradient(encoder)}
    gradients.update((name, own_gradient(nlp.get_pipe(name))) for name in components)
    return gradients


def narrowed_and_every_doc(nlp, examples, monkeypatch):
    """Gradients of one update as components take it (the heads see the docs
    with their gold), then with the heads run over every doc; and the number
    of docs each component's heads saw, each time."""
    from spacy_mtl.pipeline.base import MultiTaskPipe

    seen = {}
    for name, pipe in nlp.pipeline:
        if isinstance(pipe, MultiTaskPipe):
            def counting_model_inputs(examples, name=name, model_inputs=pipe.model_inputs):
                seen[name] = len(examples)
                return model_inputs(examples)

            monkeypatch.setattr(pipe, "model_inputs", counting_model_inputs)
    narrowed = (gradients_of_one_update(nlp, examples), dict(seen))
    monkeypatch.setattr(MultiTaskPipe, "_examples_with_gold", lambda pipe, examples: list(range(len(examples))))
    every_doc = (gradients_of_one_update(nlp, examples), dict(seen))
    return narrowed, every_doc


def assert_same_gradients(narrowed: dict, every_doc: dict) -> None:
    for part, gradient in every_doc.items():
        assert numpy.abs(gradient).sum() > 0, part
        numpy.testing.assert_allclose(narrowed[part], gradient, rtol=1e-3, atol=1e-6, err_msg=part)


def test_heads_skip_docs_without_their_gold_and_get_the_same_gradients(mixed_nlp_and_docs, monkeypatch):
    """Each component runs its heads only over the docs that annotate one of
    them; the other docs' zero gradients are filled in. The encoder's and
    every head's gradient equal those of running the heads over every doc.
    The empty doc has no transformer output and no gradient entry; spaCy
    counts it as annotated for entities and trees, so two components keep it."""
    nlp, docs = mixed_nlp_and_docs
    examples = examples_for(nlp, docs[:6] + [Doc(nlp.vocab, words=[])] + docs[6:])
    (narrowed, seen), (every_doc, seen_every_doc) = narrowed_and_every_doc(nlp, examples, monkeypatch)
    assert seen == {"slot_intent": 4, "ner_re": 5, "cascade": 7}
    assert seen_every_doc == {"slot_intent": 15, "ner_re": 15, "cascade": 15}
    assert_same_gradients(narrowed, every_doc)


def test_heads_skip_docs_without_their_gold_under_a_tok2vec(snips_docs, monkeypatch):
    from test_slot_intent import CNN_LISTENER

    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": {"width": 64, "depth": 2}})
    nlp.add_pipe("slot_intent", config={"model": {"tok2vec": CNN_LISTENER}})
    nlp.initialize(lambda: examples_for(nlp, snips_docs[:10]))
    words_only = [Doc(nlp.vocab, words=[t.text for t in doc]) for doc in snips_docs[10:13]]
    examples = examples_for(nlp, snips_docs[:3] + words_only + [Doc(nlp.vocab, words=[])] + snips_docs[3:6])
    update(nlp, examples, Adam(0.001))  # zero-initialized layers get weights
    (narrowed, seen), (every_doc, _) = narrowed_and_every_doc(nlp, examples, monkeypatch)
    assert seen == {"slot_intent": 6}
    assert_same_gradients(narrowed, every_doc)
