import json

import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from thinc.api import CupyOps, NumpyOps, use_ops
from thinc.util import has_cupy_gpu

from spacy_mtl.convert import ConversionError, convert_relations, read_spert
from spacy_mtl.relations import Relation

from spacy_mtl.tiny_encoder import build_tiny_bert
from pipelines import TRF_MODEL, examples_for, train


def make_nlp(bert, **config):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(bert)}})
    nlp.add_pipe("ner_re", config=config)
    return nlp


@pytest.fixture(scope="module")
def trained(conll04_sample, tmp_path_factory):
    path, sentences = conll04_sample
    bert = build_tiny_bert(tmp_path_factory.mktemp("bert"), [" ".join(s["tokens"]) for s in sentences])
    nlp = make_nlp(bert)
    docs = list(read_spert(path))
    examples = examples_for(nlp, docs)
    history = train(nlp, examples, n_epochs=30)
    return nlp, examples, history, bert


def relation_rows(doc):
    return sorted((r.head.start, r.head.end, r.tail.start, r.tail.end, r.label) for r in doc._.relations)


@pytest.mark.slow
def test_it_learns_entities_and_relations(trained):
    nlp, examples, history, _ = trained
    for head in ("ner_re:entities", "ner_re:relations"):
        assert history[-1][head] < 0.3 * history[0][head]
    scores = nlp.evaluate(examples)
    assert scores["ents_f"] > 0.7
    assert scores["rel_micro_f"] > 0.5  # chance is near 0: 5 labels over every ordered pair
    recovered = [relation_rows(nlp(eg.reference.text)) == relation_rows(eg.reference) for eg in examples]
    assert sum(recovered) >= len(examples) // 2


def test_relations_survive_serialization_and_processes(trained, tmp_path):
    nlp, examples, _, _ = trained
    texts = [eg.reference.text for eg in examples[:6]]
    expected = [relation_rows(doc) for doc in nlp.pipe(texts)]
    assert any(expected)
    nlp.to_disk(tmp_path / "pipeline")
    assert [relation_rows(d) for d in spacy.load(tmp_path / "pipeline").pipe(texts)] == expected
    reloaded = make_nlp(trained[3]).from_bytes(nlp.to_bytes())
    assert [relation_rows(d) for d in reloaded.pipe(texts)] == expected
    assert [relation_rows(d) for d in nlp.pipe(texts, n_process=2, batch_size=2)] == expected
    doc_bin = DocBin(store_user_data=True, docs=nlp.pipe(texts))
    restored = DocBin().from_bytes(doc_bin.to_bytes()).get_docs(nlp.vocab)
    assert [relation_rows(d) for d in restored] == expected


def test_cli_evaluate_shows_relation_scores_per_label(trained, tmp_path):
    from typer.testing import CliRunner

    from spacy_mtl.cli import app

    nlp, examples, _, _ = trained
    nlp.to_disk(tmp_path / "pipeline")
    data, out = tmp_path / "dev.spacy", tmp_path / "scores.json"
    DocBin(docs=[eg.reference for eg in examples], store_user_data=True).to_disk(data)
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "pipeline"), str(data), "--output", str(out)])
    assert result.exit_code == 0, result.output
    per_type = json.loads(out.read_text())["scores"]["rel_per_type"]
    assert set(per_type) == {rel.label for eg in examples for rel in eg.reference._.relations}
    assert all(set(prf) == {"p", "r", "f"} for prf in per_type.values())
    assert "rel_per_type" in result.output and all(label in result.output for label in per_type)
    per_entity_type = json.loads(out.read_text())["scores"]["ents_per_type"]
    assert set(per_entity_type) >= {ent.label_ for eg in examples for ent in eg.reference.ents}
    assert "ents_per_type" in result.output


