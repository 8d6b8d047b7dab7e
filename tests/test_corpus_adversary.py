"""corpus_adversary: its gradient reaches the encoder reversed, the
discriminator learns which corpus a doc is from, it annotates nothing and
leaves a pipeline's outputs unchanged when removed; MultiCorpus names each
doc's corpus."""
import numpy
import pytest
import spacy
from spacy.tokens import DocBin
from spacy.util import fix_random_seed

from pipelines import TRF_MODEL, examples_for, outputs_without, update
from spacy_mtl.convert import read_spert
from spacy_mtl.names import CORPUS_KEY
from spacy_mtl.tiny_encoder import build_tiny_bert
from spacy_mtl.training.corpus import MultiCorpus


@pytest.fixture(scope="module")
def marked_docs(snips_docs, conll04_sample):
    """20 SNIPS-like and 20 CoNLL04-like docs, each marked with its corpus."""
    docs = []
    for corpus, corpus_docs in (("snips", snips_docs[:20]), ("conll04", list(read_spert(conll04_sample[0]))[:20])):
        for doc in corpus_docs:
            doc = doc.copy()
            doc.user_data[CORPUS_KEY] = corpus
            docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def bert(tmp_path_factory, marked_docs):
    return build_tiny_bert(tmp_path_factory.mktemp("adversary_bert"), [doc.text for doc in marked_docs])


def adversary_pipeline(bert, docs, strength: float = 1.0, with_slot_intent: bool = False):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(bert)}})
    if with_slot_intent:
        nlp.add_pipe("slot_intent")
    nlp.add_pipe("corpus_adversary", config={"reversal_strength": strength})
    examples = examples_for(nlp, docs)
    for eg, doc in zip(examples, docs):
        eg.reference.user_data[CORPUS_KEY] = doc.user_data[CORPUS_KEY]
    optimizer = nlp.initialize(lambda: examples)
    return nlp, examples, optimizer


def encoder_gradient(nlp, examples, strength: float) -> numpy.ndarray:
    adversary = nlp.get_pipe("corpus_adversary")
    adversary.reversal_strength = strength
    module = nlp.get_pipe("transformer").model.transformer
    module.zero_grad(set_to_none=True)
    fix_random_seed(0)  # the same dropout masks inside the transformer each time
    nlp.update(examples, drop=0.0, sgd=False)
    gradient = numpy.concatenate([p.grad.numpy().ravel() for p in module.parameters() if p.grad is not None])
    module.zero_grad(set_to_none=True)
    return gradient


def test_the_encoder_gets_the_discriminators_gradient_reversed(bert, marked_docs):
    nlp, examples, _ = adversary_pipeline(bert, marked_docs)
    reversed_ = encoder_gradient(nlp, examples[:16], 1.0)
    plain = encoder_gradient(nlp, examples[:16], -1.0)  # strength -1: the discriminator's own gradient
    assert numpy.linalg.norm(plain) > 0
    numpy.testing.assert_allclose(reversed_, -plain, rtol=1e-4, atol=1e-9)
    numpy.testing.assert_allclose(encoder_gradient(nlp, examples[:16], 0.5), -0.5 * plain, rtol=1e-4, atol=1e-9)
    assert not encoder_gradient(nlp, examples[:16], 0.0).any()


def test_the_discriminator_learns_the_corpora(bert, marked_docs):
    nlp, examples, optimizer = adversary_pipeline(bert, marked_docs, strength=0.0)
    optimizer.learn_rate = 0.003
    history = []
    for _ in range(8):
        losses = {}
        for i in range(0, len(examples), 10):
            update(nlp, examples[i : i + 10], optimizer, losses)
        history.append(losses["corpus_adversary"])
    assert history[-1] < 0.5 * history[0], history
    adversary = nlp.get_pipe("corpus_adversary")
    docs = list(nlp.pipe(doc.text for doc in marked_docs))
    predicted = adversary.model.predict(docs).argmax(axis=1)
    truth = [adversary.labels.index(doc.user_data[CORPUS_KEY]) for doc in marked_docs]
    assert (predicted == numpy.asarray(truth)).mean() > 0.8


def test_it_annotates_nothing_and_removing_it_changes_no_output(bert, marked_docs, tmp_path):
    nlp, examples, optimizer = adversary_pipeline(bert, marked_docs, with_slot_intent=True)
    for i in range(0, len(examples), 10):
        update(nlp, examples[i : i + 10], optimizer)
    with_adversary = outputs_without(nlp, "corpus_adversary", [doc.text for doc in marked_docs], tmp_path)
    assert all(doc["cats"] for doc in with_adversary) and any(doc.get("spans", {}).get("slots") for doc in with_adversary)


def test_a_reversal_strength_schedule_is_read_once_per_update(bert, marked_docs):
    nlp, examples, _ = adversary_pipeline(bert, marked_docs)
    adversary = nlp.get_pipe("corpus_adversary")
    adversary.reversal_strength = iter([0.0, 0.5, 1.0])
    strengths = []
    for _ in range(4):
        nlp.update(examples[:4], drop=0.0, sgd=False)
        strengths.append(adversary.model.get_ref("reversal").attrs["strength"])
    assert strengths == [0.0, 0.5, 1.0, 1.0]


def test_without_two_named_corpora_initialization_says_so(bert, snips_docs):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(bert)}})
    nlp.add_pipe("corpus_adversary")
    examples = examples_for(nlp, snips_docs[:10])
    with pytest.raises(ValueError, match=r"at least two corpora, found none: .*MultiCorpus"):
        nlp.initialize(lambda: examples)


def test_multicorpus_names_each_docs_corpus(snips_docs, cascade_docs, tmp_path):
    DocBin(docs=snips_docs[:5]).to_disk(tmp_path / "a.spacy")
    DocBin(docs=cascade_docs[:7]).to_disk(tmp_path / "b.spacy")
    corpus = MultiCorpus({"snips": {"path": tmp_path / "a.spacy"}, "trees": {"path": tmp_path / "b.spacy"}}, shuffle=False)
    names = [eg.reference.user_data[CORPUS_KEY] for eg in corpus(spacy.blank("en"))]
    assert sorted(names) == ["snips"] * 5 + ["trees"] * 7
