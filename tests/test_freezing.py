"""spacy_mtl.freeze_parameters.v1: frozen encoder parameters stay as they
were while the rest of the encoder and the heads train."""
import numpy
import pytest
from spacy.tokens import DocBin

from spacy_mtl.training import create_freeze_parameters

from pipelines import examples_for, make_nlp, update


def named_weights(nlp):
    module = nlp.get_pipe("transformer").model.transformer
    return {name: param.detach().cpu().numpy().copy() for name, param in module.named_parameters()}


def test_frozen_parameters_do_not_move_and_the_rest_trains(tiny_bert, snips_docs):
    nlp = make_nlp(tiny_bert)
    examples = examples_for(nlp, snips_docs[:20])
    optimizer = nlp.initialize(lambda: examples)
    create_freeze_parameters("transformer", ["word_embeddings"])(nlp)
    before = named_weights(nlp)
    for start in range(0, 20, 5):
        update(nlp, examples[start : start + 5], optimizer)
    after = named_weights(nlp)
    frozen = [name for name in before if "word_embeddings" in name]
    assert frozen == ["embeddings.word_embeddings.weight"]
    assert numpy.array_equal(before[frozen[0]], after[frozen[0]])
    moved = [name for name in before if not numpy.array_equal(before[name], after[name])]
    assert "embeddings.position_embeddings.weight" in moved
    assert any(name.startswith("encoder.layer.") for name in moved)


def test_freezing_from_the_initialize_block(tiny_bert, snips_docs, tmp_path):
    from spacy.training.initialize import init_nlp

    corpus_path = tmp_path / "train.spacy"
    DocBin(docs=snips_docs[:8]).to_disk(corpus_path)
    config = make_nlp(tiny_bert).config.copy()
    config["initialize"]["after_init"] = {
        "@callbacks": "spacy_mtl.freeze_parameters.v1",
        "patterns": ["word_embeddings", r"encoder\.layer\.0\."],
    }
    reader = {"@readers": "spacy.Corpus.v1", "path": str(corpus_path)}
    config["corpora"] = {"train": reader, "dev": reader}
    trained = init_nlp(config)
    module = trained.get_pipe("transformer").model.transformer
    frozen = {name for name, param in module.named_parameters() if not param.requires_grad}
    assert "embeddings.word_embeddings.weight" in frozen
    assert all(name.startswith("encoder.layer.0.") for name in frozen - {"embeddings.word_embeddings.weight"})
    assert len(frozen) > 1


def test_a_pattern_that_matches_nothing_is_named(tiny_bert, snips_docs):
    nlp = make_nlp(tiny_bert)
    examples = examples_for(nlp, snips_docs[:4])
    nlp.initialize(lambda: examples)
    with pytest.raises(ValueError, match="pattern 'word_embedings' matches no parameter of 'transformer'"):
        create_freeze_parameters("transformer", ["word_embedings"])(nlp)
    with pytest.raises(ValueError, match="no component 'encoder'"):
        create_freeze_parameters("encoder", ["word_embeddings"])(nlp)
    with pytest.raises(ValueError, match="'slot_intent' has no PyTorch parameters"):
        create_freeze_parameters("slot_intent", ["word_embeddings"])(nlp)
