import numpy
import pytest
import spacy
from thinc.api import Maxout, NumpyOps, Softmax, chain

from spacy_mtl.ml.ops import TorchBlasOps, set_numpy_ops, use_torch_blas


def test_torch_blas_gives_the_same_outputs():
    model = set_numpy_ops(chain(Maxout(64, 32, nP=3), Softmax(5, 64)), NumpyOps(use_blis=True))
    X = numpy.random.default_rng(0).normal(size=(40, 32)).astype("float32")
    model.initialize(X=X)
    expected = model.predict(X)
    use_torch_blas(model)
    assert all(type(node.ops) is TorchBlasOps for node in model.walk())
    numpy.testing.assert_allclose(model.predict(X), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("trans1", [False, True])
@pytest.mark.parametrize("trans2", [False, True])
@pytest.mark.parametrize("into_out", [False, True])
def test_torch_products_are_numpys(trans1, trans2, into_out):
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(7, 5) if trans1 else (5, 7)).astype("float32")
    y = rng.normal(size=(3, 7) if trans2 else (7, 3)).astype("float32")
    expected = (x.T if trans1 else x) @ (y.T if trans2 else y)
    out = numpy.zeros((5, 3), dtype="float32") if into_out else None
    found = TorchBlasOps().gemm(x, y, out=out, trans1=trans1, trans2=trans2)
    assert isinstance(found, numpy.ndarray) and found.dtype == numpy.float32
    numpy.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-6)
    if into_out:
        assert found is out


@pytest.mark.parametrize("case", ["float64", "reversed", "read-only"])
def test_torch_products_take_any_array_numpy_takes(case):
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(6, 4)).astype("float64" if case == "float64" else "float32")
    y = rng.normal(size=(4, 2)).astype("float32")
    if case == "reversed":
        x = x[::-1]
    if case == "read-only":
        x.flags.writeable = False
    numpy.testing.assert_allclose(TorchBlasOps().gemm(x, y), x @ y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("factory", ["slot_intent", "ner_re", "cascade"])
def test_components_multiply_with_torch_on_the_cpu(factory):
    pipe = spacy.blank("en").add_pipe(factory)
    assert all(type(node.ops) is TorchBlasOps for node in pipe.model.walk())
