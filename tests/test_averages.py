"""`use_averages = true`: evaluation and saving in `spacy train` run under
`nlp.use_params(optimizer.averages)`, which must put the averaged weights
into the transformer (a PyTorch model) as well as into the thinc heads, and
give the last weights back afterwards."""
import numpy
import spacy
from thinc.api import Adam

from spacy_mtl.training import create_freeze_parameters

from pipelines import examples_for, make_nlp, update


def transformer_weights(nlp):
    module = nlp.get_pipe("transformer").model.transformer
    return {name: param.detach().cpu().numpy().copy() for name, param in module.named_parameters()}


def transformer_shim(nlp):
    (shim,) = [shim for node in nlp.get_pipe("transformer").model.walk() for shim in node.shims]
    return shim


def test_averaged_weights_reach_the_transformer_and_are_saved(tiny_bert, snips_docs, tmp_path):
    nlp = make_nlp(tiny_bert)
    examples = examples_for(nlp, snips_docs[:20])
    nlp.initialize(lambda: examples)
    create_freeze_parameters("transformer", ["word_embeddings"])(nlp)
    optimizer = Adam(0.01, use_averages=True)
    for start in range(0, 20, 5):
        update(nlp, examples[start : start + 5], optimizer)
    last = transformer_weights(nlp)
    shim_id = transformer_shim(nlp).id
    with nlp.use_params(optimizer.averages):
        averaged = transformer_weights(nlp)
        nlp.to_disk(tmp_path / "averaged")
    for name, weights in transformer_weights(nlp).items():
        assert numpy.array_equal(weights, last[name]), name
    trained = [name for name in last if (shim_id, name) in optimizer.averages]
    assert "embeddings.position_embeddings.weight" in trained
    for name in trained:
        numpy.testing.assert_allclose(averaged[name], optimizer.averages[(shim_id, name)])
        assert not numpy.array_equal(averaged[name], last[name]), name
    # Frozen: no gradient, no average; it keeps its weights.
    frozen = "embeddings.word_embeddings.weight"
    assert frozen not in trained and numpy.array_equal(averaged[frozen], last[frozen])
    loaded = transformer_weights(spacy.load(tmp_path / "averaged"))
    for name in trained:
        numpy.testing.assert_allclose(loaded[name], averaged[name])
