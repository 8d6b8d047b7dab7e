"""The shared encoder whose dropout rate is set per doc."""
import logging

import numpy
import pytest
import spacy
import torch
from spacy.tokens import Doc, DocBin

from pipelines import TRF_MODEL, examples_for, train
from spacy_mtl.names import ENCODER_DROPOUT_KEY
from spacy_mtl.ml import encoders
from spacy_mtl.ml.encoders import DocDropout, length_groups, run_in_length_groups
from spacy_mtl.training import MultiCorpus

DOC_DROPOUT_MODEL = {
    **TRF_MODEL,
    "@architectures": "spacy_mtl.DocDropoutTransformerModel.v1",
    "transformer_config": {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
}


def make_doc_dropout_nlp(bert, with_slot_intent=True) -> spacy.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**DOC_DROPOUT_MODEL, "name": str(bert)}})
    if with_slot_intent:
        nlp.add_pipe("slot_intent")
    return nlp


def doc_vectors(nlp, docs, is_train):
    model = nlp.get_pipe("transformer").model
    output = model.begin_update(docs)[0] if is_train else model.predict(docs)
    return [data.tensors[0] for data in output.doc_data]


def dropout_layers(nlp):
    module = nlp.get_pipe("transformer").model.transformer
    return [layer for layer in module.modules() if isinstance(layer, (torch.nn.Dropout, DocDropout))]


def assert_dropout_only_where_set(nlp, words):
    docs = [Doc(nlp.vocab, words=doc_words) for doc_words in words]
    for doc in docs[1::2]:
        doc.user_data[ENCODER_DROPOUT_KEY] = 0.5
    predicted = doc_vectors(nlp, docs, is_train=False)
    trained = doc_vectors(nlp, docs, is_train=True)
    assert dropout_layers(nlp) and all(isinstance(layer, DocDropout) for layer in dropout_layers(nlp))
    for i, (without, with_training) in enumerate(zip(predicted, trained)):
        if i % 2:
            assert not numpy.allclose(without, with_training, atol=1e-4), f"doc {i} had no dropout"
        else:
            assert numpy.allclose(without, with_training, atol=1e-5), f"doc {i} had dropout"
    # Predictions never drop anything.
    for before, after in zip(predicted, doc_vectors(nlp, docs, is_train=False)):
        numpy.testing.assert_allclose(before, after)


def assert_same_predictions(nlp, loaded, words):
    for doc, loaded_doc in zip(nlp.pipe(Doc(nlp.vocab, words=w) for w in words),
                               loaded.pipe(Doc(loaded.vocab, words=w) for w in words)):
        assert doc.cats == pytest.approx(loaded_doc.cats, abs=1e-5)
        assert [(s.start, s.end, s.label_) for s in doc.spans["slots"]] == [
            (s.start, s.end, s.label_) for s in loaded_doc.spans["slots"]
        ]


def test_only_docs_with_a_rate_train_with_dropout(tiny_bert, snips_docs):
    nlp = make_doc_dropout_nlp(tiny_bert, with_slot_intent=False)
    nlp.initialize()
    assert_dropout_only_where_set(nlp, [[t.text for t in doc] for doc in snips_docs[:6]])


def test_a_pipeline_learns_through_it_and_loads_with_it(tiny_bert, snips_docs, tmp_path):
    nlp = make_doc_dropout_nlp(tiny_bert)
    examples = examples_for(nlp, snips_docs[:30])
    for eg in examples[::2]:
        eg.predicted.user_data[ENCODER_DROPOUT_KEY] = 0.2
    history = train(nlp, examples, n_epochs=12)
    assert history[-1]["slot_intent"] < 0.5 * history[0]["slot_intent"]
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    words = [[t.text for t in doc] for doc in snips_docs[30:40]]
    assert_same_predictions(nlp, loaded, words)
    # Trained further, the loaded pipeline drops per doc too.
    assert_dropout_only_where_set(loaded, words[:6])


def write_docs(path, words):
    nlp = spacy.blank("en")
    DocBin(docs=[Doc(nlp.vocab, words=[word, str(i)]) for i, word in enumerate(words)]).to_disk(path)
    return str(path)


