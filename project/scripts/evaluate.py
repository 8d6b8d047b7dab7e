"""Evaluate a trained pipeline on a DocBin and write its scores as JSON,
with the training wall time when a timing file is given."""
import json
import os
import platform
from pathlib import Path
from typing import Optional

import spacy
import typer
from spacy.training import Corpus


def main(
    model: Path,
    data: Path,
    output: Path,
    timing: Optional[Path] = typer.Option(None, help="JSON written by timed.py for the training run"),
) -> None:
    nlp = spacy.load(model)
    examples = list(Corpus(data)(nlp))
    scores = nlp.evaluate(examples)
    result = {
        "model": str(model),
        "data": str(data),
        "n_docs": len(examples),
        "scores": {key: value for key, value in scores.items() if value is not None},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    if timing is not None and timing.exists():
        result["training"] = json.loads(timing.read_text())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    for key in ("slot_f", "intent_acc", "sent_acc", "ents_f", "rel_micro_f", "rel_macro_f",
                "tag_acc", "pos_acc", "chunk_f", "dep_uas", "dep_las"):
        if key in result["scores"]:
            print(f"{key:12} {100 * result['scores'][key]:.2f}")


if __name__ == "__main__":
    typer.run(main)
