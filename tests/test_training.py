"""Corpus mixing and task loss weighting."""
import json
from collections import Counter
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.util import registry
from thinc.api import Config

from spacy_mtl.tiny_encoder import build_tiny_bert
from pipelines import load_project_script
from spacy_mtl.training import LossWeighting, MultiCorpus


def write_corpus(path, n_docs, word):
    nlp = spacy.blank("en")
    docs = [Doc(nlp.vocab, words=[word, str(i)]) for i in range(n_docs)]
    DocBin(docs=docs).to_disk(path)
    return str(path)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpora")
    return {"big": {"path": write_corpus(folder / "big.spacy", 900, "big")},
            "small": {"path": write_corpus(folder / "small.spacy", 100, "small")}}


def share_of_big(corpus, n_epochs=20) -> float:
    nlp = spacy.blank("en")
    counts = Counter(eg.reference[0].text for _ in range(n_epochs) for eg in corpus(nlp))
    return counts["big"] / sum(counts.values())


@pytest.mark.parametrize("alpha,expected", [(1.0, 0.9), (0.0, 0.5), (0.5, 30 / 40)])
def test_sampling_follows_alpha(corpora, alpha, expected):
    assert share_of_big(MultiCorpus(corpora, alpha=alpha)) == pytest.approx(expected, abs=0.01)


def test_corpus_weight_scales_its_share(corpora):
    weighted = {"big": corpora["big"], "small": {**corpora["small"], "weight": 3.0}}
    # 1 * 900 ** 0.5 : 3 * 100 ** 0.5 = 30 : 30
    assert share_of_big(MultiCorpus(weighted, alpha=0.5)) == pytest.approx(0.5, abs=0.01)


def test_every_doc_is_drawn_before_any_twice(corpora):
    nlp = spacy.blank("en")
    corpus = MultiCorpus(corpora, alpha=0.0)  # 500 draws an epoch from each corpus
    small = [eg.reference.text for _ in range(2) for eg in corpus(nlp) if eg.reference[0].text == "small"]
    # 10 full passes over the 100 small docs: each drawn exactly 10 times.
    assert len(small) == 1000 and set(Counter(small).values()) == {10}


def test_group_words_yields_runs_from_one_corpus(corpora):
    nlp = spacy.blank("en")
    # Docs of 2 words, runs of 20 words: 90 runs of "big", 10 of "small".
    stream = [eg.reference[0].text for eg in MultiCorpus(corpora, group_words=20)(nlp)]
    runs = [set(stream[i:i + 10]) for i in range(0, len(stream), 10)]
    assert len(stream) == 1000 and all(len(run) == 1 for run in runs)
    assert sum(run == {"small"} for run in runs) == 10
    # Mixed (the default): the same stream switches corpus far more often.
    mixed = [eg.reference[0].text for eg in MultiCorpus(corpora)(nlp)]
    assert sum(a != b for a, b in zip(mixed, mixed[1:])) > 5 * sum(a != b for a, b in zip(stream, stream[1:]))


def test_dev_mode_yields_every_doc_once(corpora):
    examples = list(MultiCorpus(corpora, shuffle=False)(spacy.blank("en")))
    assert len(examples) == 1000 and len({eg.reference.text for eg in examples}) == 1000


def test_dev_mode_sorted_by_length_yields_every_doc_once_shortest_first(tmp_path):
    nlp = spacy.blank("en")
    paths = {}
    for name, lengths in {"long": [9, 3, 7], "short": [2, 5, 1, 3]}.items():
        docs = [nlp.make_doc(" ".join(f"{name}{i}w{j}" for j in range(n))) for i, n in enumerate(lengths)]
        paths[name] = {"path": str(tmp_path / f"{name}.spacy")}
        DocBin(docs=docs).to_disk(paths[name]["path"])
    examples = list(MultiCorpus(paths, shuffle=False, sort_by_length=True)(nlp))
    assert [len(eg.predicted) for eg in examples] == [1, 2, 3, 3, 5, 7, 9]
    assert len({eg.reference.text for eg in examples}) == 7
    with pytest.raises(ValueError, match="set shuffle = false"):
        MultiCorpus(paths, sort_by_length=True)


