"""Scoring a pipeline on gold docs, on the gold tokenization (DESIGN.md:
UAS/LAS and every other metric compare against the reference tokens)."""
from typing import Dict, Iterable, List

from spacy.language import Language
from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example


def gold_token_inputs(nlp: Language, references: Iterable[Doc]) -> Iterable[Doc]:
    """Unannotated docs with the references' words and spaces."""
    for ref in references:
        yield Doc(nlp.vocab, words=[t.text for t in ref], spaces=[bool(t.whitespace_) for t in ref])


def score_pipeline(nlp: Language, references: List[Doc], batch_size: int = 64, progress: bool = False) -> Dict[str, float]:
    """Every score the pipeline's components define (None-valued ones left out)."""
    predicted = nlp.pipe(gold_token_inputs(nlp, references), batch_size=batch_size)
    if progress:
        from tqdm import tqdm

        predicted = tqdm(predicted, total=len(references), desc="Annotating", unit="doc")
    scores = Scorer(nlp).score([Example(pred, ref) for pred, ref in zip(predicted, references)])
    return {key: value for key, value in scores.items() if isinstance(value, float)}
