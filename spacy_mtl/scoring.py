"""The metrics of spacy-mtl, shared by the components and the CLI.

Every score is computed only on the docs whose reference annotates that task
(a doc from a corpus without slots is not counted as "no slots")."""
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

from spacy.scorer import PRFScore
from spacy.tokens import Doc, Token
from spacy.training import Example

from .names import CHUNKS_KEY, SLOTS_KEY
from .relations import get_relation_rows, has_relations_annotation

INTENT_SEPARATOR = "#"

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


def count_matches(score: PRFScore, gold: Set, predicted: Set) -> None:
    score.tp += len(gold & predicted)
    score.fp += len(predicted - gold)
    score.fn += len(gold - predicted)


def count_matches_per_label(per_label: Dict[str, PRFScore], gold: Set[tuple], predicted: Set[tuple]) -> None:
    """count_matches for each label, the last field of every tuple."""
    for row in gold | predicted:
        score = per_label.setdefault(row[-1], PRFScore())
        score.tp += row in gold and row in predicted
        score.fp += row in predicted and row not in gold
        score.fn += row in gold and row not in predicted


def per_label_dicts(per_label: Dict[str, PRFScore]) -> Dict[str, Dict[str, float]]:
    return {label: per_label[label].to_dict() for label in sorted(per_label)}


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
            count_matches(slots, gold_slots, pred_slots)
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




def relation_tuples(doc: Doc, typed: bool) -> Set[tuple]:
    """Relations as comparable tuples: character spans of head and tail, their
    entity types when `typed` (strict RE+), and the relation label."""
    tuples = set()
    for hs, he, head_label, ts, te, tail_label, label, _ in get_relation_rows(doc):
        head = char_offsets(doc, hs, he) + ((head_label,) if typed else ())
        tail = char_offsets(doc, ts, te) + ((tail_label,) if typed else ())
        tuples.add((head, tail, label))
    return tuples


def char_offsets(doc: Doc, start: int, end: int) -> Tuple[int, int]:
    """A token span's character offsets, as Span.start_char and end_char."""
    last = doc[end - 1]
    return doc[start].idx, last.idx + len(last)


def score_entities_relations(examples: Iterable[Example], **kwargs) -> Dict[str, Any]:
    """ents_p/r/f: micro over exact typed entity spans, on docs annotated for
    entities. rel_micro_p/r/f: strict RE+ (both spans and types, and the
    label, right); rel_macro_f: mean of per-label strict F; rel_boundaries_f:
    as micro, ignoring entity types; rel_per_type and ents_per_type: P/R/F
    per relation label (strict) and per entity type, as spaCy's
    ents_per_type. Relations are scored end to end, on the predicted
    entities, on docs annotated for relations."""
    ents = PRFScore()
    strict, boundaries = PRFScore(), PRFScore()
    per_entity_type: Dict[str, PRFScore] = {}
    per_label: Dict[str, PRFScore] = {}
    n_ent_docs = n_rel_docs = 0
    for eg in examples:
        if eg.reference.has_annotation("ENT_IOB"):
            n_ent_docs += 1
            gold = {(e.start_char, e.end_char, e.label_) for e in eg.reference.ents}
            pred = {(e.start_char, e.end_char, e.label_) for e in eg.predicted.ents}
            count_matches(ents, gold, pred)
            count_matches_per_label(per_entity_type, gold, pred)
        if not has_relations_annotation(eg.reference):
            continue
        n_rel_docs += 1
        for typed, score in ((True, strict), (False, boundaries)):
            gold, pred = relation_tuples(eg.reference, typed), relation_tuples(eg.predicted, typed)
            count_matches(score, gold, pred)
            if typed:
                count_matches_per_label(per_label, gold, pred)
    scores: Dict[str, Any] = dict.fromkeys(
        ["ents_p", "ents_r", "ents_f", "rel_micro_p", "rel_micro_r", "rel_micro_f", "rel_macro_f", "rel_boundaries_f"]
    )
    if n_ent_docs:
        scores["ents_p"], scores["ents_r"], scores["ents_f"] = ents.precision, ents.recall, ents.fscore
        scores["ents_per_type"] = per_label_dicts(per_entity_type)
    if n_rel_docs:
        scores["rel_micro_p"], scores["rel_micro_r"], scores["rel_micro_f"] = strict.precision, strict.recall, strict.fscore
        scores["rel_boundaries_f"] = boundaries.fscore
        scores["rel_macro_f"] = sum(s.fscore for s in per_label.values()) / len(per_label) if per_label else 0.0
        scores["rel_per_type"] = per_label_dicts(per_label)
    return scores


