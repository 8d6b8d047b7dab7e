"""The `cascade` component: tags -> chunks -> trees, trained on corpora that
each annotate only some levels."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc
from thinc.api import Adam

from pipelines import TRF_MODEL, examples_for, train, update
from spacy_mtl.ml.cascade import _packed_casing, doc_segments
from spacy_mtl.ml.casing import LOWER, MIXED, NO_LETTERS, SENTENCE_START, TITLE, UPPER, casing_class, docs_casing_ids
from spacy_mtl.trees import find_cycle
from spacy_mtl.training.corpus import remove_annotation

FLAT = {"inputs": {"tag": [], "chunk": [], "dep": []}, "layers": {"tag": -1, "chunk": -1, "dep": -1}}


def make_cascade_nlp(bert, all_layers=True, **model_config) -> spacy.Language:
    nlp = spacy.blank("en")
    transformer = {**TRF_MODEL, "name": str(bert)}
    if all_layers:
        transformer["@architectures"] = "spacy_mtl.AllLayersTransformerModel.v1"
        # The tiny BERT: embeddings + 2 layers.
        model_config = {"n_hidden_states": 3, "layers": {"tag": "mix", "chunk": "mix", "dep": "mix"}, **model_config}
    nlp.add_pipe("transformer", config={"model": transformer})
    nlp.add_pipe("cascade", config={"model": model_config})
    return nlp


def cascade_examples(nlp, docs):
    """Examples on untokenized-looking input: words and spaces only."""
    return examples_for(nlp, docs)


def is_tree(doc: Doc) -> bool:
    heads = numpy.array([0] + [0 if t.head.i == t.i else t.head.i + 1 for t in doc])
    return (heads[1:] == 0).sum() == 1 and find_cycle(heads) is None


WITH_UPOS = {
    "levels": ["tag", "pos", "chunk", "dep"],
    "inputs": {"tag": [], "pos": ["tag"], "chunk": ["tag"], "dep": ["tag", "chunk"]},
    "layers": {"tag": "mix", "pos": "mix", "chunk": "mix", "dep": "mix"},
}


@pytest.fixture(scope="module")
def trained(cascade_bert, cascade_docs):
    nlp = make_cascade_nlp(cascade_bert, **WITH_UPOS)
    examples = cascade_examples(nlp, cascade_docs)
    history = train(nlp, examples, n_epochs=30)
    return nlp, history


@pytest.mark.slow
def test_learns_tags_chunks_and_trees(trained, cascade_docs):
    nlp, history = trained
    for level in ("tag", "pos", "chunk", "dep"):
        assert history[-1][f"cascade:{level}"] < 0.3 * history[0][f"cascade:{level}"]
    scores = nlp.evaluate(examples_for(nlp, cascade_docs))
    assert scores["tag_acc"] > 0.9
    assert scores["pos_acc"] > 0.9  # UPOS: EWT's half of the docs only
    assert scores["chunk_f"] > 0.85
    assert scores["dep_uas"] > 0.85 and scores["dep_las"] > 0.8


def test_predicts_well_formed_trees(trained, cascade_docs):
    nlp, _ = trained
    texts = [doc.text for doc in cascade_docs] + ["A sentence the model never saw , with commas , and more words than most ."]
    for doc in nlp.pipe(texts):
        assert all(token.tag_ and token.pos_ for token in doc)
        assert is_tree(doc) or len(list(doc.sents)) > 1
        for sent in doc.sents:
            assert sum(token.dep_ == "ROOT" for token in sent) == 1


@pytest.mark.slow
def test_round_trips_and_processes_give_identical_predictions(trained, cascade_docs, tmp_path):
    nlp, _ = trained
    texts = [doc.text for doc in cascade_docs[:8]]

    def annotations(docs):
        return [([(t.tag_, t.pos_, t.head.i, t.dep_) for t in doc], [(s.start, s.end, s.label_) for s in doc.spans["chunks"]]) for doc in docs]

    expected = annotations(nlp.pipe(texts))
    assert annotations(nlp.pipe(texts, n_process=2, batch_size=2)) == expected
    nlp.to_disk(tmp_path / "model")
    assert annotations(spacy.load(tmp_path / "model").pipe(texts)) == expected
    from_bytes = spacy.blank("en").from_config(nlp.config)
    assert annotations(from_bytes.from_bytes(nlp.to_bytes()).pipe(texts)) == expected


def test_loads_a_pipeline_saved_before_casing_existed(trained, cascade_docs, tmp_path):
    """Its model's stored spec has no casing_width: it loads and predicts
    as before, without casing."""
    nlp, _ = trained
    texts = [doc.text for doc in cascade_docs[:4]]
    expected = [[(t.tag_, t.head.i, t.dep_) for t in doc] for doc in nlp.pipe(texts)]
    spec = nlp.get_pipe("cascade").model.attrs["spec"]
    casing_width = spec.pop("casing_width")
    try:
        nlp.to_disk(tmp_path / "model")
    finally:
        spec["casing_width"] = casing_width
    loaded = spacy.load(tmp_path / "model")
    assert "casing_width" not in loaded.get_pipe("cascade").model.attrs["spec"]
    assert [[(t.tag_, t.head.i, t.dep_) for t in doc] for doc in loaded.pipe(texts)] == expected


@pytest.mark.slow
@pytest.mark.parametrize("feeding", [True, False])
def test_trains_with_and_without_label_feeding(cascade_bert, cascade_docs, feeding):
    config = {"inputs": {"tag": [], "chunk": ["tag"], "dep": ["tag", "chunk"]}} if feeding else FLAT
    nlp = make_cascade_nlp(cascade_bert, all_layers=feeding, **config)
    history = train(nlp, examples_for(nlp, cascade_docs), n_epochs=6)
    assert history[-1]["cascade"] < 0.7 * history[0]["cascade"]
    heads = nlp.get_pipe("cascade").model.get_ref("heads").shims[0]._model
    assert bool(heads.label_embeddings) == feeding


@pytest.mark.parametrize("text,expected", [
    ("apple", LOWER), ("Apple", TITLE), ("A", TITLE), ("IBM", UPPER), ("U.S.", UPPER),
    ("iPhone", MIXED), ("McDonald", MIXED), ("1999", NO_LETTERS), (",", NO_LETTERS), ("3D", TITLE),
])
def test_casing_class(text, expected):
    assert casing_class(text) == expected


def test_the_casing_of_packed_segments_marks_each_segment_start():
    """Sentences, a long sentence cut in two, and a doc without boundaries:
    the first token of each segment counts as a sentence start."""
    vocab = spacy.blank("en").vocab
    with_sents = Doc(vocab, words=["We", "saw", "IBM", "there", "Then", "left", "."], sent_starts=[1, 0, 0, 0, 1, 0, 0])
    without = Doc(vocab, words=["apple", "Pie", "."])
    docs = [with_sents, Doc(vocab, words=[]), without]
    segments = doc_segments(docs, max_length=3)
    assert segments == [(0, 0, 3), (0, 3, 4), (0, 4, 7), (2, 0, 3)]
    lengths = numpy.asarray([end - start for _, start, end in segments])
    start = SENTENCE_START
    expected = [TITLE + start, LOWER, UPPER, LOWER + start, TITLE + start, LOWER, NO_LETTERS, LOWER + start, TITLE, NO_LETTERS]
    assert _packed_casing(docs, lengths, {"casing_width": 8}).tolist() == expected
    assert _packed_casing(docs, lengths, {}).tolist() == [0] * len(expected)


def test_the_casing_ids_of_a_batch_mark_each_doc_and_sentence_start():
    """The casing ids of WithCasing: a batch's docs, one with sentence
    boundaries and an empty one, each start a sentence; a word repeated
    across docs keeps its class."""
    vocab = spacy.blank("en").vocab
    docs = [
        Doc(vocab, words=["We", "saw", "IBM", "Then", "IBM", "left"], sent_starts=[1, 0, 0, 1, 0, 0]),
        Doc(vocab, words=[]),
        Doc(vocab, words=["IBM", "iPhone", "1999"]),
    ]
    start = SENTENCE_START
    assert [ids.tolist() for ids in docs_casing_ids(docs)] == [
        [TITLE + start, LOWER, UPPER, TITLE + start, UPPER, LOWER], [], [UPPER + start, MIXED, NO_LETTERS],
    ]
    assert docs_casing_ids([]) == []


def casing_docs(vocab) -> list:
    """Pairs of sentences that differ only in the case of one word, tagged
    NNP when capitalized: an uncased encoder sees each pair as one input."""
    docs = []
    for name in ("apple", "amazon", "shell", "target", "visa"):
        for word, tag in ((name, "NN"), (name.title(), "NNP")):
            words = ["we", "saw", word, "there", "."]
            docs.append(Doc(vocab, words=words, tags=["PRP", "VBD", tag, "RB", "."]))
    return docs


@pytest.mark.parametrize("casing_width", [0, 8])
def test_casing_feature_tells_apart_what_an_uncased_encoder_cannot(cascade_bert, casing_width):
    nlp = make_cascade_nlp(cascade_bert, all_layers=False, levels=["tag"], casing_width=casing_width)
    docs = casing_docs(nlp.vocab)
    train(nlp, examples_for(nlp, docs), n_epochs=30)
    predicted = [doc[2].tag_ for doc in nlp.pipe([doc.text for doc in docs])]
    n_right = sum(p == doc[2].tag_ for p, doc in zip(predicted, docs))
    if casing_width:
        assert n_right == len(docs)
    else:
        # Same input ids, same prediction: one of each pair is wrong.
        assert predicted[0::2] == predicted[1::2] and n_right <= len(docs) // 2


def encoder_parameters(nlp):
    return dict(nlp.get_pipe("transformer").model.transformer.named_parameters())


def encoder_change(nlp, examples, weights) -> dict:
    """Per encoder parameter, how far one update moves it (a fresh Adam
    without weight decay moves a weight only if it has a gradient)."""
    nlp.get_pipe("cascade").cfg.update({f"{level}_weight": w for level, w in weights.items()})
    before = {name: p.detach().clone() for name, p in encoder_parameters(nlp).items()}
    update(nlp, examples, Adam(0.001, L2=0.0))
    return {name: float((p.detach() - before[name]).abs().sum()) for name, p in encoder_parameters(nlp).items()}


def test_mixed_batch_gives_encoder_gradient_from_every_level(trained, cascade_docs):
    """Chunk-only and tree-only docs in one batch: each level alone moves
    the encoder, through the docs that annotate it; a level whose
    annotation the batch lacks sends nothing."""
    nlp, _ = trained
    examples = examples_for(nlp, cascade_docs[15:25])  # 5 EWT, 5 CoNLL-2000
    losses = {}
    update(nlp, examples, Adam(0.0), losses)
    levels = ("tag", "pos", "chunk", "dep")
    assert all(losses[f"cascade:{level}"] > 0 for level in levels)
    for level in levels:
        weights = {name: float(name == level) for name in levels}
        assert sum(encoder_change(nlp, examples, weights).values()) > 0, level
    trees_only = examples_for(nlp, cascade_docs[:5])
    chunks_only = {name: float(name == "chunk") for name in levels}
    assert sum(encoder_change(nlp, trees_only, chunks_only).values()) == 0.0
    nlp.get_pipe("cascade").cfg.update({f"{level}_weight": 1.0 for level in levels})


def test_all_layers_encoder_trains_the_layer_a_level_reads(cascade_bert, cascade_docs):
    """Every level reads hidden state 1 (the first layer's output): the
    gradient reaches that layer and the embeddings, and not the last layer,
    which no level reads."""
    nlp = make_cascade_nlp(cascade_bert, layers={"tag": 1, "chunk": 1, "dep": 1})
    examples = examples_for(nlp, cascade_docs[15:25])
    nlp.initialize(lambda: examples)
    update(nlp, examples, Adam(0.001))  # zero-initialized output layers: the second step has gradient
    change = encoder_change(nlp, examples, {"tag": 1.0, "chunk": 1.0, "dep": 1.0})
    first, last = "encoder.layer.0.", "encoder.layer.1."
    assert sum(v for k, v in change.items() if k.startswith(first)) > 0
    assert sum(v for k, v in change.items() if k.startswith("embeddings.")) > 0
    assert sum(v for k, v in change.items() if k.startswith(last)) == 0


def test_missing_levels_are_not_negatives(trained, cascade_docs):
    """A CoNLL-2000 doc has no tree: the parser gets no loss from it."""
    nlp, _ = trained
    chunk_docs = examples_for(nlp, cascade_docs[20:30])
    losses = {}
    update(nlp, chunk_docs, Adam(0.0), losses)
    assert losses["cascade:dep"] == 0.0 and losses["cascade:chunk"] > 0
    ewt = examples_for(nlp, [doc.copy() for doc in cascade_docs[:5]])  # not the shared docs
    for eg in ewt:
        remove_annotation(eg, ["tag", "dep"])
    losses = {}
    update(nlp, ewt, Adam(0.0), losses)
    assert losses == {**losses, "cascade:tag": 0.0, "cascade:chunk": 0.0, "cascade:dep": 0.0}


def test_inference_edge_cases(trained):
    nlp, _ = trained
    assert len(nlp("")) == 0
    one = nlp("Hello")
    assert one[0].head.i == 0 and one[0].dep_ == "ROOT"
    docs = list(nlp.pipe(["", "Two words", "   "]))
    assert docs[1][0].tag_ and is_tree(docs[1])
    # A doc without sentence boundaries, longer than a segment: one tree per window.
    long_text = " ".join(["the cat sat on the mat ."] * 60)
    doc = nlp(long_text)
    assert all(token.tag_ for token in doc)
    assert len(list(doc.sents)) == -(-len(doc) // 256)


def test_a_long_document_is_scored_in_passes_with_the_same_annotations(trained, monkeypatch):
    from spacy_mtl.ml import cascade

    nlp, _ = trained
    text = " ".join(["the cat sat on the mat ."] * 120)  # 840 tokens, 4 segments

    def annotations():
        doc = nlp(text)
        return [(t.tag_, t.pos_, t.head.i, t.dep_) for t in doc], [(s.start, s.end, s.label_) for s in doc.spans["chunks"]]

    heads_layer = nlp.get_pipe("cascade").model.get_ref(cascade.HEADS_LAYER)
    passes = []
    monkeypatch.setattr(heads_layer, "_func", lambda model, X, is_train, func=heads_layer._func: (passes.append(len(X[1])), func(model, X, is_train))[1])
    whole = annotations()
    assert passes == [4]
    passes.clear()
    monkeypatch.setattr(cascade, "MAX_PASS_TOKENS", 300)  # a segment (256 tokens) a pass
    assert annotations() == whole
    assert passes == [1, 1, 1, 1]


@pytest.mark.parametrize("config,message", [
    ({"levels": ["tag", "lemma"]}, "Unknown cascade level 'lemma'"),
    ({"inputs": {"tag": ["dep"], "chunk": [], "dep": []}}, "can only read levels below it"),
    ({"layers": {"tag": 5, "chunk": -1, "dep": -1}}, "layers.tag = 5"),
    ({"casing_width": -4}, "casing_width must be >= 0, got -4"),
])
def test_config_errors_name_the_value(cascade_bert, config, message):
    with pytest.raises(ValueError, match=message):
        make_cascade_nlp(cascade_bert, all_layers=False, **config)


def test_initialize_names_a_level_without_data(cascade_bert, cascade_docs):
    nlp = make_cascade_nlp(cascade_bert, all_layers=False, levels=["tag", "pos", "chunk", "dep"],
                           inputs={"pos": ["tag"]}, layers={})
    chunk_only = examples_for(nlp, cascade_docs[20:])
    with pytest.raises(ValueError, match=r"no training annotation for levels \['pos', 'dep'\]"):
        nlp.initialize(lambda: chunk_only)


def test_mixed_precision_scores_give_a_finite_loss():
    """Under mixed precision the heads' scores leave PyTorch as float16, where
    a gold label 20 logits below the best has probability 0 and log(p) is
    -inf: the loss must be taken in float32, the gradient returned in float16."""
    import torch
    from thinc.api import Model

    from spacy_mtl.ml.cascade import USED_HEADS, _convert_outputs
    from spacy_mtl.pipeline.cascade import masked_cross_entropy

    scores = torch.tensor([[[0.0, -20.0], [1.0, 0.0]]], dtype=torch.float16, requires_grad=True)
    heads = torch.zeros((1, 2), dtype=torch.int64)
    model = Model("convert", lambda model, X, is_train: (X, lambda dY: dY))
    converted, backprop = _convert_outputs(model, (None, {"tag": scores, USED_HEADS: heads}), True)
    assert converted["tag"].dtype == numpy.float32
    loss, d_scores = masked_cross_entropy(model.ops, converted["tag"], numpy.asarray([[1, 0]]))
    assert numpy.isfinite(loss) and loss > 9.0
    grads = backprop({"tag": d_scores})
    torch.autograd.backward(*grads.args, **grads.kwargs)
    assert scores.grad.dtype == torch.float16 and bool(torch.isfinite(scores.grad).all())


def test_parser_gradients_repeat_exactly_on_several_threads():
    """Many tokens share a head (the root above all): the gradient of the
    label head sums theirs, and on the CPU with several threads that sum must
    come out the same every time, or training does not repeat itself."""
    import torch

    from spacy_mtl.ml.biaffine import DEP_LABEL_SCORES, BiaffineParser

    torch.manual_seed(0)
    parser = BiaffineParser(n_in=64, arc_width=32, label_width=32, n_labels=5, dropout=0.0)
    torch.nn.init.normal_(parser.label_weight)
    mask = torch.ones(40, 60, dtype=torch.bool)
    X = torch.randn(int(mask.sum()), 64)
    heads = torch.randint(0, 4, (40, 60))
    d_labels = torch.randn(40, 60, 5)

    def label_head_gradient():
        parser.zero_grad()
        parser(X, mask, heads)[DEP_LABEL_SCORES].backward(d_labels)
        return parser.label_head[1].weight.grad.clone()

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first = label_head_gradient()
        assert all(torch.equal(first, label_head_gradient()) for _ in range(20))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("head_group", [16, 2, 1])
def test_label_scores_are_the_same_in_training_and_in_inference(monkeypatch, head_group):
    """The parser's label scores, one product per distinct head in chunks of
    tokens, each head's tokens grouped (beyond head_group, one by one): the
    same with and without a gradient, and those of the formula."""
    import torch

    from spacy_mtl.ml import biaffine

    monkeypatch.setattr(biaffine, "LABEL_CHUNK", 16)  # chunks that end mid-batch
    monkeypatch.setattr(biaffine, "HEAD_GROUP", head_group)
    torch.manual_seed(0)
    dep, heads = torch.randn(40, 16, requires_grad=True), torch.randn(12, 16, requires_grad=True)
    rows = torch.randint(0, 12, (40,))  # tokens sharing heads
    weight = torch.randn(7, 16, 16, requires_grad=True)
    d_scores = torch.randn(40, 7)
    trained = biaffine._label_bilinear(dep, weight, heads, rows)
    trained.backward(d_scores)
    gradients = [tensor.grad.clone() for tensor in (dep, weight, heads)]
    with torch.no_grad():
        inferred = biaffine._label_bilinear(dep, weight, heads, rows)
    assert inferred.shape == (40, 7)
    expected = torch.stack([dep[i] @ weight[label] @ heads[rows[i]] for i in range(40) for label in range(7)]).reshape(40, 7)
    torch.testing.assert_close(inferred, expected.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(trained.detach(), expected.detach(), rtol=1e-5, atol=1e-5)
    for tensor in (dep, weight, heads):
        tensor.grad = None
    expected.backward(d_scores)
    for found, tensor in zip(gradients, (dep, weight, heads)):
        torch.testing.assert_close(found, tensor.grad, rtol=1e-4, atol=1e-4)


def test_inference_trees_are_those_of_the_padded_arc_scores():
    """At inference the parser scores the arcs of each group of segments of
    similar length at that group's size: its trees must be those decoded
    from the whole batch's arc scores, padded to the longest segment, as
    training computes them; heads given stay as given."""
    import torch

    from spacy_mtl.ml.biaffine import ARC_SCORES, USED_HEADS, BiaffineParser
    from spacy_mtl.trees import decode_dependent_rows

    torch.manual_seed(0)
    parser = BiaffineParser(n_in=24, arc_width=16, label_width=8, n_labels=3, dropout=0.0)
    torch.nn.init.normal_(parser.arc_weight)
    # Short and long segments: several groups, most padded in the batch.
    lengths = torch.tensor([2, 70, 5, 1, 33, 9] * 12)
    mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
    X = torch.randn(int(lengths.sum()), 24)
    heads = torch.full(mask.shape, -1)
    heads[1, :3] = torch.tensor([0, 1, 1])
    parser.train()
    with torch.no_grad():
        arcs = parser(X, mask, heads)[ARC_SCORES]
    parser.eval()
    with torch.no_grad():
        outputs = parser(X, mask, heads)
    assert ARC_SCORES not in outputs
    expected = torch.as_tensor(decode_dependent_rows(arcs.numpy(), lengths.tolist())[:, 1:])
    expected[1, :3] = torch.tensor([0, 1, 1])
    assert torch.equal(outputs[USED_HEADS][mask], expected[mask])
    assert find_cycle(numpy.r_[0, outputs[USED_HEADS][4, :33].numpy()]) is None