def test_gold_tokens_keep_the_corpus_tokenization(tmp_path):
    """The tokenizer splits "wheel-chair" and "F-16s"; with gold_tokens the
    predicted docs keep the corpus' tokens, as scripts/evaluate.py does."""
    nlp = spacy.blank("en")
    words, spaces = ["The", "wheel-chair", "met", "F-16s", "."], [True, True, True, False, False]
    path = tmp_path / "dev.spacy"
    DocBin(docs=[Doc(nlp.vocab, words=words, spaces=spaces)]).to_disk(path)
    corpora = {"dev": {"path": str(path)}}
    (retokenized,) = MultiCorpus(corpora, shuffle=False)(nlp)
    (kept,) = MultiCorpus(corpora, shuffle=False, gold_tokens=True)(nlp)
    assert len(retokenized.predicted) > len(words)
    assert [t.text for t in kept.predicted] == words and kept.predicted.text == kept.reference.text
    assert not kept.predicted.has_annotation("TAG")


INTENT_SENTENCES = ["book a flight to boston", "play some jazz music", "book a table in paris", "play the radio"]
TAGGED_SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "the bird sang"]


def intent_and_tag_corpora(folder: Path, vocab) -> dict:
    """Utterances with intents and slots, and sentences with tags only."""
    utterances = []
    for text in INTENT_SENTENCES:
        doc = Doc(vocab, words=text.split())
        doc.cats = {"book": float(text.startswith("book")), "play": float(text.startswith("play"))}
        doc.spans["slots"] = [Span(doc, len(doc) - 1, len(doc), label="object")]
        utterances.append(doc)
    sentences = [Doc(vocab, words=text.split(), tags=["S" if len(w) < 4 else "L" for w in text.split()]) for text in TAGGED_SENTENCES]
    paths = {"utterances": folder / "utterances.spacy", "sentences": folder / "sentences.spacy"}
    DocBin(docs=utterances, store_user_data=True).to_disk(paths["utterances"])
    DocBin(docs=sentences, store_user_data=True).to_disk(paths["sentences"])
    return {name: {"path": str(path)} for name, path in paths.items()}


def test_predict_scored_only_skips_tasks_no_score_counts(tmp_path):
    """Each component annotates only the dev docs that hold its gold; the
    scores are those of annotating every doc with every component."""
    from pipelines import TRF_MODEL

    bert = build_tiny_bert(tmp_path / "bert", INTENT_SENTENCES + TAGGED_SENTENCES)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(bert)}})
    nlp.add_pipe("slot_intent")
    nlp.add_pipe("cascade", config={"model": {"levels": ["tag"], "inputs": {"tag": []}, "layers": {"tag": -1}}})
    corpora = intent_and_tag_corpora(tmp_path, nlp.vocab)
    nlp.initialize(lambda: MultiCorpus(corpora, shuffle=False)(nlp))
    every = list(MultiCorpus(corpora, shuffle=False)(nlp))
    scored = list(MultiCorpus(corpora, shuffle=False, predict_scored_only=True)(nlp))
    every_scores, scored_scores = nlp.evaluate(every), nlp.evaluate(scored)
    every_scores.pop("speed"), scored_scores.pop("speed")
    assert scored_scores == every_scores
    annotated = list(nlp.pipe(eg.predicted for eg in scored))
    utterances, sentences = annotated[: len(INTENT_SENTENCES)], annotated[len(INTENT_SENTENCES) :]
    assert all(doc.cats and not doc.has_annotation("TAG") for doc in utterances)
    assert all(doc.has_annotation("TAG") and not doc.cats for doc in sentences)
    assert all(doc.cats and doc.has_annotation("TAG") for doc in nlp.pipe(eg.predicted for eg in every))
    # A doc without the reader's mark (in production) gets every annotation.
    doc = nlp("the cat sat")
    assert doc.cats and doc.has_annotation("TAG")


def test_predict_scored_only_is_for_a_dev_corpus(corpora):
    with pytest.raises(ValueError, match="predict_scored_only is for a dev corpus"):
        MultiCorpus(corpora, predict_scored_only=True)