def test_relations_only_uses_given_entities(trained):
    nlp, examples, _, _ = trained
    pipe = nlp.get_pipe("ner_re")
    pipe.cfg["relations_only"] = True
    pipe.cfg["threshold"] = 0.0  # every candidate pair carries every label
    n_labels = len(pipe.relation_labels)
    try:
        for n_entities in (0, 1):
            doc = Doc(nlp.vocab, words="John Smith lives in Boston".split())
            doc.ents = [Span(doc, 0, 2, "Peop")][:n_entities]
            doc = nlp(doc)
            assert doc._.relations == [] and len(doc.ents) == n_entities
        reference = examples[0].reference
        doc = Doc(nlp.vocab, words=[t.text for t in reference])
        doc.ents = [Span(doc, e.start, e.end, e.label_) for e in reference.ents]
        doc = nlp(doc)
        given = [(e.start, e.end, e.label_) for e in reference.ents]
        assert [(e.start, e.end, e.label_) for e in doc.ents] == given
        assert len(doc._.relations) == len(pipe.candidate_pairs(given)) * n_labels > 0
        assert all((r.head.start, r.head.end, r.head.label_) in given for r in doc._.relations)
        doc = Doc(nlp.vocab, words="John Smith lives in Boston".split())
        doc.ents = [Span(doc, 0, 2, "PERSON"), Span(doc, 4, 5, "GPE")]  # types the model never saw
        pairs = nlp.get_pipe("ner_re").predict([doc])[1][0][0]
        assert len(pairs) == 2
        doc = nlp(doc)
        assert len(doc._.relations) == 2 * n_labels
        assert {(r.head.label_, r.tail.label_) for r in doc._.relations} == {("PERSON", "GPE"), ("GPE", "PERSON")}
    finally:
        pipe.cfg["relations_only"] = False
        pipe.cfg["threshold"] = 0.5


def test_distance_limit_and_overlapping_candidates(trained):
    nlp, _, _, _ = trained
    pipe = nlp.get_pipe("ner_re")
    limit = pipe.cfg["max_distance"]
    near = [(0, 1, "Peop"), (1 + limit, 2 + limit, "Loc")]  # exactly `limit` tokens between
    far = [(0, 1, "Peop"), (2 + limit, 3 + limit, "Loc")]
    assert len(pipe.candidate_pairs(near)) == 2
    assert len(pipe.candidate_pairs(far)) == 0
    overlapping = [(0, 3, "Org"), (1, 2, "Loc"), (2, 4, "Peop"), (0, 3, "Loc")]
    pairs = pipe.candidate_pairs(overlapping)
    assert len(pairs) == 10  # same-boundary spans are not paired with each other
    doc = nlp.make_doc("The Bank of Boston said")
    tokvecs, _ = pipe.model.predict([doc])
    probs = pipe._relation_probs(tokvecs, [pairs])[0]
    assert probs.shape == (10, len(pipe.relation_labels)) and numpy.isfinite(probs).all()


def test_relations_at_or_above_the_threshold_are_kept_with_their_scores(trained):
    nlp, _, _, _ = trained
    pipe = nlp.get_pipe("ner_re")
    doc = nlp.make_doc("Smith works for Acme in Boston")
    entities = [(0, 1, "Peop"), (3, 4, "Org"), (5, 6, "Loc")]
    pairs = pipe.candidate_pairs(entities)
    threshold = pipe.cfg["threshold"]
    probs = numpy.random.default_rng(0).uniform(size=(len(pairs), len(pipe.relation_labels))).astype("float32")
    probs[0, 0] = threshold  # a tie is kept
    pipe.set_annotations([doc], ([entities], [(pairs, probs)]))
    labels = {(start, end): label for start, end, label in entities}
    expected = [
        ((hs, he, labels[hs, he]), (ts, te, labels[ts, te]), label, pytest.approx(float(probs[i, j])))
        for i, (hs, he, _, ts, te, _) in enumerate(pairs.tolist())
        for j, label in enumerate(pipe.relation_labels)
        if probs[i, j] >= threshold
    ]
    found = [
        ((r.head.start, r.head.end, r.head.label_), (r.tail.start, r.tail.end, r.tail.label_), r.label, r.score)
        for r in doc._.relations
    ]
    assert 0 < len(found) < probs.size and found == expected


