"""Which library multiplies the heads' matrices on the CPU."""
from thinc.api import Model, NumpyOps


def use_threaded_blas(model: Model) -> Model:
    """Have the model's layers multiply matrices with numpy's BLAS instead of
    the BLIS that thinc bundles. Thinc's NumpyOps runs BLIS on one thread;
    numpy's BLAS (OpenBLAS in its wheels) uses every core, and the heads'
    products, the relation scorer's above all (thousands of candidate pairs
    per batch early in training), run several times faster. Other ops (CuPy
    on a GPU, Apple's Accelerate) are left as they are."""
    if type(model.ops) is NumpyOps and model.ops.use_blis:
        set_numpy_ops(model, NumpyOps(use_blis=False))
    return model


def set_numpy_ops(model: Model, ops: NumpyOps) -> Model:
    """Give every layer of the model that runs on NumpyOps these ops."""
    for node in model.walk():
        if type(node.ops) is NumpyOps:
            node.ops = ops
    return model