def test_reading_looks_up_msgpack_decoders_once(tmp_path, monkeypatch):
    """A DocBin keeps each doc's user data and span groups as msgpack, and
    srsly looks up its decoders (entry points and catalogue's registry) per
    blob: reading a corpus must look them up once and still apply them to
    every blob."""
    import catalogue
    import srsly

    nlp = spacy.blank("en")
    docs = [nlp.make_doc(f"doc number {i}") for i in range(50)]
    for doc in docs:
        doc.spans["sc"] = [doc[:1]]
        doc.user_data["n"] = 1
    path = tmp_path / "docs.spacy"
    DocBin(docs=docs, store_user_data=True).to_disk(path)
    decoders = srsly.msgpack_decoders
    lookups, decoded = [], []

    def count_decoded(obj, chain=None):
        decoded.append(obj)
        return obj if chain is None else chain(obj)

    def get_all(registry):
        lookups.append(1)
        return {**looked_up(registry), "count_decoded": count_decoded}

    looked_up = catalogue.Registry.get_all
    monkeypatch.setattr(catalogue.Registry, "get_all", get_all)
    examples = list(MultiCorpus({"docs": {"path": str(path)}}, shuffle=False)(nlp))
    assert len(examples) == 50 and all(len(eg.reference.spans["sc"]) == 1 for eg in examples)
    assert len(decoded) >= 100
    assert len(lookups) == 1 and "get_all" not in vars(decoders)


def test_bad_corpus_specs_are_named(corpora, tmp_path):
    with pytest.raises(ValueError, match="unknown tasks \\['lemma'\\]"):
        MultiCorpus({"a": {"path": corpora["big"]["path"], "tasks": ["lemma"]}})
    with pytest.raises(ValueError, match="weight must be a number >= 0, got -1"):
        MultiCorpus({"a": {"path": corpora["big"]["path"], "weight": -1}})
    with pytest.raises(ValueError, match="corpus 'gone'"):
        list(MultiCorpus({"gone": {"path": str(tmp_path / "none.spacy")}})(spacy.blank("en")))


def test_batch_by_padded_caps_docs_per_batch():
    # 300 docs of 5 words and 20 of 60: by padded size alone, the short ones
    # come 120 to a batch.
    docs = [["w"] * 5] * 300 + [["w"] * 60] * 20
    make = registry.batchers.get("spacy_mtl.batch_by_padded.v1")
    uncapped = list(make(size=600, buffer=400)(docs))
    capped = list(make(size=600, buffer=400, max_sequences=50)(docs))
    assert max(len(batch) for batch in uncapped) == 120
    # 120 + 120 + 60 short docs, each batch split into even parts of <= 50.
    assert sorted(len(batch) for batch in capped if len(batch[0]) == 5) == [30] * 2 + [40] * 6
    # Nothing lost or reordered; the padded size still holds.
    assert [doc for batch in capped for doc in batch] == [doc for batch in uncapped for doc in batch]
    assert all(len(batch) * max(map(len, batch)) <= 600 for batch in capped)