def test_training_pairs_are_capped_keeping_every_gold_pair(trained):
    nlp, examples, _, _ = trained
    pipe = nlp.get_pipe("ner_re")
    eg = next(eg for eg in examples if len(eg.reference.ents) >= 3)
    gold = [(e.start, e.end, e.label_) for e in eg.reference.ents]
    spurious = [(i, i + 1, pipe.entity_labels[0]) for i in range(len(eg.reference)) if all(not s <= i < e for s, e, _ in gold)]

    def rows(pairs):
        return {tuple(row) for row in pairs.tolist()}

    gold_pairs = rows(pipe.candidate_pairs(gold))
    uncapped = pipe._training_pairs(eg, spurious)
    try:
        pipe.cfg["max_training_pairs"] = len(gold_pairs) + 5
        capped = pipe._training_pairs(eg, spurious)
        pipe.cfg["max_training_pairs"] = 1
        only_gold = pipe._training_pairs(eg, spurious)
    finally:
        pipe.cfg["max_training_pairs"] = 0
    assert len(uncapped) > len(capped) == len(gold_pairs) + 5
    assert gold_pairs < rows(capped) <= rows(uncapped)
    assert rows(only_gold) == gold_pairs
    with pytest.raises(ValueError, match="max_training_pairs must be >= 0"):
        make_nlp(trained[3], max_training_pairs=-1)


def test_unseen_relation_label_carries_no_loss(trained):
    nlp, examples, _, _ = trained
    reference = examples[0].reference.copy()
    ents = list(reference.ents)
    reference._.relations = [Relation(ents[0], ents[1], "Never_Seen")]
    losses = {}
    nlp.update(examples_for(nlp, [reference]), sgd=False, losses=losses)
    assert numpy.isfinite(losses["ner_re"])
    assert "Never_Seen" not in nlp.get_pipe("ner_re").relation_labels


@pytest.mark.parametrize(
    "sentence,message",
    [
        ({"tokens": ["a", "b"], "entities": [{"type": "X", "start": 0, "end": 3}], "relations": []}, "entities[0]: span [0, 3) out of range"),
        ({"tokens": ["a", "b"], "entities": [{"type": "X", "start": 1, "end": 1}], "relations": []}, "entities[0]: empty or inverted span"),
        ({"tokens": ["a", "b"], "entities": [{"type": "X", "start": 0, "end": 1}], "relations": [{"type": "R", "head": 0, "tail": 1}]}, "relations[0].tail = 1, but the sentence has 1 entities"),
        ({"tokens": ["a", "b", "c"], "entities": [{"type": "X", "start": 0, "end": 2}, {"type": "Y", "start": 1, "end": 3}], "relations": []}, "entities[0] and entities[1] overlap"),
        ({"tokens": [], "entities": [], "relations": []}, "'tokens' must be a non-empty list"),
    ],
)
def test_converter_names_sentence_and_field(tmp_path, sentence, message):
    good = {"tokens": ["ok"], "entities": [], "relations": []}
    path = tmp_path / "data.json"
    path.write_text(json.dumps([good, sentence]))
    with pytest.raises(ConversionError) as excinfo:
        convert_relations(path, tmp_path / "out.spacy")
    assert f"{path}: sentence 2: {message}" in str(excinfo.value)
    assert not (tmp_path / "out.spacy").exists()


def test_converter_round_trip(conll04_sample, tmp_path):
    path, sentences = conll04_sample
    convert_relations(path, tmp_path / "out.spacy")
    docs = list(DocBin().from_disk(tmp_path / "out.spacy").get_docs(spacy.blank("en").vocab))
    for doc, sentence in zip(docs, sentences):
        assert [t.text for t in doc] == sentence["tokens"]
        entities = [(e["start"], e["end"], e["type"]) for e in sentence["entities"]]
        assert [(e.start, e.end, e.label_) for e in doc.ents] == sorted(entities)
        expected = sorted(
            (entities[r["head"]][:2], entities[r["tail"]][:2], r["type"]) for r in sentence["relations"]
        )
        assert sorted(((r.head.start, r.head.end), (r.tail.start, r.tail.end), r.label) for r in doc._.relations) == expected


def test_empty_and_single_token_docs(trained):
    nlp, _, _, _ = trained
    docs = list(nlp.pipe(["", "Boston", "John Smith lives in Boston ."]))
    assert [len(doc) for doc in docs] == [0, 1, 6]
    assert docs[0]._.relations == [] and docs[1]._.relations == []


LISTENER = {"@architectures": "spacy-transformers.TransformerListener.v1", "grad_factor": 1.0, "upstream": "*", "pooling": {"@layers": "reduce_mean.v1"}}


