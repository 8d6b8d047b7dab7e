from pathlib import Path
from typing import List

import pytest
from spacy.tokens import Doc

from spacy_mtl.convert import read_slu
from spacy_mtl.tiny_encoder import build_tiny_bert

# Small synthetic corpora in the formats of SNIPS, UD English EWT, CoNLL-2000
# and CoNLL04, written by fixtures/make_fixtures.py.
FIXTURES = Path(__file__).parent / "fixtures"


def read_snips(n: int) -> List[tuple]:
    """First n (words, tags, intent) examples of the synthetic SLU corpus."""
    folder = FIXTURES / "slu"
    columns = [(folder / name).read_text(encoding="utf8").split("\n")[:n] for name in ("seq.in", "seq.out", "label")]
    return [(words.split(), tags.split(), intent.strip()) for words, tags, intent in zip(*columns)]


@pytest.fixture(scope="session")
def snips_sample():
    return read_snips(50)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, snips_sample) -> Path:
    sentences = [" ".join(words) for words, _, _ in snips_sample]
    sentences += ["the quick brown fox jumps over the lazy dog", "flights from boston to denver"]
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), sentences)


def write_slu(folder: Path, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(("seq.in", "seq.out", "label")):
        (folder / name).write_text("\n".join(" ".join(row[i]) if i < 2 else row[i] for row in data) + "\n")
    return folder


@pytest.fixture(scope="session")
def snips_docs(snips_sample, tmp_path_factory) -> List[Doc]:
    return list(read_slu(write_slu(tmp_path_factory.mktemp("snips"), snips_sample)))


@pytest.fixture(scope="session")
def cascade_docs() -> List[Doc]:
    """20 CoNLL-U sentences (tags, UPOS, trees) and 20 CoNLL-2000 sentences
    (tags, chunks), each annotating only some of the cascade's levels."""
    from itertools import islice

    from spacy_mtl.convert import read_chunks, read_conllu

    ewt, conll2000 = FIXTURES / "trees.conllu", FIXTURES / "chunks.txt"
    short = lambda docs: (doc for doc in docs if 4 <= len(doc) <= 25)  # noqa: E731
    return list(islice(short(read_conllu(ewt)), 20)) + list(islice(short(read_chunks(conll2000)), 20))


@pytest.fixture(scope="session")
def cascade_bert(tmp_path_factory, cascade_docs) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("cascade_bert"), [doc.text for doc in cascade_docs])


@pytest.fixture(scope="session")
def conll04_sample(tmp_path_factory):
    """The first 30 sentences with relations, as a SpERT file."""
    import json

    path = FIXTURES / "relations.json"
    sentences = [s for s in json.loads(path.read_text()) if s["relations"]][:30]
    out = tmp_path_factory.mktemp("conll04") / "sample.json"
    out.write_text(json.dumps(sentences))
    return out, sentences


@pytest.fixture(scope="session")
def all_in_one_path(tmp_path_factory, snips_docs, conll04_sample, cascade_docs) -> Path:
    """slot_intent, ner_re and cascade on one tiny transformer, trained a few
    epochs on docs that each annotate some of the tasks; saved."""
    import spacy

    from pipelines import TRF_MODEL, examples_for, train
    from spacy_mtl.convert import read_spert

    path, _ = conll04_sample
    docs = snips_docs[:20] + list(read_spert(path))[:20] + cascade_docs
    bert = build_tiny_bert(tmp_path_factory.mktemp("all_in_one_bert"), [doc.text for doc in docs])
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(bert)}})
    nlp.add_pipe("slot_intent")
    nlp.add_pipe("ner_re")
    nlp.add_pipe("cascade")
    train(nlp, examples_for(nlp, docs), n_epochs=3)
    model = tmp_path_factory.mktemp("all_in_one") / "model"
    nlp.to_disk(model)
    return model
