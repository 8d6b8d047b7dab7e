"""Scoring a pipeline on gold docs, on the gold tokenization: UAS/LAS and
every other metric compare against the reference tokens (docs/metrics.md)."""
from typing import Any, Dict, Iterable, List

from spacy.language import Language
from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example

from .pipeline.base import MultiTaskPipe
from .training.corpus import gold_tokenized


def gold_token_inputs(nlp: Language, references: Iterable[Doc]) -> Iterable[Doc]:
    """Unannotated docs with the references' words and spaces."""
    for ref in references:
        yield gold_tokenized(ref, nlp.vocab)


def score_pipeline(nlp: Language, references: List[Doc], batch_size: int = 64, progress: bool = False) -> Dict[str, Any]:
    """Every score the pipeline's components define: floats, and per-label
    dicts such as rel_per_type (None-valued ones left out)."""
    predicted = nlp.pipe(gold_token_inputs(nlp, references), batch_size=batch_size)
    if progress:
        from tqdm import tqdm

        predicted = tqdm(predicted, total=len(references), desc="Annotating", unit="doc")
    scores = Scorer(nlp).score([Example(pred, ref) for pred, ref in zip(predicted, references)])
    return {key: value for key, value in scores.items() if isinstance(value, (float, dict))}


def unknown_gold_labels(nlp: Language, references: List[Doc]) -> Dict[str, Dict[str, List[str]]]:
    """Per spacy-mtl component, the gold labels of the references it never
    predicts (it was initialized without them): each costs recall that no
    amount of training recovers."""
    unknown = {}
    for name, pipe in nlp.pipeline:
        if isinstance(pipe, MultiTaskPipe):
            labels = pipe.unknown_labels(references)
            if labels:
                unknown[name] = labels
    return unknown


def describe_unknown_labels(unknown: Dict[str, Dict[str, List[str]]]) -> List[str]:
    """One line per component, for a warning."""
    return [
        f"{name} cannot predict gold " + "; ".join(f"{kind} {', '.join(labels)}" for kind, labels in kinds.items())
        for name, kinds in unknown.items()
    ]