def casing_docs(vocab):
    """Pairs of sentences that differ only in the case of one word, an
    organisation when capitalized: an uncased encoder sees each pair as one."""
    docs = []
    for name in ("shell", "target", "visa", "apple", "amazon"):
        for word in (name, name.title()):
            doc = Doc(vocab, words=["Anna", "joined", word, "staff", "."])
            doc.ents = [Span(doc, 0, 1, "PER")] + ([Span(doc, 2, 3, "ORG")] if word[0].isupper() else [])
            doc._.relations = [Relation(doc.ents[0], doc.ents[1], "Work_For")] if len(doc.ents) == 2 else []
            docs.append(doc)
    return docs


@pytest.mark.slow
@pytest.mark.parametrize("casing", [False, True])
def test_casing_tells_apart_what_an_uncased_encoder_cannot(tmp_path_factory, casing):
    docs = casing_docs(spacy.blank("en").vocab)
    bert = build_tiny_bert(tmp_path_factory.mktemp("bert"), [doc.text for doc in docs])
    tok2vec = {"@architectures": "spacy_mtl.WithCasing.v1", "width": 8, "tok2vec": LISTENER} if casing else LISTENER
    nlp = make_nlp(bert, model={"tok2vec": tok2vec})
    train(nlp, examples_for(nlp, docs), n_epochs=50, learn_rate=0.01)
    predicted = [[(e.start, e.label_) for e in doc.ents] for doc in nlp.pipe([doc.text for doc in docs])]
    if casing:
        assert predicted == [[(e.start, e.label_) for e in doc.ents] for doc in docs]
    else:
        # Same input ids, same prediction: one of each pair is wrong.
        assert predicted[0::2] == predicted[1::2]


def test_casing_width_error_names_the_value():
    with pytest.raises(ValueError, match="width must be an int > 0, got 0"):
        spacy.blank("en").add_pipe("ner_re", config={"model": {"tok2vec": {"@architectures": "spacy_mtl.WithCasing.v1", "width": 0, "tok2vec": LISTENER}}})


@pytest.mark.parametrize("max_pool,distance_width", [(False, 0), (True, 0), (False, 3)])
def test_pair_features_and_gradients_match_each_doc_taken_alone(max_pool, distance_width):
    """The span pair scorer handles a batch's docs together: each pair's
    features are its spans' mean vectors (and with max_pool their elementwise
    maxes, zeros for an empty gap), type embeddings (and with distance_width
    the embedding of its order and gap length) in its own doc, and each
    span's gradient spreads evenly over its tokens (a max's goes to the token
    that gave it), in its doc only (docs without tokens or without pairs
    included)."""
    from spacy_mtl.ml.ner_re import GAP_BUCKETS, _pair_features, build_span_pair_scorer

    rng = numpy.random.default_rng(0)
    width, n_types = 4, 3
    tokvecs = [rng.normal(size=(n, width)).astype("float32") for n in (6, 0, 3, 5)]
    pairs = [
        numpy.asarray([[0, 2, 1, 4, 6, 2], [4, 6, 2, 0, 2, 1], [1, 2, 0, 2, 3, 1]], dtype="int32"),
        numpy.zeros((0, 6), dtype="int32"),
        numpy.zeros((0, 6), dtype="int32"),
        numpy.asarray([[3, 5, 2, 0, 1, 0]], dtype="int32"),
    ]
    model = build_span_pair_scorer(type_width=2, max_pool=max_pool, distance_width=distance_width, nO=2)
    model.set_dim("n_types", n_types)
    model.initialize(X=(tokvecs, pairs))
    table = model.get_param("type_embedding")
    distances = model.get_param("distance_embedding") if distance_width else numpy.zeros((0, 0), dtype="float32")
    features, backprop = _pair_features(model, tokvecs, pairs)

    n_pooled = 6 if max_pool else 3
    rows, expected_d_tokvecs, expected_d_table = [], [numpy.zeros_like(X) for X in tokvecs], numpy.zeros_like(table)
    expected_d_distances = numpy.zeros_like(distances)
    d_features = rng.normal(size=features.shape).astype("float32")
    for X, P, d_X in zip(tokvecs, pairs, expected_d_tokvecs):
        for hs, he, ht, ts, te, tt in P:
            gap = (min(he, te), max(min(he, te), max(hs, ts)))
            spans = [(hs, he), (ts, te), gap]
            pooled = [X[s:e].sum(axis=0) / max(e - s, 1) for s, e in spans]
            if max_pool:
                pooled += [X[s:e].max(axis=0) if e > s else numpy.zeros(width, dtype="float32") for s, e in spans]
            # The gap's length bucket, in the second half when the tail comes first.
            gap_length = gap[1] - gap[0]
            distance_row = sum(gap_length > bound for bound in GAP_BUCKETS) + (len(GAP_BUCKETS) + 1) * (ts < hs)
            embedded = [table[ht], table[tt]] + ([distances[distance_row]] if distance_width else [])
            rows.append(numpy.concatenate(pooled + embedded))
            d_row = d_features[len(rows) - 1]
            for k, (s, e) in enumerate(spans):
                d_X[s:e] += d_row[k * width : (k + 1) * width] / max(e - s, 1)
                if max_pool and e > s:
                    d_X[s + X[s:e].argmax(axis=0), numpy.arange(width)] += d_row[(k + 3) * width : (k + 4) * width]
            expected_d_table[ht] += d_row[n_pooled * width : n_pooled * width + 2]
            expected_d_table[tt] += d_row[n_pooled * width + 2 : n_pooled * width + 4]
            if distance_width:
                expected_d_distances[distance_row] += d_row[n_pooled * width + 4 :]
    numpy.testing.assert_allclose(features, numpy.stack(rows), rtol=1e-5, atol=1e-6)
    d_tokvecs = backprop(d_features)
    assert [d.shape for d in d_tokvecs] == [X.shape for X in tokvecs]
    for d, expected in zip(d_tokvecs, expected_d_tokvecs):
        numpy.testing.assert_allclose(d, expected, rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("type_embedding"), expected_d_table, rtol=1e-5, atol=1e-5)
    if distance_width:
        numpy.testing.assert_allclose(model.get_grad("distance_embedding"), expected_d_distances, rtol=1e-5, atol=1e-5)


