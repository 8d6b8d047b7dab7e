"""Every output of a pipeline on the benchmark's dev texts, to check that a
change leaves predictions as they were: run it before the change with
--output, after it with --compare, and it names the docs that differ.
Labels, spans and trees must be equal; scores (cats, relation scores) may
differ by float rounding, up to --tolerance.

    python scripts/dump_outputs.py training/all_trf/model-last --output /tmp/before.json
    python scripts/dump_outputs.py training/all_trf/model-last --output /tmp/after.json --compare /tmp/before.json
"""
import json
from pathlib import Path
from typing import Any, Dict

import spacy
import typer
from spacy.tokens import Doc

from head_overhead import dev_texts


def outputs_of(doc: Doc) -> Dict:
    """Categories, span groups, entities, relations and token attributes."""
    return {
        "cats": sorted(doc.cats.items()),
        "spans": {key: [(s.start, s.end, s.label_) for s in group] for key, group in sorted(doc.spans.items())},
        "ents": [(e.start, e.end, e.label_) for e in doc.ents],
        "relations": [
            [rel.head.start, rel.head.end, rel.head.label_, rel.tail.start, rel.tail.end, rel.tail.label_, rel.label, rel.score]
            for rel in (doc._.relations if doc.has_extension("relations") else [])
        ],
        "tags": [t.tag_ for t in doc],
        "pos": [t.pos_ for t in doc],
        "heads": [t.head.i for t in doc],
        "deps": [t.dep_ for t in doc],
    }


def same(earlier: Any, found: Any, tolerance: float) -> bool:
    """Equal, except that floats may differ by up to `tolerance`."""
    if isinstance(earlier, float) or isinstance(found, float):
        return isinstance(earlier, (int, float)) and isinstance(found, (int, float)) and abs(earlier - found) <= tolerance
    if isinstance(earlier, list) and isinstance(found, list):
        return len(earlier) == len(found) and all(same(a, b, tolerance) for a, b in zip(earlier, found))
    if isinstance(earlier, dict) and isinstance(found, dict):
        return earlier.keys() == found.keys() and all(same(earlier[k], found[k], tolerance) for k in earlier)
    return earlier == found


def main(
    model: Path = typer.Argument(..., exists=True, file_okay=False, help="A trained pipeline"),
    output: Path = typer.Option(..., help="Write the outputs here (JSON, a record per text)"),
    compare: Path = typer.Option(None, exists=True, dir_okay=False, help="Outputs of an earlier run to compare with"),
    n_words: int = typer.Option(20_000, help="Words of dev text (the dev sets taken in turn)"),
    batch_size: int = typer.Option(64, help="Texts per batch"),
    tolerance: float = typer.Option(1e-5, help="How far a score may differ from the earlier run's"),
) -> None:
    nlp = spacy.load(model)
    texts = dev_texts(n_words)
    records = [outputs_of(doc) for doc in nlp.pipe(texts, batch_size=batch_size)]
    # Through JSON, so a fresh dump compares equal to a stored one.
    records = json.loads(json.dumps(records))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(records) + "\n")
    if compare is not None:
        earlier = json.loads(compare.read_text())
        if len(earlier) != len(records):
            raise typer.BadParameter(f"{compare} has {len(earlier)} texts, this run {len(records)}")
        differing = [i for i, (a, b) in enumerate(zip(earlier, records)) if not same(a, b, tolerance)]
        typer.echo(f"{len(records)} texts, {len(differing)} with different outputs" + (f": {differing[:20]}" if differing else ""))


if __name__ == "__main__":
    typer.run(main)