@pytest.fixture(scope="module")
def common_word_bert(tmp_path_factory):
    """A tokenizer that knows a few common words: any other word is cut
    into many pieces."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    sentences = ["the cat sat on the mat"] * 20 + [" ".join(letters), letters]
    return build_tiny_bert(tmp_path_factory.mktemp("bert"), sentences)


def test_wordpiece_length_counts_what_the_transformer_pads(common_word_bert):
    from transformers import AutoTokenizer

    length = registry.misc.get("spacy_mtl.wordpiece_length.v1")(name=str(common_word_bert))
    nlp = spacy.blank("en")
    common, rare = nlp("the cat sat"), nlp("xylophonist quizzically zigzagged")
    tokenizer = AutoTokenizer.from_pretrained(str(common_word_bert))
    # Word pieces plus [CLS] and [SEP], for a Doc as for an Example's predicted doc.
    assert length(common) == len(tokenizer(common.text)["input_ids"]) == 5
    assert length(Example(rare, rare)) == len(tokenizer(rare.text)["input_ids"]) > 3 * len(common)


def test_batching_by_wordpiece_length_parts_docs_that_pad_differently(common_word_bert):
    length = registry.misc.get("spacy_mtl.wordpiece_length.v1")(name=str(common_word_bert))
    nlp = spacy.blank("en")
    # All 3 spaCy tokens long; the rare ones are many word pieces each.
    docs = [nlp("the cat sat"), nlp("xylophonist quizzically zigzagged")] * 20
    by_wordpieces = registry.batchers.get("spacy.batch_by_padded.v1")(size=200, buffer=40, discard_oversize=False, get_length=length)
    batches = list(by_wordpieces(docs))
    assert all(len({doc.text for doc in batch}) == 1 for batch in batches)
    assert all(len(batch) * max(map(length, batch)) <= 200 for batch in batches)
    assert sorted(doc.text for batch in batches for doc in batch) == sorted(doc.text for doc in docs)
    # By spaCy tokens, the two kinds share batches, each padded to the rare docs' length.
    by_tokens = registry.batchers.get("spacy.batch_by_padded.v1")(size=60, buffer=40, discard_oversize=False)
    assert any(len({doc.text for doc in batch}) == 2 for batch in by_tokens(docs))


def test_wordpiece_length_names_a_tokenizer_it_cannot_load(tmp_path):
    with pytest.raises(ValueError, match="cannot load the tokenizer of '.*no_model'"):
        registry.misc.get("spacy_mtl.wordpiece_length.v1")(name=str(tmp_path / "no_model"))


def test_batch_composition_measures_what_per_batch_means_waste():
    composition = load_project_script("batch_composition").composition
    even = composition(numpy.asarray([0, 4, 4, 4]))
    assert (even["batches_with_it"], even["docs_mean"], even["waste"]) == (3, 4.0, 1.0)
    # 10 docs in two batches: weighted 1 and 1/9 each, they count as 10 / 2.78.
    uneven = composition(numpy.asarray([1, 9, 0]))
    assert uneven["waste"] == pytest.approx(5 * (1 + 1 / 9) / 2, abs=0.01)
    assert composition(numpy.asarray([0, 0]))["batches_with_it"] == 0


def write_run(metrics_dir: Path, training_dir: Path, run: str, scores: dict, files: list, wall_seconds=None):
    """One run's metrics files (one per dev corpus) and, if it was timed, its timing."""
    for name in files:
        (metrics_dir / f"{name}.json").write_text(json.dumps({"scores": scores}))
    if wall_seconds is not None:
        (training_dir / run).mkdir()
        (training_dir / run / "timing.json").write_text(json.dumps({"wall_seconds": wall_seconds}))


def write_compare_runs(tmp_path):
    """Seeds 0 and 1 of every pipeline; seed 1's single-task runs were timed
    elsewhere, so they have scores only."""
    metrics_dir, training_dir = tmp_path / "metrics", tmp_path / "training"
    metrics_dir.mkdir()
    training_dir.mkdir()
    scores = {"sent_acc": 0.9, "rel_micro_f": 0.7, "dep_las": 0.8, "chunk_f": 0.95}
    for seed, suffix in ((0, ""), (1, "_seed1")):
        timed = seed == 0
        write_run(metrics_dir, training_dir, f"snips_trf{suffix}", scores, [f"snips_trf{suffix}"], 600 if timed else None)
        write_run(metrics_dir, training_dir, f"conll04_trf{suffix}", scores, [f"conll04_trf{suffix}"], 600 if timed else None)
        write_run(metrics_dir, training_dir, f"cascade_trf{suffix}", scores,
                  [f"cascade_trf{suffix}_ewt", f"cascade_trf{suffix}_conll2000"], 1200 if timed else None)
        all_scores = dict(scores, rel_micro_f=0.68 - 0.02 * seed)
        write_run(metrics_dir, training_dir, f"all_trf{suffix}", all_scores,
                  [f"all_trf{suffix}_{c}" for c in ("snips", "conll04", "ewt", "conll2000")], 1200 + 300 * seed)
    return metrics_dir, training_dir


def test_compare_times_only_single_task_runs_of_the_all_in_one_machine(tmp_path):
    compare = load_project_script("compare")
    metrics_dir, training_dir = write_compare_runs(tmp_path)
    rows = [compare.compare_task(task, "trf", [0, 1], metrics_dir, training_dir)[0] for task in compare.TASKS]
    assert rows[1]["all_in_one"] == pytest.approx(67.0) and rows[1]["difference"] == pytest.approx(-3.0)
    with pytest.raises(SystemExit, match="snips_trf_seed1/timing.json"):
        compare.training_seconds(rows, "trf", [0, 1], [0, 1], training_dir, metrics_dir)
    seconds = compare.training_seconds(rows, "trf", [0, 1], [0], training_dir, metrics_dir)
    assert (seconds["single_sum"], seconds["all_in_one"], seconds["ratio"]) == (2400, [1200, 1500], 0.562)
    assert "single-task seed 1 not timed" in compare.markdown_table(rows, seconds)
    with pytest.raises(SystemExit, match="must hold one of its seeds"):
        compare.training_seconds(rows, "trf", [0, 1], [2], training_dir, metrics_dir)


