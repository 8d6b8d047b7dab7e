"""Inference on awkward input, for every component of a pipeline that holds
all three on one transformer."""
import numpy
import pytest
import spacy

from spacy_mtl.trees import find_cycle

pytestmark = pytest.mark.slow  # trains a pipeline of all three components

LONG_DOC_TOKENS = 10_000
CASES = {
    "empty": "",
    "whitespace": "  \n\t  ",
    "one_token": "Hello",
    "emoji": "Book 2 🍕🍕 for me 🚀 in Paris 😀!!",
    "right_to_left": "مرحبا بالعالم من القاهرة ושלום מתל אביב",
    "cjk": "我爱北京天安门。東京は大きい都市です。서울에 갑니다",
    "control_characters": "play\x00 some\x07 jazz\u200b by Miles\x1b Davis\r\nnow",
    "long_document": " ".join(["Smith flew from Boston to Denver on Monday ."] * (LONG_DOC_TOKENS // 9 + 1)),
    "long_sentence": " ".join(["the old man saw a dog"] * 120),
}


@pytest.fixture(scope="module")
def all_in_one(all_in_one_path):
    return spacy.load(all_in_one_path)


@pytest.fixture(scope="module")
def outputs(all_in_one):
    texts = list(CASES.values())
    return dict(zip(CASES, all_in_one.pipe(texts, batch_size=4)))


@pytest.fixture(scope="module")
def every_pair_outputs(all_in_one):
    """Each case's doc with a relation threshold of 0: every candidate pair of
    entities carries every relation label, so the checks on relations always
    have some to check. The long document is left out: at threshold 0 its
    relations would number about a million."""
    cases = {name: text for name, text in CASES.items() if name != "long_document"}
    ner_re = all_in_one.get_pipe("ner_re")
    ner_re.cfg["threshold"] = 0.0
    try:
        return dict(zip(cases, all_in_one.pipe(cases.values(), batch_size=4)))
    finally:
        ner_re.cfg["threshold"] = 0.5


def test_long_document_is_that_long(outputs):
    assert len(outputs["long_document"]) > LONG_DOC_TOKENS


@pytest.mark.parametrize("case", CASES)
def test_slot_intent(outputs, case):
    doc = outputs[case]
    spans = doc.spans["slots"]
    assert all(0 <= span.start < span.end <= len(doc) for span in spans)
    if doc.text.strip():
        assert abs(sum(doc.cats.values()) - 1.0) < 1e-4


@pytest.mark.parametrize("case", CASES)
def test_ner_re(all_in_one, outputs, every_pair_outputs, case):
    doc = every_pair_outputs.get(case, outputs[case])
    entities = {(ent.start, ent.end, ent.label_) for ent in doc.ents}
    if case in every_pair_outputs:
        ner_re = all_in_one.get_pipe("ner_re")
        n_pairs = len(ner_re.candidate_pairs(sorted(entities)))
        assert len(doc._.relations) == n_pairs * len(ner_re.relation_labels)
    for relation in doc._.relations:
        assert (relation.head.start, relation.head.end, relation.head.label_) in entities
        assert (relation.tail.start, relation.tail.end, relation.tail.label_) in entities
        assert 0.0 <= relation.score <= 1.0


def test_relations_are_checked_somewhere(every_pair_outputs):
    assert sum(len(doc._.relations) for doc in every_pair_outputs.values()) > 0


@pytest.mark.parametrize("case", CASES)
def test_cascade(outputs, case):
    doc = outputs[case]
    assert all(token.tag_ for token in doc if not token.is_space) or not len(doc)
    assert all(0 <= span.start < span.end <= len(doc) for span in doc.spans["chunks"])
    for sent in doc.sents if len(doc) else []:
        heads = numpy.array([0] + [0 if t.head.i == t.i else t.head.i - sent.start + 1 for t in sent])
        assert ((heads >= 0) & (heads <= len(sent))).all(), "a head outside its sentence"
        assert (heads[1:] == 0).sum() == 1 and find_cycle(heads) is None


def test_ner_re_with_no_or_one_entity(all_in_one):
    ner_re = all_in_one.get_pipe("ner_re")
    none = ner_re.candidate_pairs([])
    one = ner_re.candidate_pairs([(0, 2, "Peop")])
    assert none.shape[0] == 0 and one.shape[0] == 0
    with all_in_one.select_pipes(enable=["transformer", "ner_re"]):
        ner_re.cfg["relations_only"] = True
        try:
            doc = all_in_one.make_doc("John Smith lives in Boston")
            doc.set_ents([spacy.tokens.Span(doc, 0, 2, label="Peop")])
            doc = all_in_one(doc)
        finally:
            ner_re.cfg["relations_only"] = False
    assert doc._.relations == [] and [e.text for e in doc.ents] == ["John Smith"]
