"""Where a pipeline's ner_re component loses relations on a DocBin (on the
gold tokenization), per relation label: of the gold relations it misses,
how many lack one of their entities (span and type) among the predicted
entities, which the relation head could not have found, and how many have
both, which it scored below the threshold or gave another label. Prints a
table; writes JSON when asked.

relation_errors.py MODEL DATA [--component ner_re] [--output OUT.json]
"""
import json
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

import spacy
import typer
from spacy.tokens import Doc, DocBin

from spacy_mtl.evaluate import gold_token_inputs
from spacy_mtl.relations import has_relations_annotation
from spacy_mtl.scoring import relation_tuples

COLUMNS = ("gold", "found", "missed_entity", "missed_pair", "other_label", "false_positive")


def count_errors(predicted: List[Doc], references: List[Doc]) -> Dict[str, Counter]:
    """Per gold or predicted label, the counts of COLUMNS (strict matching:
    spans, entity types and label)."""
    counts: Dict[str, Counter] = {}
    for doc, reference in zip(predicted, references):
        if not has_relations_annotation(reference):
            continue
        entities = {(ent.start_char, ent.end_char, ent.label_) for ent in doc.ents}
        gold, found = relation_tuples(reference, typed=True), relation_tuples(doc, typed=True)
        found_pairs = {(head, tail) for head, tail, _ in found}
        for head, tail, label in gold:
            count = counts.setdefault(label, Counter())
            count["gold"] += 1
            if (head, tail, label) in found:
                count["found"] += 1
            elif head not in entities or tail not in entities:
                count["missed_entity"] += 1
            else:
                count["missed_pair"] += 1
                if (head, tail) in found_pairs:
                    count["other_label"] += 1
        for row in found - gold:
            counts.setdefault(row[2], Counter())["false_positive"] += 1
    return counts


def main(
    model: Path,
    data: Path,
    component: str = typer.Option("ner_re", help="The ner_re component's name"),
    output: Optional[Path] = typer.Option(None, help="Write the counts as JSON"),
) -> None:
    if not data.is_file():
        raise SystemExit(f"File not found: {data}")
    nlp = spacy.load(model)
    if component not in nlp.pipe_names:
        raise SystemExit(f"{model} has no component '{component}' (it has {', '.join(nlp.pipe_names)})")
    references = list(DocBin().from_disk(data).get_docs(nlp.vocab))
    predicted = list(nlp.pipe(gold_token_inputs(nlp, references), batch_size=64))
    counts = count_errors(predicted, references)
    print(f"{'label':14}" + "".join(f"{column:>16}" for column in COLUMNS))
    for label in sorted(counts):
        print(f"{label:14}" + "".join(f"{counts[label][column]:16d}" for column in COLUMNS))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        result = {"model": str(model), "data": str(data), "per_label": {label: dict(counts[label]) for label in sorted(counts)}}
        output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
