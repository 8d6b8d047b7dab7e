import numpy
import pytest
import spacy
from thinc.api import Maxout, NumpyOps, Softmax, chain

from spacy_mtl.ml.ops import set_numpy_ops, use_threaded_blas


def test_threaded_blas_gives_the_same_outputs():
    model = set_numpy_ops(chain(Maxout(64, 32, nP=3), Softmax(5, 64)), NumpyOps(use_blis=True))
    X = numpy.random.default_rng(0).normal(size=(40, 32)).astype("float32")
    model.initialize(X=X)
    expected = model.predict(X)
    use_threaded_blas(model)
    assert all(not node.ops.use_blis for node in model.walk())
    numpy.testing.assert_allclose(model.predict(X), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("factory", ["slot_intent", "ner_re", "cascade"])
def test_components_multiply_with_numpy_blas_on_the_cpu(factory):
    pipe = spacy.blank("en").add_pipe(factory)
    assert all(type(node.ops) is NumpyOps and not node.ops.use_blis for node in pipe.model.walk())
