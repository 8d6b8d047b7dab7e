"""Resident memory while a pipeline annotates many words with nlp.pipe:
RSS after a warm-up and at the end, and the growth in between. Prints the
figures and writes them as JSON."""
import json
import time
from pathlib import Path
from typing import Optional

import spacy
import typer

from spacy_mtl.benchmark import load_texts


def resident_mb() -> float:
    """Current resident set size (Linux /proc; the peak elsewhere)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    from spacy_mtl.benchmark import peak_rss_mb

    return peak_rss_mb()


def main(
    model: Path = typer.Argument(..., help="A trained pipeline"),
    data: Path = typer.Argument(..., help="Texts: a .spacy file or a text file (a text a line)"),
    n_words: int = typer.Option(200_000, help="Words to annotate in all"),
    warmup_words: int = typer.Option(20_000, help="Words annotated before the baseline is taken"),
    batch_size: int = typer.Option(64, help="Texts per batch"),
    release_every: int = typer.Option(0, help="Add spacy-mtl's release_memory component, trimming every N docs (0: no)"),
    output: Optional[Path] = typer.Option(None, help="JSON file for the figures"),
) -> None:
    nlp = spacy.load(model)
    if release_every:
        nlp.add_pipe("release_memory", config={"every_n_docs": release_every})
    texts = load_texts(data, n_words)
    words = samples = 0
    baseline = None
    trace = []
    start = time.perf_counter()
    for doc in nlp.pipe(texts, batch_size=batch_size):
        words += len(doc)
        samples += 1
        if baseline is None and words >= warmup_words:
            baseline = resident_mb()
        if samples % 1000 == 0:
            trace.append((words, round(resident_mb(), 1)))
            print(f"{words:>8} words  RSS {trace[-1][1]:.1f} MB")
    final = resident_mb()
    # RSS may peak between trims: the highest sample after warm-up counts too.
    after_warmup = [rss for sample_words, rss in trace if sample_words >= warmup_words]
    if baseline is None:
        raise SystemExit(f"Only {words} words annotated: fewer than the warm-up ({warmup_words}); raise --n-words")
    result = {
        "model": str(model),
        "words": words,
        "warmup_words": warmup_words,
        "batch_size": batch_size,
        "release_memory_every_n_docs": release_every or None,
        "rss_after_warmup_mb": round(baseline, 1),
        "rss_final_mb": round(final, 1),
        "growth_percent": round(100 * (final - baseline) / baseline, 2),
        "max_growth_percent": round(100 * (max([final] + after_warmup) - baseline) / baseline, 2),
        "seconds": round(time.perf_counter() - start, 1),
        "trace": trace,
    }
    print(
        f"RSS after warm-up {baseline:.1f} MB, at the end {final:.1f} MB: growth {result['growth_percent']:+.2f}% "
        f"(at most {result['max_growth_percent']:+.2f}% on the way)"
    )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