def order_pairs(rng, n_docs: int):
    """Docs of 20 identical token vectors, each with pairs of one-token
    entities in both orders and at random gaps: only their order (label 1
    when the head comes first) separates them."""
    tokvecs = [numpy.ones((20, 4), dtype="float32") for _ in range(n_docs)]
    pairs, labels = [], []
    for _ in range(n_docs):
        first, second = sorted(rng.choice(20, size=2, replace=False))
        pairs.append(numpy.asarray([[first, first + 1, 1, second, second + 1, 1], [second, second + 1, 1, first, first + 1, 1]], dtype="int32"))
        labels += [[1.0], [0.0]]
    return tokvecs, pairs, numpy.asarray(labels, dtype="float32")


@pytest.mark.parametrize("distance_width", [0, 4])
def test_distance_embedding_tells_the_order_of_a_pair(distance_width):
    """Token vectors alike, the pair's span means are too: the scorer can
    separate head-first from tail-first pairs only with distance_width."""
    from thinc.api import Adam

    from spacy_mtl.ml.ner_re import build_span_pair_scorer

    rng = numpy.random.default_rng(0)
    tokvecs, pairs, labels = order_pairs(rng, 200)
    model = build_span_pair_scorer(hidden_width=8, type_width=2, distance_width=distance_width, dropout=0.0, nO=1)
    model.set_dim("n_types", 2)
    model.initialize(X=(tokvecs, pairs))
    optimizer = Adam(0.05)
    for _ in range(60):
        logits, backprop = model((tokvecs, pairs), is_train=True)
        backprop(model.ops.sigmoid(logits) - labels)
        model.finish_update(optimizer)
    test_tokvecs, test_pairs, test_labels = order_pairs(rng, 20)
    accuracy = ((model.predict((test_tokvecs, test_pairs)) > 0) == (test_labels > 0.5)).mean()
    assert accuracy == (1.0 if distance_width else 0.5)


