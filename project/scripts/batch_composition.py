"""How a MultiCorpus training stream's batches are made up: per corpus, in
how many batches of an epoch its docs appear, how many per batch, and how
much of its data a loss averaged per batch wastes.

    python scripts/batch_composition.py configs/all_trf.cfg
    python scripts/batch_composition.py configs/all_trf.cfg --epochs 3 --output metrics/batch_composition.json

A head's loss is a mean over the batch's gold, so each of a batch's k docs
of a corpus weighs 1/k. Over the batches, the effective number of docs
behind the gradient is then 1/(E[k] E[1/k]) of the docs drawn (k over the
batches with some of the corpus): the printed `waste` is E[k] E[1/k], 1
when every batch holds as many. No model is built: only the reader and the
batcher of the config's [training] run.
"""
import json
from pathlib import Path
from typing import Dict, List

import numpy
import spacy
import typer
from spacy.cli._util import parse_config_overrides
from spacy.util import load_config, registry, resolve_dot_names

from spacy_mtl.training.corpus import MultiCorpus

app = typer.Typer(add_completion=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False),
    epochs: int = typer.Option(1, help="Epochs of the stream to batch"),
    output: Path = typer.Option(None, help="Write the numbers as JSON here"),
):
    config = load_config(config_path, overrides=parse_config_overrides(ctx.args), interpolate=True)
    (reader,) = resolve_dot_names(config, [config["training"]["train_corpus"]])
    if not isinstance(reader, MultiCorpus):
        raise SystemExit(f"{config_path}: the training corpus is not a spacy_mtl.MultiCorpus.v1")
    batcher = registry.resolve({"batcher": config["training"]["batcher"]})["batcher"]
    nlp = spacy.blank(config["nlp"]["lang"])
    corpus_of = {id(eg): name for name, examples in reader._load(nlp).items() for eg in examples}
    counts: Dict[str, List[int]] = {name: [] for name in reader.corpora}
    for epoch in range(epochs):
        for batch in batcher(reader(nlp)):
            for name in counts:
                counts[name].append(sum(corpus_of[id(eg)] == name for eg in batch))
        typer.echo(f"epoch {epoch + 1}/{epochs}: {len(next(iter(counts.values())))} batches", err=True)
    stats = {name: composition(numpy.asarray(per_batch)) for name, per_batch in counts.items()}
    typer.echo(table(stats))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({"config": str(config_path), "epochs": epochs, "corpora": stats}, indent=2))


def composition(per_batch: numpy.ndarray) -> Dict[str, float]:
    """Statistics of one corpus' docs per batch."""
    present = per_batch[per_batch > 0]
    if not len(present):
        return {"batches": int(len(per_batch)), "batches_with_it": 0}
    return {
        "batches": int(len(per_batch)),
        "batches_with_it": int(len(present)),
        "docs_mean": round(float(present.mean()), 2),
        "docs_p10": float(numpy.percentile(present, 10)),
        "docs_median": float(numpy.median(present)),
        "docs_p90": float(numpy.percentile(present, 90)),
        "waste": round(float(present.mean() * (1.0 / present).mean()), 2),
    }


def table(stats: Dict[str, Dict[str, float]]) -> str:
    lines = [
        "| corpus | batches with it | docs per batch (mean) | 10th pct | median | 90th pct | E[k] E[1/k] |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in stats.items():
        if not row["batches_with_it"]:
            lines.append(f"| {name} | 0 of {row['batches']} | | | | | |")
            continue
        lines.append(
            f"| {name} | {row['batches_with_it']} of {row['batches']} | {row['docs_mean']} | {row['docs_p10']:g} "
            f"| {row['docs_median']:g} | {row['docs_p90']:g} | {row['waste']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    app()