def test_multi_corpus_gives_a_corpus_docs_its_encoder_dropout(tiny_bert, tmp_path, caplog):
    corpora = {
        "small": {"path": write_docs(tmp_path / "small.spacy", ["small"] * 5), "encoder_dropout": 0.1},
        "big": {"path": write_docs(tmp_path / "big.spacy", ["big"] * 20)},
    }
    nlp = make_doc_dropout_nlp(tiny_bert, with_slot_intent=False)
    rates = {(eg.reference[0].text, eg.predicted.user_data.get(ENCODER_DROPOUT_KEY)) for eg in MultiCorpus(corpora)(nlp)}
    assert rates == {("small", 0.1), ("big", None)}
    # Only the predicted docs carry it: the gold is untouched.
    assert all(ENCODER_DROPOUT_KEY not in eg.reference.user_data for eg in MultiCorpus(corpora)(nlp))
    with caplog.at_level(logging.WARNING, logger="spacy_mtl.training.corpus"):
        list(MultiCorpus(corpora)(spacy.blank("en")))
    assert "corpus 'small' sets encoder_dropout" in caplog.text


@pytest.mark.parametrize("rate", [1.0, -0.1, "high"])
def test_a_bad_encoder_dropout_is_named(tmp_path, rate):
    path = write_docs(tmp_path / "docs.spacy", ["a"])
    with pytest.raises(ValueError, match=f"corpus 'docs': encoder_dropout must be a number in \\[0, 1\\), got {rate!r}"):
        MultiCorpus({"docs": {"path": path, "encoder_dropout": rate}})


def test_length_groups_are_the_cheapest_runs_of_similar_length():
    lengths = numpy.array([3, 40, 3, 41, 5])
    # Free passes: every distinct length alone, shortest first.
    assert [list(rows) for rows in length_groups(lengths, 0)] == [[0, 2], [4], [1], [3]]
    # A pass costs 10 word pieces: 3, 3 and 5 share one, 40 and 41 another.
    assert [list(rows) for rows in length_groups(lengths, 10)] == [[0, 2, 4], [1, 3]]
    assert [sorted(rows) for rows in length_groups(lengths, 10**6)] == [[0, 1, 2, 3, 4]]


def make_transformer(bert, architecture, split_by_length):
    nlp = spacy.blank("en")
    model = {**DOC_DROPOUT_MODEL, "@architectures": architecture, "name": str(bert), "split_by_length": split_by_length}
    nlp.add_pipe("transformer", config={"model": model})
    return nlp


def record_pass_shapes(nlp):
    shapes = []
    nlp.get_pipe("transformer").model.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    return shapes


def real_positions(outputs):
    return [data.tensors[0][data.wordpieces.attention_mask.astype(bool)] for data in outputs.doc_data]


def run_and_backprop(model, docs):
    """The real word pieces' outputs and the transformer's gradients for a
    random d_output on every real word piece (listeners send nothing to
    padding)."""
    for param in model.transformer.parameters():
        param.grad = None
    outputs, backprop = model.begin_update(docs)
    rng = numpy.random.default_rng(0)
    backprop(outputs.unsplit_by_doc([
        [rng.normal(size=data.tensors[0].shape).astype("f") * data.wordpieces.attention_mask[..., None]]
        for data in outputs.doc_data
    ]))
    # The pooler's output reaches no listener: it has no gradient.
    gradients = {name: param.grad.clone() for name, param in model.transformer.named_parameters() if param.grad is not None}
    return real_positions(outputs), gradients


@pytest.mark.parametrize("architecture", [
    "spacy_mtl.TransformerModel.v1",
    "spacy_mtl.DocDropoutTransformerModel.v1",
    "spacy_mtl.AllLayersTransformerModel.v1",
])
def test_split_by_length_gives_the_outputs_and_gradients_of_one_batch(tiny_bert, architecture):
    nlp = make_transformer(tiny_bert, architecture, split_by_length=0)
    nlp.initialize()
    model = nlp.get_pipe("transformer").model
    # Five rows of four lengths: the long doc has two spans, "fox" and "dog"
    # are as long.
    words = [["fox"], "the quick brown fox jumps over the lazy dog".split() * 9, ["flights", "from", "boston"], ["dog"]]
    docs = [Doc(nlp.vocab, words=doc_words) for doc_words in words]
    shapes = record_pass_shapes(nlp)
    split_outputs, split_gradients = run_and_backprop(model, docs)
    split_predictions = real_positions(model.predict(docs))
    split_shapes = list(shapes)
    model.layers[0].attrs["split_by_length"] = None
    shapes.clear()
    outputs, gradients = run_and_backprop(model, docs)
    # One padded batch of all rows, against passes of one length each.
    assert len(set(shapes)) == 1 and shapes[0][0] == 5
    # A pass per length, in training and in prediction.
    assert len(split_shapes) == 8 and len({width for _, width in split_shapes}) == 4
    assert sorted(split_shapes[:4]) == sorted(split_shapes[4:]) and min(split_shapes, key=lambda shape: shape[1])[0] == 2
    assert max(width for _, width in split_shapes) == shapes[0][1]
    for split, whole in zip(split_outputs + split_predictions, outputs + real_positions(model.predict(docs))):
        numpy.testing.assert_allclose(split, whole, atol=1e-5)
    assert split_gradients.keys() == gradients.keys() and "embeddings.word_embeddings.weight" in gradients
    for name, gradient in gradients.items():
        torch.testing.assert_close(split_gradients[name], gradient, atol=1e-4, rtol=1e-4)