def score_cascade(
    examples: Iterable[Example],
    *,
    chunks_key: str = CHUNKS_KEY,
    levels: Iterable[str] = ("tag", "pos", "chunk", "dep"),
    **kwargs,
) -> Dict[str, Optional[float]]:
    """tag_acc (PTB tags) and pos_acc (UPOS) over gold tokens with a tag;
    chunk_f over typed chunk spans; dep_uas / dep_las over every gold token of
    docs with a gold tree, punctuation included. Each on annotated docs only,
    and only for the levels the pipeline predicts (None for the others). On a
    tokenization other than the gold one, a gold token without a predicted
    token of its own counts as wrong."""
    levels = set(levels)
    counts = {"tag": [0, 0], "pos": [0, 0], "uas": [0, 0], "las": [0, 0]}
    chunks = PRFScore()
    n_chunk_docs = 0
    for eg in examples:
        own = None  # aligned only for a doc whose tags or tree are scored
        for attr, key in (("TAG", "tag"), ("POS", "pos")):
            if key in levels and eg.reference.has_annotation(attr):
                own = own or own_predicted_tokens(eg)
                _count_tags(counts[key], eg.reference, own, f"{key}_")
        gold_chunks = char_spans(eg.reference, chunks_key) if "chunk" in levels else None
        if gold_chunks is not None:
            n_chunk_docs += 1
            count_matches(chunks, gold_chunks, char_spans(eg.predicted, chunks_key) or set())
        if "dep" in levels and eg.reference.has_annotation("DEP"):
            _count_arcs(counts, eg.reference, own or own_predicted_tokens(eg))

    def accuracy(key: str) -> Optional[float]:
        correct, total = counts[key]
        return correct / total if total else None

    return {
        "tag_acc": accuracy("tag"),
        "pos_acc": accuracy("pos"),
        "chunk_p": chunks.precision if n_chunk_docs else None,
        "chunk_r": chunks.recall if n_chunk_docs else None,
        "chunk_f": chunks.fscore if n_chunk_docs else None,
        "dep_uas": accuracy("uas"),
        "dep_las": accuracy("las"),
    }


def _count_tags(count: List[int], reference: Doc, own: List[Optional[Token]], tag_attr: str) -> None:
    """tag_attr: "tag_" or "pos_"."""
    for gold, predicted in zip(reference, own):
        gold_tag = getattr(gold, tag_attr)
        if gold_tag:
            count[0] += predicted is not None and getattr(predicted, tag_attr) == gold_tag
            count[1] += 1


def _count_arcs(counts: Dict[str, List[int]], reference: Doc, own: List[Optional[Token]]) -> None:
    gold_of = {token.i: gold.i for gold, token in zip(reference, own) if token is not None}
    for gold, predicted in zip(reference, own):
        if gold.dep == 0:  # no gold arc (a doc without a tree has none)
            continue
        head_ok = predicted is not None and gold_of.get(predicted.head.i) == gold.head.i
        counts["uas"][0] += head_ok
        counts["las"][0] += head_ok and predicted.dep_.lower() == gold.dep_.lower()
        counts["uas"][1] += 1
        counts["las"][1] += 1


def own_predicted_tokens(eg: Example) -> List[Optional[Token]]:
    """Per gold token, the predicted token aligned to it alone and it to that
    token alone; None where the two tokenizations cut the text differently."""
    gold_to_predicted, predicted_to_gold = eg.alignment.y2x, eg.alignment.x2y
    own = []
    for i in range(len(eg.reference)):
        aligned = gold_to_predicted[i] if gold_to_predicted.lengths[i] == 1 else ()
        one_to_one = len(aligned) == 1 and predicted_to_gold.lengths[aligned[0]] == 1
        own.append(eg.predicted[int(aligned[0])] if one_to_one else None)
    return own
