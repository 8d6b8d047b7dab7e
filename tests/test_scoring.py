import pytest
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.vocab import Vocab

from pipelines import load_project_script
from spacy_mtl.scoring import score_cascade, score_slot_intent

WORDS = "flights from boston to new york".split()


def make_doc(vocab, slots=None, cats=None):
    doc = Doc(vocab, words=WORDS)
    if slots is not None:
        doc.spans["slots"] = [Span(doc, s, e, label=label) for s, e, label in slots]
    if cats is not None:
        doc.cats = cats
    return doc


def example(predicted, gold):
    vocab = Vocab()
    return Example(make_doc(vocab, *predicted), make_doc(vocab, *gold))


def test_slots_are_exact_typed_spans():
    gold = ([(2, 3, "from"), (4, 6, "to")], {"flight": 1.0})
    eg = example(([(2, 3, "from"), (4, 5, "to")], {"flight": 0.9, "fare": 0.1}), gold)
    scores = score_slot_intent([eg])
    assert scores["slot_p"] == pytest.approx(0.5)
    assert scores["slot_r"] == pytest.approx(0.5)
    assert scores["intent_acc"] == 1.0
    assert scores["sent_acc"] == 0.0


def test_wrong_type_counts_as_error_and_frame_needs_both():
    gold = ([(2, 3, "from")], {"flight": 1.0})
    wrong_type = example(([(2, 3, "to")], {"flight": 0.9, "fare": 0.1}), gold)
    wrong_intent = example(([(2, 3, "from")], {"flight": 0.2, "fare": 0.8}), gold)
    right = example(([(2, 3, "from")], {"flight": 0.6, "fare": 0.4}), gold)
    scores = score_slot_intent([wrong_type, wrong_intent, right])
    assert scores["slot_f"] == pytest.approx(2 / 3)
    assert scores["intent_acc"] == pytest.approx(2 / 3)
    assert scores["sent_acc"] == pytest.approx(1 / 3)


def test_unannotated_tasks_are_not_scored():
    only_intent = example(([(0, 1, "x")], {"flight": 0.9, "fare": 0.1}), (None, {"flight": 1.0}))
    only_slots = example(([(2, 3, "from")], {"fare": 0.9}), ([(2, 3, "from")], None))
    scores = score_slot_intent([only_intent, only_slots])
    assert scores["slot_f"] == 1.0  # the spurious span of the intent-only doc is not counted
    assert scores["intent_acc"] == 1.0  # the slot-only doc has no intent to get wrong
    assert scores["sent_acc"] is None  # no doc annotates both
    assert score_slot_intent([only_intent])["slot_f"] is None


def test_multi_intent_labels():
    gold = ([], {"airfare#flight": 1.0})
    single = example(([], {"flight#airfare": 0.7, "flight": 0.3}), gold)
    assert score_slot_intent([single])["intent_acc"] == 1.0  # order of the parts does not matter
    multi = example(([], {"flight": 0.9, "airfare": 0.6, "meal": 0.1}), gold)
    assert score_slot_intent([multi], multi_label=True)["intent_acc"] == 1.0
    assert score_slot_intent([multi], multi_label=True, threshold=0.7)["intent_acc"] == 0.0
    assert score_slot_intent([multi], multi_label=False)["intent_acc"] == 0.0


def relation_doc(vocab, ents, relations):
    from spacy_mtl.relations import Relation

    doc = Doc(vocab, words="John Smith works for Acme in Boston".split())
    doc.set_ents([Span(doc, s, e, label=label) for s, e, label in ents], default="outside")
    by_start = {ent.start: ent for ent in doc.ents}
    doc._.relations = [Relation(by_start[h], by_start[t], label) for h, t, label in relations]
    return doc


def test_strict_and_boundary_relation_scores_differ_on_entity_types():
    from spacy_mtl.scoring import score_entities_relations

    vocab = Vocab()
    gold_ents = [(0, 2, "Peop"), (4, 5, "Org"), (6, 7, "Loc")]
    gold = relation_doc(vocab, gold_ents, [(0, 4, "Work_For"), (4, 6, "OrgBased_In")])
    # Right spans and labels, but Acme typed Loc: strict misses both relations.
    wrong_type = [(0, 2, "Peop"), (4, 5, "Loc"), (6, 7, "Loc")]
    predicted = relation_doc(vocab, wrong_type, [(0, 4, "Work_For"), (4, 6, "OrgBased_In")])
    scores = score_entities_relations([Example(predicted, gold)])
    assert scores["rel_micro_f"] == 0.0
    assert scores["rel_boundaries_f"] == 1.0
    assert scores["ents_f"] == pytest.approx(2 / 3)
    assert scores["ents_per_type"] == {
        "Loc": {"p": 0.5, "r": 1.0, "f": pytest.approx(2 / 3)},
        "Org": {"p": 0.0, "r": 0.0, "f": 0.0},
        "Peop": {"p": 1.0, "r": 1.0, "f": 1.0},
    }
    # One of two relations right: micro 0.5 recall; macro averages per label (1.0 and 0.0).
    half = relation_doc(vocab, gold_ents, [(0, 4, "Work_For"), (6, 4, "OrgBased_In")])
    scores = score_entities_relations([Example(half, gold)])
    assert scores["rel_micro_p"] == 0.5 and scores["rel_micro_r"] == 0.5
    assert scores["rel_macro_f"] == pytest.approx(0.5)
    assert scores["rel_per_type"] == {
        "OrgBased_In": {"p": 0.0, "r": 0.0, "f": 0.0},
        "Work_For": {"p": 1.0, "r": 1.0, "f": 1.0},
    }