def test_a_long_document_runs_in_passes_of_bounded_size(tiny_bert, monkeypatch):
    nlp = make_transformer(tiny_bert, "spacy_mtl.TransformerModel.v1", split_by_length=64)
    nlp.initialize()
    model = nlp.get_pipe("transformer").model
    doc = Doc(nlp.vocab, words="the quick brown fox jumps over the lazy dog".split() * 60)
    shapes = record_pass_shapes(nlp)
    whole = real_positions(model.predict([doc]))
    assert len(shapes) == 1 and shapes[0][0] > 4  # every window in one pass
    limit = 2 * shapes[0][1]  # two windows a pass
    monkeypatch.setattr(encoders, "MAX_PASS_WORDPIECES", limit)
    shapes.clear()
    bounded = real_positions(model.predict([doc]))
    assert len(shapes) > 1 and all(rows * width <= limit for rows, width in shapes)
    numpy.testing.assert_allclose(bounded[0], whole[0], atol=1e-5)


def test_split_docs_keep_their_own_dropout_rate(tiny_bert, snips_docs):
    nlp = make_transformer(tiny_bert, "spacy_mtl.DocDropoutTransformerModel.v1", split_by_length=0)
    nlp.initialize()
    shapes = record_pass_shapes(nlp)
    words = [[t.text for t in doc] for doc in snips_docs[:6]] + [["fox"], "the lazy dog".split() * 12]
    assert_dropout_only_where_set(nlp, words)
    assert len({width for _, width in shapes}) > 2


@pytest.mark.slow
def test_a_split_pipeline_learns_and_loads_with_its_split(tiny_bert, snips_docs, tmp_path):
    nlp = make_transformer(tiny_bert, "spacy_mtl.TransformerModel.v1", split_by_length=4)
    nlp.add_pipe("slot_intent")
    history = train(nlp, examples_for(nlp, snips_docs[:30]), n_epochs=12)
    assert history[-1]["slot_intent"] < 0.5 * history[0]["slot_intent"]
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    shapes = record_pass_shapes(loaded)
    words = [[t.text for t in doc] for doc in snips_docs[30:40]]
    assert_same_predictions(nlp, loaded, words)
    assert len(shapes) > 1 and loaded.get_pipe("transformer").model.layers[0].attrs["split_by_length"] == 4


@pytest.mark.parametrize("value", [-1, 2.5])
def test_a_bad_split_by_length_is_named(tiny_bert, value):
    with pytest.raises(ValueError, match=f"split_by_length must be a whole number of word pieces >= 0, got {value!r}"):
        run_in_length_groups(make_transformer(tiny_bert, "spacy_mtl.TransformerModel.v1", None).get_pipe("transformer").model, value)


def test_all_layers_and_doc_dropout_combine_in_one_builder(tiny_bert, snips_docs):
    """TransformerModel.v1 with both settings: every layer's output, and
    dropout only in the docs that set a rate."""
    nlp = spacy.blank("en")
    config = {**DOC_DROPOUT_MODEL, "@architectures": "spacy_mtl.TransformerModel.v1", "all_layers": True, "doc_dropout": True}
    nlp.add_pipe("transformer", config={"model": {**config, "name": str(tiny_bert)}})
    nlp.initialize()
    model = nlp.get_pipe("transformer").model
    assert model.get_dim("nO") == 32 * 3  # embeddings and 2 layers, width 32
    assert_dropout_only_where_set(nlp, [[t.text for t in doc] for doc in snips_docs[:6]])
