"""The token loss that slot_intent and ner_re share, taken over a batch's
docs at once, against each token's cross-entropy computed alone."""
import numpy
from thinc.api import NumpyOps

from spacy_mtl.pipeline.util import softmax_per_doc, to_numpy_per_doc, token_cross_entropy


def softmax(row):
    exp = numpy.exp(row - row.max())
    return exp / exp.sum()


def test_token_cross_entropy_averages_over_known_gold_tokens_only():
    ops, rng = NumpyOps(), numpy.random.default_rng(0)
    tag_index = {"O": 0, "B-x": 1, "I-x": 2}
    logits = [rng.normal(size=(n, 3)).astype("float32") for n in (3, 2, 0, 4)]
    # The second doc has no annotation; "B-new" was unseen at initialization.
    tags = [["O", "B-x", "I-x"], [], [], ["B-new", "O", "O", "B-x"]]
    loss, gradients = token_cross_entropy(ops, logits, tags, tag_index)
    known = [
        (d, i, tag_index[tag]) for d, doc_tags in enumerate(tags) for i, tag in enumerate(doc_tags) if tag in tag_index
    ]
    expected_loss = -sum(numpy.log(softmax(logits[d][i])[gold]) for d, i, gold in known) / len(known)
    assert abs(loss - expected_loss) < 1e-5
    assert [g.shape for g in gradients] == [x.shape for x in logits]
    expected = [numpy.zeros_like(x) for x in logits]
    for d, i, gold in known:
        expected[d][i] = (softmax(logits[d][i]) - numpy.eye(3)[gold]) / len(known)
    for gradient, expected_gradient in zip(gradients, expected):
        numpy.testing.assert_allclose(gradient, expected_gradient, atol=1e-6)


def test_per_doc_softmax_and_copies_keep_each_docs_rows():
    ops, rng = NumpyOps(), numpy.random.default_rng(1)
    logits = [rng.normal(size=(n, 4)).astype("float32") for n in (2, 0, 5)]
    probs = to_numpy_per_doc(ops, softmax_per_doc(ops, logits))
    assert [p.shape for p in probs] == [x.shape for x in logits]
    for doc_probs, doc_logits in zip(probs, logits):
        for row_probs, row_logits in zip(doc_probs, doc_logits):
            numpy.testing.assert_allclose(row_probs, softmax(row_logits), rtol=1e-5)
    assert softmax_per_doc(ops, []) == [] and to_numpy_per_doc(ops, []) == []
    assert token_cross_entropy(ops, [], [], {"O": 0}) == (0.0, [])