def test_relations_match_by_characters_across_tokenizations():
    from spacy_mtl.relations import Relation
    from spacy_mtl.scoring import score_entities_relations

    vocab = Vocab()
    gold = relation_doc(vocab, [(0, 2, "Peop"), (4, 5, "Org")], [(0, 4, "Work_For")])
    merged = Doc(vocab, words=["John Smith", "works", "for", "Acme", "in", "Boston"])
    merged.set_ents([Span(merged, 0, 1, label="Peop"), Span(merged, 3, 4, label="Org")], default="outside")
    merged._.relations = [Relation(merged.ents[0], merged.ents[1], "Work_For")]
    assert merged.text == gold.text
    scores = score_entities_relations([Example(merged, gold)])
    assert scores["rel_micro_f"] == 1.0 and scores["ents_f"] == 1.0
    shifted = relation_doc(vocab, [(1, 2, "Peop"), (4, 5, "Org")], [(1, 4, "Work_For")])
    assert score_entities_relations([Example(shifted, gold)])["rel_micro_f"] == 0.0


def test_relation_errors_tell_a_missing_entity_from_a_missed_pair():
    count_errors = load_project_script("relation_errors").count_errors
    vocab = Vocab()
    gold_ents = [(0, 2, "Peop"), (4, 5, "Org"), (6, 7, "Loc")]
    gold = relation_doc(vocab, gold_ents, [(0, 4, "Work_For"), (4, 6, "OrgBased_In"), (0, 6, "Live_In")])
    # Work_For found; Boston typed Org, so both relations to it lack an entity.
    lost_tail = relation_doc(vocab, [(0, 2, "Peop"), (4, 5, "Org"), (6, 7, "Org")], [(0, 4, "Work_For")])
    # Every entity right: Work_For given another label, OrgBased_In not found, Live_In found.
    right_ents = relation_doc(vocab, gold_ents, [(0, 4, "Live_In"), (0, 6, "Live_In")])
    counts = count_errors([lost_tail, right_ents], [gold, gold])
    assert dict(counts["Work_For"]) == {"gold": 2, "found": 1, "missed_pair": 1, "other_label": 1}
    assert dict(counts["OrgBased_In"]) == {"gold": 2, "missed_entity": 1, "missed_pair": 1}
    assert dict(counts["Live_In"]) == {"gold": 2, "found": 1, "missed_entity": 1, "false_positive": 1}


# "A wheel-chair rolls": words, heads, deps, tags.
WHEELCHAIR = (["A", "wheel-chair", "rolls"], [1, 2, 2], ["det", "nsubj", "ROOT"], ["DT", "NN", "VBZ"])


def parsed(vocab, words, heads, deps, tags):
    return Doc(vocab, words=words, heads=heads, deps=deps, tags=tags)


def test_a_gold_token_split_by_the_tokenizer_counts_as_wrong():
    """Gold "wheel-chair" is one token, the prediction has three: its tag and
    arc are wrong, and so is the arc of "A", whose head it is. The other tag
    and arc are right."""
    vocab = Vocab()
    gold = parsed(vocab, *WHEELCHAIR)
    predicted = parsed(
        vocab, ["A", "wheel", "-", "chair", "rolls"], [3, 3, 3, 4, 4],
        ["det", "compound", "punct", "nsubj", "ROOT"], ["DT", "NN", "HYPH", "NN", "VBZ"],
    )
    scores = score_cascade([Example(predicted, gold)])
    assert scores["tag_acc"] == pytest.approx(2 / 3)
    assert scores["dep_uas"] == pytest.approx(1 / 3) and scores["dep_las"] == pytest.approx(1 / 3)
    same = score_cascade([Example(parsed(vocab, *WHEELCHAIR), gold)])
    assert same["tag_acc"] == same["dep_uas"] == same["dep_las"] == 1.0