def test_distance_embedding_survives_serialization():
    from spacy_mtl.ml.ner_re import build_span_pair_scorer

    tokvecs, pairs, _ = order_pairs(numpy.random.default_rng(0), 3)
    models = []
    for _ in range(2):
        model = build_span_pair_scorer(hidden_width=8, type_width=2, distance_width=4, nO=2)
        model.set_dim("n_types", 2)
        models.append(model.initialize(X=(tokvecs, pairs)))
    models[1].from_bytes(models[0].to_bytes())
    numpy.testing.assert_array_equal(models[1].predict((tokvecs, pairs)), models[0].predict((tokvecs, pairs)))


def test_distance_width_error_names_the_value():
    from spacy_mtl.ml.ner_re import build_span_pair_scorer

    with pytest.raises(ValueError, match="distance_width must be an int >= 0, got -1"):
        build_span_pair_scorer(distance_width=-1)


@pytest.mark.parametrize("hidden_width,max_pool,distance_width", [(0, False, 0), (8, False, 3), (8, True, 0), (8, True, 3)])
@pytest.mark.parametrize("pairs_per_doc", [2, 60])
def test_predicted_logits_are_the_trained_layers_on_the_stacked_features(hidden_width, max_pool, distance_width, pairs_per_doc):
    """At inference the first layer is applied per entity and per gap rather
    than to each pair's stacked features: the logits are the same, with few
    pairs (gap means projected) and with more pairs than tokens (the tokens
    projected), whatever the head's options."""
    from spacy_mtl.ml.ner_re import build_span_pair_scorer

    rng = numpy.random.default_rng(0)
    lengths = (9, 0, 25)
    tokvecs = [rng.normal(size=(n, 6)).astype("float32") for n in lengths]
    pairs = [_random_pairs(rng, n, pairs_per_doc if n else 0, n_types=4) for n in lengths]
    model = build_span_pair_scorer(hidden_width=hidden_width, type_width=2, max_pool=max_pool,
                                   distance_width=distance_width, dropout=0.0, nO=3)
    model.set_dim("n_types", 4)
    model.initialize(X=(tokvecs, pairs))
    predicted = model.predict((tokvecs, pairs))
    trained, _ = model((tokvecs, pairs), is_train=True)
    assert predicted.shape == (2 * pairs_per_doc, 3)
    numpy.testing.assert_allclose(predicted, trained, rtol=1e-5, atol=1e-5)
    assert model.predict((tokvecs, [p[:0] for p in pairs])).shape == (0, 3)


def test_scorer_layer_norm_at_inference_is_thincs():
    """The relation scorer's LayerNorm runs through PyTorch at inference:
    the same as thinc's LayerNorm, with trained (not initial) scale and shift."""
    from thinc.api import LayerNorm

    from spacy_mtl.ml.ner_re import _chain_leaves, _is_layer_norm, _layer_norm, build_span_pair_scorer

    rng = numpy.random.default_rng(0)
    X = rng.normal(2.0, 3.0, size=(50, 16)).astype("float32")
    layer = LayerNorm(nI=16).initialize()
    layer.set_param("G", rng.normal(size=16).astype("float32"))
    layer.set_param("b", rng.normal(size=16).astype("float32"))
    assert _is_layer_norm(layer)
    numpy.testing.assert_allclose(_layer_norm(layer, X), layer.predict(X), rtol=1e-5, atol=1e-5)
    scorer = build_span_pair_scorer(hidden_width=8, type_width=2, nO=3)
    assert any(_is_layer_norm(leaf) for leaf in _chain_leaves(scorer.get_ref("scorer")))


def _random_pairs(rng, n_tokens: int, n_pairs: int, n_types: int) -> numpy.ndarray:
    """Pairs of spans of 1 to 3 tokens anywhere in the doc, overlapping or
    not, of random types (type 0 included)."""
    starts = rng.integers(0, n_tokens, size=(n_pairs, 2))
    ends = numpy.minimum(starts + rng.integers(1, 4, size=(n_pairs, 2)), n_tokens)
    types = rng.integers(0, n_types, size=(n_pairs, 2))
    columns = (starts[:, 0], ends[:, 0], types[:, 0], starts[:, 1], ends[:, 1], types[:, 1])
    return numpy.stack(columns, axis=1).astype("int32").reshape(-1, 6)


