"""spacy-mtl: multi-task learning for spaCy pipelines."""
import os

# PyTorch's matrix products on a CPU go through oneDNN, which keeps a
# compiled primitive for every input shape it meets, up to 1,024 by default
# and about a megabyte each. Batches of text come in ever new shapes, so a
# pipeline's memory grew by 15% over a stream of 200,000 words; eight hold
# the shapes of a batch, at no cost in speed. oneDNN reads this when it
# first runs, and a value set before is kept.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")

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
