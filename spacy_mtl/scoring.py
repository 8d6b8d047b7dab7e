"""The metrics of spacy-mtl, shared by the components and the CLI.

Every score is computed only on the docs whose reference annotates that task
(a doc from a corpus without slots is not counted as "no slots")."""
from typing import Dict, FrozenSet, Iterable, Optional, Set, Tuple

from spacy.scorer import PRFScore
from spacy.tokens import Doc
from spacy.training import Example

INTENT_SEPARATOR = "#"
SLOTS_KEY = "slots"

CharSpan = Tuple[int, int, str]


def gold_intents(doc: Doc) -> Optional[FrozenSet[str]]:
    """The reference intents of a doc (a multi-intent label `a#b` counts as
    {a, b}), or None when the doc is not annotated for intent."""
    positive = [label for label, value in doc.cats.items() if value >= 0.5]
    if not positive:
        return None
    return frozenset(part for label in positive for part in label.split(INTENT_SEPARATOR))


def predicted_intents(cats: Dict[str, float], multi_label: bool, threshold: float) -> FrozenSet[str]:
    """The intents a component predicted: the best label when single-label;
    every label over the threshold (else the best one) when multi-label."""
    if not cats:
        return frozenset()
    best = max(cats, key=cats.__getitem__)
    chosen = [label for label, score in cats.items() if score >= threshold] if multi_label else []
    return frozenset(part for label in (chosen or [best]) for part in label.split(INTENT_SEPARATOR))


def intent_label(intents: Iterable[str]) -> str:
    """The label string of a set of intents, in a fixed order."""
    return INTENT_SEPARATOR.join(sorted(intents))


def char_spans(doc: Doc, key: str) -> Optional[Set[CharSpan]]:
    """(start_char, end_char, label) of a span group, or None when the doc
    has no such group (not annotated). Character offsets make the comparison
    independent of how predicted and reference docs were tokenized."""
    if key not in doc.spans:
        return None
    return {(span.start_char, span.end_char, span.label_) for span in doc.spans[key]}


def score_slot_intent(
    examples: Iterable[Example],
    *,
    spans_key: str = SLOTS_KEY,
    multi_label: bool = False,
    threshold: float = 0.5,
) -> Dict[str, Optional[float]]:
    """slot_p/r/f: micro P/R/F over exact typed spans; intent_acc: the
    predicted intent set equals the gold one; sent_acc: both right, on docs
    annotated for both. Scores of a task no doc annotates are None."""
    slots = PRFScore()
    n_intent = n_intent_correct = n_frames = n_frames_correct = 0
    n_slot_docs = 0
    for eg in examples:
        gold_slots = char_spans(eg.reference, spans_key)
        pred_slots = char_spans(eg.predicted, spans_key) or set()
        if gold_slots is not None:
            n_slot_docs += 1
            slots.tp += len(gold_slots & pred_slots)
            slots.fp += len(pred_slots - gold_slots)
            slots.fn += len(gold_slots - pred_slots)
        gold_intent = gold_intents(eg.reference)
        if gold_intent is None:
            continue
        intent_ok = predicted_intents(eg.predicted.cats, multi_label, threshold) == gold_intent
        n_intent += 1
        n_intent_correct += intent_ok
        if gold_slots is not None:
            n_frames += 1
            n_frames_correct += intent_ok and gold_slots == pred_slots
    return {
        "slot_p": slots.precision if n_slot_docs else None,
        "slot_r": slots.recall if n_slot_docs else None,
        "slot_f": slots.fscore if n_slot_docs else None,
        "intent_acc": n_intent_correct / n_intent if n_intent else None,
        "sent_acc": n_frames_correct / n_frames if n_frames else None,
    }
