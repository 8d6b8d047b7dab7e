"""Inference speed and memory of pipelines, as `spacy-mtl benchmark` runs it."""
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import spacy
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import CupyOps, get_current_ops

from .inputs import InputError, load_pipeline, read_docbin, read_text_lines


def load_texts(path: Path, n_words: int) -> List[str]:
    """Texts with about n_words words in all: the docs of a .spacy file, or
    the lines of a text file, cycled if the file is shorter."""
    if path.suffix == ".spacy":
        texts = [doc.text for doc in read_docbin(path, spacy.blank("xx").vocab)]
    else:
        texts = read_text_lines(path)
    chosen, count = [], 0
    while count < n_words:
        for text in texts:
            chosen.append(text)
            count += len(text.split())
            if count >= n_words:
                break
    return chosen


def words_in(docs: Sequence[Doc]) -> int:
    return sum(1 for doc in docs for token in doc if not token.is_space)


def time_pipelines(pipelines: Sequence[Language], texts: List[str], batch_size: int) -> float:
    """Seconds to run every pipeline over the texts, one after another."""
    start = time.perf_counter()
    for nlp in pipelines:
        for _ in nlp.pipe(texts, batch_size=batch_size):
            pass
    # A GPU may still be working on the last batch (the transformer alone
    # leaves its outputs on the device).
    synchronize_gpu()
    return time.perf_counter() - start


def warmup(texts: List[str], n_texts: Optional[int]) -> List[str]:
    """The warm-up's texts: n_texts of them; by default 64 on a CPU and all
    of them on a GPU, where each batch shape met for the first time costs
    the choice of its kernels (with 64 texts, the first timed run was up to
    four times slower than the others)."""
    if n_texts is None:
        n_texts = len(texts) if on_gpu() else 64
    return texts[:n_texts]


def on_gpu() -> bool:
    return isinstance(get_current_ops(), CupyOps)


def synchronize_gpu() -> None:
    if on_gpu():
        import torch

        torch.cuda.synchronize()


def device_info() -> Dict:
    """The device the pipelines ran on and, on a GPU, the most memory that
    PyTorch held on it (CuPy's too, with the "pytorch" allocator)."""
    if not on_gpu():
        return {"device": "cpu"}
    import torch

    return {
        "device": torch.cuda.get_device_name(),
        "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / (1024 * 1024), 1),
    }


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def benchmark(
    models: Sequence[Path],
    texts: List[str],
    *,
    batch_size: int = 64,
    n_runs: int = 3,
    warmup_texts: Optional[int] = None,
    transformer_only: bool = False,
) -> Dict:
    """Words per second of the pipelines run one after another on the same
    texts (median of n_runs after a warm-up of warmup_texts texts, see
    `warmup`), and the process's peak memory."""
    pipelines = [load_pipeline(model) for model in models]
    if transformer_only:
        for nlp in pipelines:
            nlp.select_pipes(enable=[name for name in nlp.pipe_names if name == "transformer"])
    n_words = words_in(list(pipelines[0].tokenizer.pipe(texts)))
    time_pipelines(pipelines, warmup(texts, warmup_texts), batch_size)
    seconds = [time_pipelines(pipelines, texts, batch_size) for _ in range(n_runs)]
    speeds = [n_words / s for s in seconds]
    return {
        "models": [str(model) for model in models],
        "components": [nlp.pipe_names for nlp in pipelines],
        "words": n_words,
        "batch_size": batch_size,
        "runs": n_runs,
        "words_per_second": [round(speed, 1) for speed in speeds],
        "median_words_per_second": round(statistics.median(speeds), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **device_info(),
    }


def benchmark_beside_transformer(
    model: Path, texts: List[str], *, batch_size: int = 64, n_runs: int = 3, warmup_texts: Optional[int] = None
) -> Dict:
    """The pipeline and its transformer alone (the same loaded weights),
    timed in turn, run after run, so both see the same state of the machine:
    on a shared machine two benchmarks minutes apart can differ by a tenth,
    as much as the heads cost. Reports both speeds, the pipeline's speed as
    a share of its transformer's (median over the runs) and what the other
    components cost per word (median of the runs' differences)."""
    nlp = load_pipeline(model)
    if "transformer" not in nlp.pipe_names:
        raise InputError(f"{model}: no component named 'transformer' to time the pipeline beside")
    n_words = words_in(list(nlp.tokenizer.pipe(texts)))

    def whole_then_alone(texts_of_run: List[str]) -> Tuple[float, float]:
        seconds = time_pipelines([nlp], texts_of_run, batch_size)
        with nlp.select_pipes(enable=["transformer"]):
            return seconds, time_pipelines([nlp], texts_of_run, batch_size)

    whole_then_alone(warmup(texts, warmup_texts))
    whole, alone = zip(*(whole_then_alone(texts) for _ in range(n_runs)))
    return {
        "model": str(model),
        "components": nlp.pipe_names,
        "words": n_words,
        "batch_size": batch_size,
        "runs": n_runs,
        "words_per_second": [round(n_words / s, 1) for s in whole],
        "transformer_words_per_second": [round(n_words / s, 1) for s in alone],
        "median_share_of_transformer": round(statistics.median(a / w for w, a in zip(whole, alone)), 3),
        "other_components_us_per_word": round(1e6 * statistics.median(w - a for w, a in zip(whole, alone)) / n_words, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **device_info(),
    }
