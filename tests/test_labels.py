"""Labels of a pipeline trained from a streamed corpus (`max_epochs = -1`):
spaCy initializes it from the first 100 training examples only, so the
components read their labels from every doc of the corpus instead."""
import gc
from itertools import islice

import pytest
import spacy
from spacy.cli.init_config import fill_config
from spacy.tokens import DocBin
from spacy.training.initialize import init_nlp
from spacy.util import load_config

from spacy_mtl.convert import read_spert
from spacy_mtl.scoring import CHUNKS_KEY, SLOTS_KEY
from spacy_mtl.training import MultiCorpus
from spacy_mtl.pipeline.labels import initial_labels

from spacy_mtl.tiny_encoder import build_tiny_bert

CONFIG = """
[nlp]
lang = "en"
pipeline = ["transformer", "slot_intent", "ner_re", "cascade"]

[components]

[components.transformer]
factory = "transformer"

[components.transformer.model]
@architectures = "spacy-transformers.TransformerModel.v3"
name = "BERT"

[components.transformer.model.get_spans]
@span_getters = "spacy-transformers.strided_spans.v1"
window = 64
stride = 48

[components.slot_intent]
factory = "slot_intent"

[components.ner_re]
factory = "ner_re"

[components.cascade]
factory = "cascade"

[corpora]

[corpora.train]
@readers = "spacy_mtl.MultiCorpus.v1"
seed = 0

TRAIN_CORPORA

[corpora.dev]
@readers = "spacy_mtl.MultiCorpus.v1"
shuffle = false

DEV_CORPORA

[training]
max_epochs = -1
max_steps = 1
"""

# Each corpus: its docs and the tasks it annotates. The unannotated filler
# makes up most of the stream, so its first 100 docs miss most labels.
TASKS = {
    "snips": ["slots", "intent"],
    "conll04": ["ents", "relations"],
    "cascade": ["tag", "pos", "chunk", "dep"],
    "filler": [],
}