def test_compare_times_only_the_all_in_one_runs_trained_alone(tmp_path):
    compare = load_project_script("compare")
    metrics_dir, training_dir = write_compare_runs(tmp_path)
    (training_dir / "all_trf_seed1" / "timing.json").unlink()
    rows = [compare.compare_task(task, "trf", [0, 1], metrics_dir, training_dir)[0] for task in compare.TASKS]
    with pytest.raises(SystemExit, match="all_trf_seed1/timing.json"):
        compare.training_seconds(rows, "trf", [0, 1], [0], training_dir, metrics_dir)
    seconds = compare.training_seconds(rows, "trf", [0], [0], training_dir, metrics_dir)
    assert (seconds["all_in_one"], seconds["ratio"]) == ([1200], 0.5)
    table = compare.markdown_table(rows, seconds)
    assert "| 20.0 min | x0.50 |" in table
    assert "single-task seed 1 not timed; all-in-one seed 1 not timed." in table
    assert "mean too" not in table
    with pytest.raises(SystemExit, match="--all-in-one-timed-seeds \\[2\\] must be among --seeds \\[0, 1\\]"):
        compare.timed_seeds("--all-in-one-timed-seeds", "2", [0, 1])


def test_compare_means_each_pipelines_timed_runs_with_its_repeats(tmp_path):
    compare = load_project_script("compare")
    metrics_dir, training_dir = write_compare_runs(tmp_path)
    for run, wall_seconds in (("snips_trf_repeat1", 700), ("all_trf_repeat1", 1500), ("all_trf_repeat2", 900)):
        write_run(metrics_dir, training_dir, run, {}, [], wall_seconds)
    rows = [compare.compare_task(task, "trf", [0, 1], metrics_dir, training_dir)[0] for task in compare.TASKS]
    repeats = compare.parse_repeats("_repeat1, _repeat2")
    seconds = compare.training_seconds(rows, "trf", [0], [0], training_dir, metrics_dir, repeats)
    assert seconds["single"] == {"snips_trf": [600, 700], "conll04_trf": [600], "cascade_trf": [1200]}
    assert (seconds["single_sum"], seconds["all_in_one"], seconds["ratio"]) == (2450, [1200, 1500, 900], 0.49)
    table = compare.markdown_table(rows, seconds)
    assert "| 40.8 min (sum of 3 pipelines) | 20.0 min | x0.49 |" in table
    assert "each wall time is the mean of a pipeline's timed runs (single-task 2, 1, 1; all-in-one 3)" in table
    kept = compare.copy_run_files(rows, "trf", training_dir, metrics_dir, repeats)
    assert {"snips_trf_repeat1_timing.json", "all_trf_repeat2_timing.json"} <= {path.name for path in kept}
    with pytest.raises(SystemExit, match="--timing-repeats _repeat3: no run has a timing.json"):
        compare.training_seconds(rows, "trf", [0], [0], training_dir, metrics_dir, ["_repeat3"])
    for bad in ("repeat1", "_seed2"):
        with pytest.raises(SystemExit, match=f"not '{bad}'"):
            compare.parse_repeats(bad)
    (training_dir / "all_trf_repeat1" / "model-last").mkdir()
    Config({"system": {"seed": 1}}).to_disk(training_dir / "all_trf_repeat1" / "model-last" / "config.cfg")
    with pytest.raises(SystemExit, match="seed 1, but its run's name is seed 0's: .*--vars.seed_suffix _repeat1"):
        compare.check_trained_seeds(rows, "trf", training_dir, repeats)