@pytest.mark.skipif(not has_cupy_gpu, reason="needs a GPU with CuPy")
@pytest.mark.parametrize("max_pool", [False, True])
def test_pair_scorer_on_a_gpu_matches_the_cpu(max_pool):
    """Same weights and inputs: the GPU gives the CPU's logits and gradients
    (its ops run on the device, the pairs' rows are worked out on the host)."""
    from spacy_mtl.ml.ner_re import build_span_pair_scorer

    rng = numpy.random.default_rng(0)
    tokvecs = [rng.normal(size=(n, 8)).astype("float32") for n in (6, 0, 40)]
    pairs = [
        numpy.asarray([[0, 2, 1, 4, 6, 2], [4, 6, 2, 0, 2, 1]], dtype="int32"),
        numpy.zeros((0, 6), dtype="int32"),
        numpy.asarray([[0, 3, 1, 30, 33, 2], [10, 12, 1, 12, 14, 2]], dtype="int32"),
    ]
    d_logits = rng.normal(size=(4, 3)).astype("float32")
    results, cpu_params = [], None
    for ops in (NumpyOps(), CupyOps()):
        with use_ops(ops.name):
            model = build_span_pair_scorer(hidden_width=16, type_width=2, max_pool=max_pool, dropout=0.0, nO=3)
            model.set_dim("n_types", 3)
            X = ([ops.asarray2f(x) for x in tokvecs], [ops.asarray2i(p) for p in pairs])
            model.initialize(X=X)
            if cpu_params is None:
                cpu_params = [{name: node.get_param(name) for name in node.param_names} for node in model.walk()]
            for node, params in zip(model.walk(), cpu_params):
                for name, value in params.items():
                    node.set_param(name, ops.asarray(value))
            logits, backprop = model(X, is_train=True)
            d_tokvecs, _ = backprop(ops.asarray2f(d_logits))
            arrays = [model.predict(X), logits, *d_tokvecs, model.get_grad("type_embedding")]
            results.append([ops.to_numpy(a) for a in arrays])
    for cpu, gpu in zip(*results):
        numpy.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_relations_only_trains_relations_on_gold_entities(conll04_sample, tmp_path):
    """With relations_only the entities are input: the entity head gets no
    loss, and the relation head learns from pairs of gold entities."""
    path, sentences = conll04_sample
    bert = build_tiny_bert(tmp_path / "bert", [" ".join(s["tokens"]) for s in sentences])
    nlp = make_nlp(bert, relations_only=True)
    references = list(read_spert(path))
    history = train(nlp, examples_for(nlp, references), n_epochs=30)
    assert all(losses["ner_re:entities"] == 0.0 for losses in history)
    assert history[-1]["ner_re:relations"] < 0.3 * history[0]["ner_re:relations"]
    inputs = []
    for reference in references:
        doc = Doc(nlp.vocab, words=[t.text for t in reference])
        doc.ents = [Span(doc, e.start, e.end, e.label_) for e in reference.ents]
        inputs.append(doc)
    gold = {(i, *row) for i, doc in enumerate(references) for row in relation_rows(doc)}
    found = {(i, *row) for i, doc in enumerate(nlp.pipe(inputs)) for row in relation_rows(doc)}
    assert len(gold & found) > 0.8 * len(gold) and len(found - gold) < 0.2 * len(found)


def all_pairs_within(entities, max_distance):
    """candidate_pairs' pairs by the definition: every ordered pair, in order."""
    return [
        (head[0], head[1], tail[0], tail[1])
        for head in entities
        for tail in entities
        if head[:2] != tail[:2] and max(head[0], tail[0]) - min(head[1], tail[1]) <= max_distance
    ]


@pytest.mark.parametrize("seed", range(20))
def test_candidate_pairs_are_every_pair_within_reach_in_order(trained, seed):
    pipe = trained[0].get_pipe("ner_re")
    rng = numpy.random.default_rng(seed)
    entities = []
    for _ in range(int(rng.integers(0, 40))):  # overlapping, unsorted, of any length
        start = int(rng.integers(0, 400))
        entities.append((start, start + int(rng.integers(1, 12)), str(rng.choice(["Peop", "Loc", "Org"]))))
    found = pipe.candidate_pairs(entities)[:, [0, 1, 3, 4]].tolist()
    assert [tuple(row) for row in found] == all_pairs_within(entities, pipe.cfg["max_distance"])


