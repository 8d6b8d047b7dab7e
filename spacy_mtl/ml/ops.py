"""Which library multiplies the heads' matrices on the CPU."""
from typing import Optional

import numpy
import torch
from thinc.api import Model, NumpyOps
from thinc.types import Floats2d


class TorchBlasOps(NumpyOps):
    """NumpyOps whose matrix products run in PyTorch, on the CPU arrays'
    memory (no copy). PyTorch's threads are the ones the transformer and the
    cascade use: with numpy's BLAS (OpenBLAS in its wheels) beside them, two
    pools of threads each spin after their work and take cores from the
    other, and on 2 CPUs the cascade ran at half speed after the thinc
    heads. Products that PyTorch cannot take as they are (other dtypes,
    negative strides, read-only arrays) go to numpy."""

    def __init__(self, **kwargs):
        kwargs["use_blis"] = False
        super().__init__(**kwargs)

    def gemm(
        self,
        x: Floats2d,
        y: Floats2d,
        out: Optional[Floats2d] = None,
        trans1: bool = False,
        trans2: bool = False,
    ) -> Floats2d:
        if not _takes(x, y, out):
            return super().gemm(x, y, out=out, trans1=trans1, trans2=trans2)
        a, b = torch.from_numpy(x), torch.from_numpy(y)
        a, b = (a.T if trans1 else a), (b.T if trans2 else b)
        if out is None:
            return torch.mm(a, b).numpy()
        torch.mm(a, b, out=torch.from_numpy(out))
        return out


def _takes(x, y, out) -> bool:
    """Whether torch.mm can take these arrays as they are."""
    arrays = (x, y) if out is None else (x, y, out)
    return all(
        isinstance(a, numpy.ndarray)
        and a.ndim == 2
        and a.dtype == numpy.float32
        and min(a.strides) >= 0
        and a.flags.writeable
        for a in arrays
    ) and (out is None or out.flags.c_contiguous)


def use_torch_blas(model: Model) -> Model:
    """Have the model's layers multiply matrices with PyTorch (TorchBlasOps)
    instead of the BLIS that thinc bundles. Thinc's NumpyOps runs BLIS on
    one thread; PyTorch uses every core, and the heads' products, the
    relation scorer's above all (thousands of candidate pairs per batch early
    in training), run several times faster. Other ops (CuPy on a GPU, Apple's
    Accelerate) are left as they are."""
    if type(model.ops) is NumpyOps and model.ops.use_blis:
        set_numpy_ops(model, TorchBlasOps())
    return model


def set_numpy_ops(model: Model, ops: NumpyOps) -> Model:
    """Give every layer of the model that runs on NumpyOps these ops."""
    for node in model.walk():
        if type(node.ops) in (NumpyOps, TorchBlasOps):
            node.ops = ops
    return model