@pytest.fixture(scope="module")
def corpora(snips_docs, conll04_sample, cascade_docs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpora")
    docs = {
        "snips": snips_docs,
        "conll04": list(read_spert(conll04_sample[0])),
        "cascade": cascade_docs,
        "filler": [doc.copy() for doc in snips_docs] * 20,
    }
    specs = {}
    for name, corpus_docs in docs.items():
        path = folder / f"{name}.spacy"
        DocBin(docs=corpus_docs, store_user_data=True).to_disk(path)
        specs[name] = {"path": str(path), "tasks": TASKS[name]}
    bert = build_tiny_bert(folder / "bert", [doc.text for name in TASKS if name != "filler" for doc in docs[name]])
    return specs, bert


def labels_of(examples) -> dict:
    """Every label of every task in the examples' reference docs."""
    labels = {key: set() for key in ("slots", "intents", "ents", "relations", "tag", "pos", "chunk", "dep")}
    for eg in examples:
        doc = eg.reference
        labels["slots"].update(span.label_ for span in doc.spans.get(SLOTS_KEY, []))
        labels["intents"].update(doc.cats)
        labels["ents"].update(ent.label_ for ent in doc.ents)
        labels["relations"].update(rel.label for rel in doc._.relations)
        labels["chunk"].update(span.label_ for span in doc.spans.get(CHUNKS_KEY, []))
        for level in ("tag", "pos", "dep"):
            labels[level].update(getattr(token, f"{level}_") for token in doc if getattr(token, f"{level}_"))
    return labels


def corpora_section(section: str, specs) -> str:
    entries = [f"[{section}]"]
    for name, spec in specs.items():
        tasks = ", ".join(f'"{task}"' for task in spec["tasks"])
        entries.append(f'[{section}.{name}]\npath = "{spec["path"]}"\ntasks = [{tasks}]')
    return "\n\n".join(entries)


def config_for(specs, bert, tmp_path):
    text = CONFIG.replace("BERT", str(bert))
    text = text.replace("TRAIN_CORPORA", corpora_section("corpora.train.corpora", specs))
    text = text.replace("DEV_CORPORA", corpora_section("corpora.dev.corpora", specs))
    base = tmp_path / "base.cfg"
    base.write_text(text)
    fill_config(tmp_path / "config.cfg", base, silent=True)
    return load_config(tmp_path / "config.cfg")


@pytest.mark.slow
def test_streamed_multi_corpus_gives_components_every_label(corpora, tmp_path):
    specs, bert = corpora
    nlp = spacy.blank("en")
    corpus = MultiCorpus(specs, seed=0)
    expected = labels_of(corpus.every_example(nlp))
    sampled = labels_of(islice(corpus(nlp), 100))
    # What spaCy alone would initialize from misses labels of every component.
    assert all(sampled[key] < expected[key] for key in ("slots", "relations", "tag", "dep"))

    nlp = init_nlp(config_for(specs, bert, tmp_path))
    slot_intent, ner_re, cascade = (nlp.get_pipe(name) for name in ("slot_intent", "ner_re", "cascade"))
    assert set(slot_intent.slot_labels) == expected["slots"]
    assert set(slot_intent.intents) == expected["intents"]
    assert set(ner_re.entity_labels) == expected["ents"]
    assert set(ner_re.relation_labels) == expected["relations"]
    assert {"tag", "chunk", "dep"} <= set(cascade.levels)
    for level in cascade.levels:
        # The parser adds its root label to the gold ones.
        assert set(cascade.cfg["labels"][level]) - {"ROOT"} == expected[level] - {"ROOT"}, level
    references = [eg.reference for eg in corpus.every_example(nlp)]
    assert all(not pipe.unknown_labels(references) for pipe in (slot_intent, ner_re, cascade))
    odd = references[-1].copy()
    odd[0].tag_ = "NOT_A_TAG"
    assert cascade.unknown_labels([odd]) == {"tag": ["NOT_A_TAG"]}


def test_other_corpora_keep_the_examples_given(corpora, tmp_path):
    specs, bert = corpora
    config = config_for(specs, bert, tmp_path)
    config["training"]["max_epochs"] = 3  # spaCy reads the whole corpus itself
    nlp = spacy.util.load_model_from_config(config, auto_fill=True)
    ner_re = nlp.get_pipe("ner_re")
    corpus = MultiCorpus(specs, seed=0)
    given = [eg for eg in corpus(nlp) if eg.reference._.relations][:1]
    expected = ner_re.gold_labels(eg.reference for eg in given)
    assert expected != ner_re.gold_labels(eg.reference for eg in corpus.every_example(nlp))
    assert initial_labels(ner_re, lambda: given, nlp) == expected
    assert initial_labels(ner_re, lambda: given, None) == expected


def test_component_outside_the_pipeline_keeps_the_examples_given(corpora, tmp_path, monkeypatch):
    """A component initialized on its own does not read nlp's corpus."""
    specs, bert = corpora
    nlp = spacy.util.load_model_from_config(config_for(specs, bert, tmp_path), auto_fill=True)
    assert nlp.config["training"]["max_epochs"] == -1
    loose = nlp.create_pipe("ner_re")
    given = [eg for eg in MultiCorpus(specs, seed=0)(nlp) if eg.reference._.relations][:1]

    def read_corpus(nlp):
        raise AssertionError("the corpus was read")

    monkeypatch.setattr("spacy_mtl.pipeline.labels._streamed_gold_labels", read_corpus)
    assert initial_labels(loose, lambda: given, nlp) == loose.gold_labels(eg.reference for eg in given)
    with pytest.raises(AssertionError, match="the corpus was read"):
        initial_labels(nlp.get_pipe("ner_re"), lambda: given, nlp)


@pytest.mark.slow
def test_initialized_pipeline_holds_no_copy_of_the_corpus(corpora, tmp_path):
    """The labels are read in one pass over the corpus; only they are kept, so
    training holds no second copy of the training docs beside spaCy's."""
    specs, bert = corpora
    nlp = init_nlp(config_for(specs, bert, tmp_path))
    assert nlp.get_pipe("ner_re").relation_labels
    gc.collect()
    assert not [obj for obj in gc.get_objects() if isinstance(obj, MultiCorpus)]


def test_streamed_spacy_corpus_gives_every_label(snips_docs, tiny_bert, tmp_path):
    """A spaCy Corpus ends, so it is read whole too. Its first 100 docs here
    have intents but no slots."""
    from test_training import TRAIN_CONFIG

    unslotted = []
    for doc in snips_docs * 2:
        doc = doc.copy()
        doc.spans[SLOTS_KEY] = []
        unslotted.append(doc)
    train_path, dev_path = tmp_path / "train.spacy", tmp_path / "dev.spacy"
    DocBin(docs=unslotted + snips_docs, store_user_data=True).to_disk(train_path)
    DocBin(docs=snips_docs[:8], store_user_data=True).to_disk(dev_path)
    base = tmp_path / "base.cfg"
    base.write_text(TRAIN_CONFIG.replace("TINY_BERT", str(tiny_bert)))
    fill_config(tmp_path / "config.cfg", base, silent=True)
    config = load_config(tmp_path / "config.cfg", overrides={"paths.train": str(train_path), "paths.dev": str(dev_path)})
    assert config["training"]["max_epochs"] == -1
    nlp = init_nlp(config)
    expected = {span.label_ for doc in snips_docs for span in doc.spans[SLOTS_KEY]}
    assert set(nlp.get_pipe("slot_intent").slot_labels) == expected
