"""Words/s and peak resident memory of a pipeline on one long document
(repeated short sentences), beside the same sentences as separate texts.
The document and the sentences of each length run in processes of their
own, so each peak is its own. Prints a table and writes JSON."""
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from spacy.tokens import Doc

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


def measure(model: Optional[Path], config: Optional[Path], n_tokens: int, as_sentences: bool) -> dict:
    """Words/s and peak RSS of one document of about n_tokens tokens, or of
    its sentences as separate texts (batches of 64), after a warm-up."""
    nlp = load(model, config)
    repeats = max(1, n_tokens // len(SENTENCE.split()))
    list(nlp.pipe([SENTENCE] * 64, batch_size=64))  # warm-up
    start = time.perf_counter()
    if as_sentences:
        docs = list(nlp.pipe([SENTENCE] * repeats, batch_size=64))
    else:
        docs = [nlp(" ".join([SENTENCE] * repeats))]
    seconds = time.perf_counter() - start
    n_words = sum(len(doc) for doc in docs)
    return {
        "tokens": n_words,
        "words_per_second": round(n_words / seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "entities": sum(len(doc.ents) for doc in docs),
        "relations": sum(len(doc._.relations) for doc in docs) if Doc.has_extension("relations") else 0,
    }


def measure_apart(source: List[str], n_tokens: int, as_sentences: bool) -> dict:
    """`measure` in a fresh process."""
    flags = ["--one", str(n_tokens)] + (["--as-sentences"] if as_sentences else [])
    result = subprocess.run([sys.executable, __file__, *source, *flags], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(
    model: Optional[Path] = typer.Option(None, help="A trained pipeline"),
    config: Optional[Path] = typer.Option(None, help="Or a config to initialize a pipeline from"),
    lengths: str = typer.Option("1000,10000,50000", help="Document lengths in tokens, comma-separated"),
    output: Optional[Path] = typer.Option(None, help="JSON file for the figures"),
    one: int = typer.Option(0, hidden=True, help="Measure this length here and print JSON (used internally)"),
    as_sentences: bool = typer.Option(False, hidden=True, help="With --one: the sentences as separate texts"),
) -> None:
    if (model is None) == (config is None):
        raise typer.BadParameter("give one of --model and --config")
    if one:
        print(json.dumps(measure(model, config, one, as_sentences)))
        return
    source = ["--model", str(model)] if model is not None else ["--config", str(config)]
    rows: List[dict] = []
    for n_tokens in (int(value) for value in lengths.split(",")):
        print(f"{n_tokens} tokens ...", file=sys.stderr)
        document = measure_apart(source, n_tokens, as_sentences=False)
        sentences = measure_apart(source, n_tokens, as_sentences=True)
        rows.append({
            "tokens": document["tokens"],
            "long_words_per_second": document["words_per_second"],
            "short_words_per_second": sentences["words_per_second"],
            "peak_rss_mb": document["peak_rss_mb"],
            "sentences_peak_rss_mb": sentences["peak_rss_mb"],
            "entities": document["entities"],
            "relations": document["relations"],
        })
    print("| tokens | one document, words/s | as sentences, words/s | ratio | peak RSS (MB), document | sentences |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        ratio = row["long_words_per_second"] / row["short_words_per_second"]
        print(f"| {row['tokens']} | {row['long_words_per_second']} | {row['short_words_per_second']} | {ratio:.2f} "
              f"| {row['peak_rss_mb']} | {row['sentences_peak_rss_mb']} |")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        source_name = str(model) if model is not None else f"initialized from {config}"
        output.write_text(json.dumps({"pipeline": source_name, "sentence": SENTENCE, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