@pytest.mark.parametrize("seed", range(10))
def test_a_batchs_candidate_pairs_are_each_docs(trained, seed):
    """Found for the whole batch at once, each doc's pairs are the ones found
    for it alone: none across docs, the same order (empty docs included)."""
    pipe = trained[0].get_pipe("ner_re")
    rng = numpy.random.default_rng(seed)
    batch = []
    for _ in range(int(rng.integers(1, 8))):
        starts = rng.integers(0, 150, size=int(rng.integers(0, 12)))
        batch.append([(int(s), int(s + rng.integers(1, 6)), str(rng.choice(["Peop", "Loc"]))) for s in starts])
    found = pipe.candidate_pairs_of_docs(batch)
    assert len(found) == len(batch)
    for entities, pairs in zip(batch, found):
        assert pairs.tolist() == pipe.candidate_pairs(entities).tolist()


def test_candidate_pairs_grow_linearly_with_the_document(trained):
    """Entities every 5 tokens: each has the same number within reach, so
    ten times the document is about ten times the pairs, not a hundred."""
    pipe = trained[0].get_pipe("ner_re")
    counts = [len(pipe.candidate_pairs([(i, i + 2, "Peop") for i in range(0, n_tokens, 5)])) for n_tokens in (1_000, 10_000)]
    assert 9.5 < counts[1] / counts[0] < 10.5


def test_a_long_documents_pairs_are_scored_in_bounded_chunks(trained, monkeypatch):
    """Beyond MAX_PAIRS_PER_CALL pairs, each call scores a bounded chunk over
    the tokens its pairs cover, with the scores of one call."""
    import spacy_mtl.pipeline.ner_re as ner_re_module

    nlp = trained[0]
    pipe = nlp.get_pipe("ner_re")
    doc = nlp.make_doc(" ".join(["John Smith works for Acme in Boston ."] * 100))
    tokvecs, _ = pipe.model.predict([doc])
    # In order of position, as the entity head decodes them.
    entities = sorted([(i, i + 2, "Peop") for i in range(0, len(doc), 8)] + [(i + 4, i + 5, "Org") for i in range(0, len(doc), 8)])
    pairs = pipe.candidate_pairs(entities)
    whole = pipe._relation_probs(tokvecs, [pairs])[0]
    calls = []
    scored_pairs = pipe._scored_pairs
    monkeypatch.setattr(pipe, "_scored_pairs", lambda vecs, chunk: calls.append((len(vecs[0]), len(chunk[0]))) or scored_pairs(vecs, chunk))
    monkeypatch.setattr(ner_re_module, "MAX_PAIRS_PER_CALL", 50)
    chunked = pipe._relation_probs(tokvecs, [pairs])[0]
    assert len(pairs) > 500 and len(calls) == -(-len(pairs) // 50)
    assert max(n_pairs for _, n_pairs in calls) <= 50
    assert max(n_tokens for n_tokens, _ in calls) < len(doc) / 4
    numpy.testing.assert_allclose(chunked, whole, atol=1e-5)


def test_row_sum_in_one_pass_is_the_sum_of_gathered_rows():
    """RowSum's one-pass sum on a CPU (embedding_bag) gives the gathered,
    weighted rows added one table at a time, dense terms included."""
    from spacy_mtl.ml.ner_re import RowSum

    rng = numpy.random.default_rng(0)
    tables = [rng.normal(size=(n, 5)).astype("float32") for n in (4, 7, 1)]
    rows = [rng.integers(0, len(table), size=30) for table in tables]
    weights = [None, rng.normal(size=30).astype("float32"), None]
    dense = rng.normal(size=(30, 5)).astype("float32")
    expected = dense + sum(t[r] * (1.0 if w is None else w[:, None]) for t, r, w in zip(tables, rows, weights))
    terms = RowSum(NumpyOps(), 30)
    for table, table_rows, table_weights in zip(tables, rows, weights):
        terms.add_rows(table, table_rows, table_weights)
    terms.add(dense)
    numpy.testing.assert_allclose(terms.total(), expected, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(terms._gathered() + dense, expected, rtol=1e-5, atol=1e-6)
    only_dense = RowSum(NumpyOps(), 30)
    only_dense.add(dense)
    numpy.testing.assert_array_equal(only_dense.total(), dense)
