"""Relation scores of a pipeline's ner_re component on a DocBin at several
decision thresholds (on the gold tokenization). A diagnosis, not a tuning
step: if one threshold scored far above the configured one, the relation
head would be miscalibrated; if every threshold scores alike, its scores rank
pairs as well as they can. Prints a table; writes JSON when asked.

threshold_sweep.py MODEL DATA [--thresholds 0.2,0.3,0.4,0.5,0.6] [--component ner_re] [--output OUT.json]
"""
import json
from pathlib import Path
from typing import List, Optional

import spacy
import typer
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example

from spacy_mtl.evaluate import gold_token_inputs
from spacy_mtl.pipeline.base import MultiTaskPipe
from spacy_mtl.pipeline.ner_re import NerRe
from spacy_mtl.relations import get_relations, set_relations


def sweep(nlp: Language, component: str, references: List[Doc], thresholds: List[float]) -> List[dict]:
    """Relation P/R/F per threshold. The pipeline runs once, keeping every
    relation that reaches the lowest threshold; each threshold then keeps
    those whose score reaches it, as the component itself would."""
    ner_re = nlp.get_pipe(component)
    configured = ner_re.cfg["threshold"]
    ner_re.cfg["threshold"] = min(thresholds)
    try:
        predicted = list(nlp.pipe(gold_token_inputs(nlp, references), batch_size=64))
    finally:
        ner_re.cfg["threshold"] = configured
    found = [get_relations(doc) for doc in predicted]
    rows = []
    for threshold in thresholds:
        for doc, relations in zip(predicted, found):
            set_relations(doc, [rel for rel in relations if rel.score >= threshold])
        scores = ner_re.score([Example(pred, ref) for pred, ref in zip(predicted, references)])
        rows.append({"threshold": threshold, **{key: scores[key] for key in ("rel_micro_p", "rel_micro_r", "rel_micro_f")}})
    return rows


def main(
    model: Path = typer.Argument(..., exists=True, file_okay=False),
    data: Path = typer.Argument(..., exists=True, dir_okay=False),
    thresholds: str = typer.Option("0.2,0.3,0.4,0.5,0.6", help="Comma-separated thresholds in (0, 1)"),
    component: str = typer.Option("ner_re", help="The ner_re component's name in the pipeline"),
    output: Optional[Path] = typer.Option(None, help="Write the scores per threshold as JSON"),
) -> None:
    try:
        values = [float(value) for value in thresholds.split(",")]
    except ValueError:
        raise SystemExit(f"--thresholds takes comma-separated numbers, like 0.3,0.5: not '{thresholds}'") from None
    if not all(0.0 < value < 1.0 for value in values):
        raise SystemExit(f"--thresholds must lie between 0 and 1: {thresholds}")
    nlp = spacy.load(model)
    if component not in nlp.pipe_names or not isinstance(nlp.get_pipe(component), NerRe):
        raise SystemExit(f"{model} has no ner_re component named '{component}' (pipeline: {nlp.pipe_names})")
    # The other task heads' work is skipped: their scores do not depend on the threshold.
    nlp.select_pipes(disable=[name for name, pipe in nlp.pipeline if isinstance(pipe, MultiTaskPipe) and name != component])
    references = list(DocBin().from_disk(data).get_docs(nlp.vocab))
    configured = nlp.get_pipe(component).cfg["threshold"]
    rows = sweep(nlp, component, references, values)
    print(f"{model} on {data} ({len(references)} docs; configured threshold {configured})")
    print("threshold  rel_micro_p  rel_micro_r  rel_micro_f")
    for row in rows:
        print(f"{row['threshold']:9.2f}  {100 * row['rel_micro_p']:11.2f}  {100 * row['rel_micro_r']:11.2f}  {100 * row['rel_micro_f']:11.2f}")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        result = {"model": str(model), "data": str(data), "configured_threshold": configured, "rows": rows}
        output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
