"""Evaluate a trained pipeline on a DocBin (on the gold tokenization) and
write its scores as JSON, with the training wall time when a timing file is
given."""
import json
import os
import platform
from pathlib import Path
from typing import Optional

import spacy
import typer
from spacy.tokens import DocBin

from spacy_mtl.benchmark import device_info
from spacy_mtl.evaluate import describe_unknown_labels, score_pipeline, unknown_gold_labels


def main(
    model: Path = typer.Argument(..., exists=True, file_okay=False),
    data: Path = typer.Argument(..., exists=True, dir_okay=False),
    output: Path = typer.Argument(..., dir_okay=False),
    timing: Optional[Path] = typer.Option(None, help="JSON written by timed.py for the training run"),
    gpu_id: int = typer.Option(-1, help="GPU to use (-1: CPU)"),
) -> None:
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = spacy.load(model)
    references = list(DocBin().from_disk(data).get_docs(nlp.vocab))
    scores = score_pipeline(nlp, references)
    result = {
        "model": str(model),
        "data": str(data),
        "n_docs": len(references),
        "tokenization": "gold",
        "scores": scores,
        "unknown_gold_labels": unknown_gold_labels(nlp, references),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        **device_info(),
    }
    if timing is not None and timing.exists():
        result["training"] = json.loads(timing.read_text())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    for key in ("slot_f", "intent_acc", "sent_acc", "ents_f", "rel_micro_f", "rel_macro_f",
                "tag_acc", "pos_acc", "chunk_f", "dep_uas", "dep_las"):
        if key in result["scores"]:
            print(f"{key:12} {100 * result['scores'][key]:.2f}")
    for line in describe_unknown_labels(result["unknown_gold_labels"]):
        print(f"Warning: {line}")


if __name__ == "__main__":
    typer.run(main)