def test_compare_names_a_run_trained_with_another_seed(tmp_path):
    compare = load_project_script("compare")
    metrics_dir, training_dir = write_compare_runs(tmp_path)
    for run, trained_seed in (("all_trf", 0), ("all_trf_seed1", 0)):
        (training_dir / run / "model-last").mkdir(parents=True)
        Config({"system": {"seed": trained_seed}}).to_disk(training_dir / run / "model-last" / "config.cfg")
    rows = [compare.compare_task(task, "trf", [0, 1], metrics_dir, training_dir)[0] for task in compare.TASKS]
    with pytest.raises(SystemExit, match="all_trf_seed1/model-last/config.cfg was trained with seed 0.*--vars.seed 1 --vars.seed_suffix _seed1"):
        compare.check_trained_seeds(rows, "trf", training_dir)
    Config({"system": {"seed": 1}}).to_disk(training_dir / "all_trf_seed1" / "model-last" / "config.cfg")
    compare.check_trained_seeds(rows, "trf", training_dir)
    assert rows[0]["all_in_one_seeds"] == [0, 1]


TRAIN_LOG = """E    #       LOSS SLOT_INTENT  SENT_ACC  SCORE
---  ------  ----------------  --------  ------
  0       0             40.00     10.00    0.10
  1     975             10.00     80.00    0.80
"""


def test_compare_reads_a_runs_copies_in_the_metrics_folder_without_its_training_folder(tmp_path):
    compare = load_project_script("compare")
    metrics_dir, training_dir = write_compare_runs(tmp_path)
    moved = tmp_path / "moved"
    training_dir.rename(moved)
    training_dir.mkdir()
    for run_dir in moved.iterdir():
        (run_dir / "timing.json").rename(metrics_dir / f"{run_dir.name}_timing.json")
    (metrics_dir / "all_trf_seed1_train.log").write_text(TRAIN_LOG)
    # A run's own training folder wins over the copy.
    (training_dir / "all_trf").mkdir()
    (training_dir / "all_trf" / "timing.json").write_text(json.dumps({"wall_seconds": 900}))
    rows, curves = zip(*(compare.compare_task(task, "trf", [0, 1], metrics_dir, training_dir) for task in compare.TASKS))
    assert curves[0]["all-in-one"] == [(0, 10.0), (975, 80.0)]
    seconds = compare.training_seconds(list(rows), "trf", [0, 1], [0], training_dir, metrics_dir)
    assert (seconds["single_sum"], seconds["all_in_one"]) == (2400, [900, 1500])
    (metrics_dir / "snips_trf_timing.json").unlink()
    with pytest.raises(SystemExit, match="snips_trf/timing.json \\(and .*snips_trf_timing.json\\)"):
        compare.training_seconds(list(rows), "trf", [0, 1], [0], training_dir, metrics_dir)


def test_compare_keeps_copies_that_make_the_same_table_without_the_training_folders(tmp_path):
    compare = load_project_script("compare")
    metrics_dir, training_dir = write_compare_runs(tmp_path)
    (training_dir / "all_trf_seed1" / "train.log").write_text(TRAIN_LOG)

    def table(training_dir):
        rows, curves = zip(*(compare.compare_task(task, "trf", [0, 1], metrics_dir, training_dir) for task in compare.TASKS))
        return compare.training_seconds(list(rows), "trf", [0, 1], [0], training_dir, metrics_dir), curves, list(rows)

    seconds, curves, rows = table(training_dir)
    kept = compare.copy_run_files(rows, "trf", training_dir, metrics_dir)
    # Every seed 0 run and the all-in-one seed 1 were timed; that seed alone has a log.
    assert sorted(path.name for path in kept) == sorted(
        [f"{run}_timing.json" for run in ("all_trf", "all_trf_seed1", "cascade_trf", "conll04_trf", "snips_trf")]
        + ["all_trf_seed1_train.log"]
    )
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    assert table(empty)[:2] == (seconds, curves)
    assert curves[0]["all-in-one"] == [(0, 10.0), (975, 80.0)]


def test_batch_by_padded_names_a_bad_cap():
    with pytest.raises(ValueError, match="max_sequences must be an int >= 0, got -1"):
        registry.batchers.get("spacy_mtl.batch_by_padded.v1")(size=600, max_sequences=-1)


