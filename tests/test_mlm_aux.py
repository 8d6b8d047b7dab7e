"""mlm_aux: the masked-LM loss falls as it trains, its gradient reaches the
shared encoder, it reads a text file when given one (and names a missing or
empty one), and removing it from a trained pipeline changes no output."""
import numpy
import pytest
import spacy
from spacy.util import fix_random_seed

from pipelines import TRF_MODEL, examples_for, outputs_without, update

TINY_HEAD = {"@architectures": "spacy_mtl.MaskedLMHead.v1", "hidden_width": 32}


def mlm_pipeline(tiny_bert, docs, with_slot_intent: bool = False, **settings):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(tiny_bert)}})
    if with_slot_intent:
        nlp.add_pipe("slot_intent")
    nlp.add_pipe("mlm_aux", config={"model": TINY_HEAD, **settings})
    examples = examples_for(nlp, docs)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.003
    return nlp, examples, optimizer


def test_the_masked_lm_loss_falls(tiny_bert, snips_docs):
    nlp, examples, optimizer = mlm_pipeline(tiny_bert, snips_docs[:40], texts_per_update=10)
    history = []
    for _ in range(12):
        losses = {}
        for i in range(0, len(examples), 10):
            update(nlp, examples[i : i + 10], optimizer, losses)
        history.append(losses["mlm_aux"])
    assert numpy.mean(history[-3:]) < 0.8 * numpy.mean(history[:3]), history


def test_its_gradient_reaches_the_encoder_scaled_by_its_weight(tiny_bert, snips_docs):
    def encoder_gradient_norm(weight: float) -> float:
        nlp, examples, _ = mlm_pipeline(tiny_bert, snips_docs[:10], mlm_weight=weight)
        with nlp.select_pipes(enable=["mlm_aux"]):
            fix_random_seed(1)
            nlp.update(examples, sgd=False)
        module = nlp.get_pipe("transformer").model.transformer
        return float(sum((p.grad**2).sum() for p in module.parameters() if p.grad is not None)) ** 0.5

    full, half = encoder_gradient_norm(1.0), encoder_gradient_norm(0.5)
    assert full > 0
    assert half == pytest.approx(0.5 * full, rel=1e-4)
    assert encoder_gradient_norm(0.0) == 0.0


def test_texts_come_from_a_file_when_given(tiny_bert, snips_docs, tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(doc.text for doc in snips_docs[:30]) + "\n\n")
    nlp, examples, _ = mlm_pipeline(tiny_bert, snips_docs[:10], texts_path=str(path), texts_per_update=4)
    mlm = nlp.get_pipe("mlm_aux")
    assert mlm._texts(examples[:1]) == [doc.text.strip() for doc in snips_docs[:4]]
    losses = {}
    empty = examples_for(nlp, [spacy.blank("en")("")])
    with nlp.select_pipes(enable=["mlm_aux"]):
        nlp.update(empty, sgd=False, losses=losses)
    assert losses["mlm_aux"] > 0  # the file's texts, though the batch has none


@pytest.mark.parametrize("content, message", [(None, "no such file"), ("\n  \n", "holds no text")])
def test_a_missing_or_empty_text_file_is_an_error_at_initialization(tiny_bert, snips_docs, tmp_path, content, message):
    path = tmp_path / "texts.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=rf"\[mlm_aux\] texts_path {path}: {message}"):
        mlm_pipeline(tiny_bert, snips_docs[:10], texts_path=str(path))


def test_a_head_of_another_width_is_named(tiny_bert, snips_docs):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(tiny_bert)}})
    nlp.add_pipe("mlm_aux")
    examples = examples_for(nlp, snips_docs[:5])
    with pytest.raises(ValueError, match=r"hidden_width 384 does not match the hidden size of 'transformer' \(32\)"):
        nlp.initialize(lambda: examples)


def test_removing_it_changes_no_output(tiny_bert, snips_docs, tmp_path):
    nlp, examples, optimizer = mlm_pipeline(tiny_bert, snips_docs[:30], with_slot_intent=True)
    for i in range(0, len(examples), 10):
        update(nlp, examples[i : i + 10], optimizer)
    with_mlm = outputs_without(nlp, "mlm_aux", [doc.text for doc in snips_docs[30:45]], tmp_path)
    assert all(doc["cats"] for doc in with_mlm)
