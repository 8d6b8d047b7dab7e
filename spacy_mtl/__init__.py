"""spacy-mtl: multi-task learning for spaCy pipelines."""
import os

from . import compat, ml, pipeline, relations, scoring, training  # noqa: F401  (registers factories, architectures, readers, doc._.relations; compat's patch)

__version__ = "0.1.0"


def _one_torch_thread_in_forked_children() -> None:
    """nlp.pipe(n_process=2) forks. A child that inherits PyTorch's OpenMP
    thread pool deadlocks on its first parallel op (GNU libgomp is not
    fork-safe), so forked children run PyTorch on one thread each."""
    import torch

    torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_torch_thread_in_forked_children)