def test_uncertainty_weighting_down_weights_the_noisier_task():
    """Kendall et al.: s_t tracks log of the task's loss scale, so a task with
    large, noisy losses gets a smaller weight exp(-s_t)."""
    import random

    rng = random.Random(0)
    weighting = LossWeighting("uncertainty", learn_rate=0.05)
    for _ in range(500):
        factors = weighting.update_factors({"a:clean": 0.5 + 0.05 * rng.random(), "a:noisy": 5.0 * rng.random() * 2}, epoch=0)
    assert factors["a:noisy"] < 0.5 < factors["a:clean"]
    assert factors["a:clean"] == pytest.approx(1 / 0.525, rel=0.2)


def test_dynamic_weight_averaging_favours_the_slower_task():
    weighting = LossWeighting("dwa", temperature=2.0)
    for epoch, (fast, slow) in enumerate([(4.0, 4.0), (2.0, 3.9)]):
        assert weighting.update_factors({"a:fast": fast, "a:slow": slow}, epoch=epoch) == {}
    factors = weighting.update_factors({"a:fast": 1.0, "a:slow": 3.8}, epoch=2)
    assert factors["a:slow"] > 1.0 > factors["a:fast"]
    assert sum(factors.values()) == pytest.approx(2.0)


def test_unknown_strategy():
    with pytest.raises(ValueError, match="Unknown loss weighting strategy 'magic'"):
        LossWeighting("magic")


TRAIN_CONFIG = """
[paths]
train = null
dev = null

[system]
seed = 0
gpu_allocator = null

[nlp]
lang = "en"
pipeline = ["transformer", "slot_intent"]
batch_size = 8

[components]

[components.transformer]
factory = "transformer"

[components.transformer.model]
@architectures = "spacy-transformers.TransformerModel.v3"
name = "TINY_BERT"

[components.transformer.model.get_spans]
@span_getters = "spacy-transformers.strided_spans.v1"
window = 64
stride = 48

[components.transformer.model.tokenizer_config]
use_fast = true

[components.slot_intent]
factory = "slot_intent"
slots_weight = 2.0

[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${paths.train}

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${paths.dev}

[training]
max_steps = 6
eval_frequency = 3
max_epochs = -1

[training.batcher]
@batchers = "spacy.batch_by_sequence.v1"
size = 8

[training.before_update]
@callbacks = "spacy_mtl.loss_weighting.v1"
strategy = "uncertainty"
learn_rate = 0.1

[training.logger]
@loggers = "spacy_mtl.ConsoleLogger.v1"
progress_every = 2
"""


@pytest.mark.slow
def test_spacy_train_with_uncertainty_weighting_logs_heads(tiny_bert, snips_docs, tmp_path, capsys):
    from spacy.cli.init_config import fill_config
    from spacy.cli.train import train

    train_path, dev_path = tmp_path / "train.spacy", tmp_path / "dev.spacy"
    DocBin(docs=snips_docs[:24], store_user_data=True).to_disk(train_path)
    DocBin(docs=snips_docs[24:32], store_user_data=True).to_disk(dev_path)
    base_path, config_path = tmp_path / "base.cfg", tmp_path / "config.cfg"
    base_path.write_text(TRAIN_CONFIG.replace("TINY_BERT", str(tiny_bert)))
    fill_config(config_path, base_path, silent=True)
    overrides = {"paths.train": str(train_path), "paths.dev": str(dev_path)}
    train(config_path, tmp_path / "out", overrides=overrides)
    output = capsys.readouterr().out.splitlines()
    heads_lines = [line for line in output if line.strip().startswith("heads:")]
    assert len(heads_lines) == 3  # evaluations at steps 0, 3 and 6
    last = heads_lines[-1]
    assert "slot_intent:slots loss" in last and "slot_intent:intent loss" in last
    weights = [float(part.rsplit("weight ", 1)[1]) for part in last.split(";")]
    # The configured 2.0 and 1.0, times exp(-s_t) that moved away from 1.
    assert weights[0] != 2.0 and weights[1] != 1.0
    encoder_lines = [line for line in output if line.strip().startswith("encoder:")]
    assert len(encoder_lines) == 3
    assert float(encoder_lines[-1].split("grad norm ")[1].split()[0]) > 0
    assert encoder_lines[-1].endswith("scale 1.000")  # one component: nothing to balance
    # Between evaluations (steps 0, 3, 6), a progress line every 2 steps.
    progress = [line.split(":")[0].strip() + line.split(";")[1] for line in output if line.strip().startswith("step ")]
    assert progress == ["step 2 next evaluation at step 3", "step 4 next evaluation at step 6"]


