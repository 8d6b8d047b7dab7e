"""Words/s and peak resident memory of a pipeline on one long document
(repeated short sentences), beside the same sentences as separate texts.
Each length runs in a process of its own, so its peak memory is its own.
Prints a table and writes JSON."""
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

SENTENCE = "Steve Jobs founded Apple in Cupertino ."


def load(model: Optional[Path], config: Optional[Path]):
    """A trained pipeline, or one initialized from a config (its training
    corpus read for the labels, as spacy train does)."""
    import spacy
    from spacy.training.initialize import init_nlp
    from spacy.util import load_config

    if model is not None:
        return spacy.load(model)
    return init_nlp(load_config(config))


def measure(model: Optional[Path], config: Optional[Path], n_tokens: int) -> dict:
    nlp = load(model, config)
    repeats = max(1, n_tokens // len(SENTENCE.split()))
    text = " ".join([SENTENCE] * repeats)
    list(nlp.pipe([SENTENCE] * 64, batch_size=64))  # warm-up
    start = time.perf_counter()
    list(nlp.pipe([SENTENCE] * repeats, batch_size=64))
    short_seconds = time.perf_counter() - start
    start = time.perf_counter()
    doc = nlp(text)
    long_seconds = time.perf_counter() - start
    return {
        "tokens": len(doc),
        "long_words_per_second": round(len(doc) / long_seconds, 1),
        "short_words_per_second": round(len(doc) / short_seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "entities": len(doc.ents),
        "relations": len(doc._.relations) if doc.has_extension("relations") else 0,
    }


def main(
    model: Optional[Path] = typer.Option(None, help="A trained pipeline"),
    config: Optional[Path] = typer.Option(None, help="Or a config to initialize a pipeline from"),
    lengths: str = typer.Option("1000,10000,50000", help="Document lengths in tokens, comma-separated"),
    output: Optional[Path] = typer.Option(None, help="JSON file for the figures"),
    one: int = typer.Option(0, hidden=True, help="Measure this length here and print JSON (used internally)"),
) -> None:
    if (model is None) == (config is None):
        raise typer.BadParameter("give one of --model and --config")
    if one:
        print(json.dumps(measure(model, config, one)))
        return
    source = ["--model", str(model)] if model is not None else ["--config", str(config)]
    rows: List[dict] = []
    for n_tokens in (int(value) for value in lengths.split(",")):
        print(f"{n_tokens} tokens ...", file=sys.stderr)
        result = subprocess.run([sys.executable, __file__, *source, "--one", str(n_tokens)], capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(result.stderr)
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print("| tokens | one document, words/s | as sentences, words/s | ratio | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    for row in rows:
        ratio = row["long_words_per_second"] / row["short_words_per_second"]
        print(f"| {row['tokens']} | {row['long_words_per_second']} | {row['short_words_per_second']} | {ratio:.2f} | {row['peak_rss_mb']} |")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        source_name = str(model) if model is not None else f"initialized from {config}"
        output.write_text(json.dumps({"pipeline": source_name, "sentence": SENTENCE, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