SCHEDULE = """
[training.before_update]
@callbacks = "spacy_mtl.loss_weighting.v1"
strategy = "static"

[training.before_update.schedules]

[training.before_update.schedules.slot_intent:intent]
@schedules = "warmup_linear.v1"
initial_rate = 1.0
warmup_steps = 4
total_steps = 8
"""


@pytest.mark.slow
def test_spacy_train_follows_a_loss_weight_schedule_by_step(tiny_bert, snips_docs, tmp_path, capsys):
    """A schedule is read at the training step, not once per call: the
    intent weight logged at evaluations after steps 0, 3 and 6 is the
    schedule's value at those steps."""
    from spacy.cli.init_config import fill_config
    from spacy.cli.train import train

    train_path, dev_path = tmp_path / "train.spacy", tmp_path / "dev.spacy"
    DocBin(docs=snips_docs[:24], store_user_data=True).to_disk(train_path)
    DocBin(docs=snips_docs[24:32], store_user_data=True).to_disk(dev_path)
    base_path, config_path = tmp_path / "base.cfg", tmp_path / "config.cfg"
    text = TRAIN_CONFIG.replace("TINY_BERT", str(tiny_bert))
    text = text[: text.index("[training.before_update]")] + SCHEDULE + text[text.index("[training.logger]"):]
    base_path.write_text(text)
    fill_config(config_path, base_path, silent=True)
    overrides = {"paths.train": str(train_path), "paths.dev": str(dev_path)}
    train(config_path, tmp_path / "out", overrides=overrides)
    output = capsys.readouterr().out.splitlines()
    heads_lines = [line for line in output if line.strip().startswith("heads:")]
    intent_weights = [float(line.split("slot_intent:intent loss")[1].split("weight ")[1].split(";")[0]) for line in heads_lines]
    # warmup_linear: step / 4 up to step 4, then (8 - step) / 4.
    assert intent_weights == pytest.approx([0.0, 0.75, 0.5])
    slots_weights = [float(line.split("slot_intent:slots loss")[1].split("weight ")[1].split(";")[0]) for line in heads_lines]
    assert slots_weights == pytest.approx([2.0, 2.0, 2.0])  # no schedule: as configured


def test_a_generator_schedule_follows_the_step_however_often_it_is_read():
    from thinc.api import registry as thinc_registry

    schedule = thinc_registry.schedules.get("warmup_linear.v1")(initial_rate=1.0, warmup_steps=4, total_steps=8)
    weighting = LossWeighting("static", schedules={"c:h": schedule})
    assert [weighting._scheduled("c:h", step) for step in (0, 0, 0, 2, 2, 6)] == pytest.approx([0, 0, 0, 0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="'c:h'.*step 6.*step 5"):
        weighting._scheduled("c:h", 5)


def test_gradnorm_scales_encoder_gradients_to_their_geometric_mean():
    weighting = LossWeighting("gradnorm", norm_decay=0.5)
    for _ in range(30):
        scales = weighting.update_encoder_gradient_scales({"big": 8.0, "small": 2.0, "idle": None})
    # The running norms reach 8 and 2; their geometric mean is 4.
    assert scales == pytest.approx({"big": 0.5, "small": 2.0})
    # A step without gold for a component leaves its running norm as it was.
    assert weighting.update_encoder_gradient_scales({"big": None, "small": 2.0}) == pytest.approx(scales)


def test_gradnorm_scales_are_capped():
    weighting = LossWeighting("gradnorm", max_scale=10.0)
    scales = weighting.update_encoder_gradient_scales({"loud": 10_000.0, "quiet": 1.0})
    assert scales == pytest.approx({"loud": 0.1, "quiet": 10.0})
    assert LossWeighting("gradnorm").update_encoder_gradient_scales({"alone": 3.0}) == {}


@pytest.mark.parametrize("setting,message", [
    ({"norm_decay": 1.0}, "norm_decay must be in \\[0, 1\\), got 1.0"),
    ({"max_scale": 0.5}, "max_scale must be >= 1, got 0.5"),
])
def test_gradnorm_settings_are_checked(setting, message):
    with pytest.raises(ValueError, match=message):
        LossWeighting("gradnorm", **setting)
