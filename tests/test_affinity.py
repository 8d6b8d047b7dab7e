"""Inter-task affinity: a head's step helps itself, a head with a random
target helps the others less, the measurement leaves training unchanged,
and the grouping is the best partition."""
import random

import numpy
import pytest
import spacy
from spacy.util import fix_random_seed

from pipelines import TRF_MODEL, component_weights, examples_for, update
from spacy_mtl.affinity import best_grouping, check_every_head_has_gold, train_with_affinity
from spacy_mtl.inputs import InputError

HEADS = ["slot_intent:slots", "slot_intent:intent", "cascade:tag"]


def toy_pipeline(tiny_bert, snips_docs):
    """slot_intent on SNIPS-like docs, and a cascade tagging the same docs
    with random tags: a task with nothing to share."""
    rng = random.Random(0)
    docs = [doc.copy() for doc in snips_docs[:50]]
    for doc in docs:
        for token in doc:
            token.tag_ = rng.choice("ABCDE")
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(tiny_bert)}})
    nlp.add_pipe("slot_intent")
    nlp.add_pipe("cascade", config={"model": {"levels": ["tag"], "inputs": {}, "layers": {"tag": -1}}})
    examples = examples_for(nlp, docs)
    optimizer = nlp.initialize(lambda: examples)
    batches = [examples[i : i + 10] for i in range(0, 50, 10)] * 6
    return nlp, optimizer, batches


def weights_of(nlp) -> list:
    """Every parameter of every component, thinc's and PyTorch's (copies)."""
    return [array for _, component in nlp.pipeline for array in component_weights(component)]


def test_a_head_helps_itself_and_a_random_task_helps_less(tiny_bert, snips_docs):
    nlp, optimizer, batches = toy_pipeline(tiny_bert, snips_docs)
    result = train_with_affinity(nlp, iter(batches), lambda batch: update(nlp, batch, optimizer), steps=30, every=3,
                                 lookahead_rate=0.01)
    assert result["heads"] == HEADS and result["measurements"] == 10
    Z = numpy.array(result["lookahead"])
    assert (numpy.diag(Z) > 0).all(), Z
    random_tags = HEADS.index("cascade:tag")
    for real in (HEADS.index("slot_intent:slots"), HEADS.index("slot_intent:intent")):
        assert Z[random_tags, real] < Z[real, real], Z
    cosine = numpy.array(result["cosine"])
    numpy.testing.assert_allclose(numpy.diag(cosine), 1.0, rtol=1e-5)
    numpy.testing.assert_allclose(cosine, cosine.T, atol=1e-6)


def test_measuring_leaves_training_unchanged(tiny_bert, snips_docs):
    """The weights after 12 steps (dropout on) with a measurement every 2
    steps are those of the same 12 steps without one."""
    trained = []
    for every in (0, 2):
        nlp, optimizer, batches = toy_pipeline(tiny_bert, snips_docs)

        def take_step(batch):
            nlp.update(batch, drop=0.1, sgd=False)
            for _, component in nlp.pipeline:
                component.finish_update(optimizer)

        result = train_with_affinity(nlp, iter(batches), take_step, steps=12, every=every, lookahead_rate=0.01)
        assert result["measurements"] == (6 if every else 0)
        trained.append(weights_of(nlp))
    assert len(trained[0]) == len(trained[1]) > 10
    for plain, measured in zip(*trained):
        numpy.testing.assert_array_equal(measured, plain)


def test_a_single_head_and_a_head_without_gold_are_named(tiny_bert, snips_docs):
    nlp, _, tagged_batches = toy_pipeline(tiny_bert, snips_docs)
    check_every_head_has_gold(nlp, tagged_batches)
    untagged = examples_for(nlp, snips_docs[:30])  # SNIPS docs hold no tags
    with pytest.raises(InputError, match="cascade:tag: no gold in the first 3 training batches"):
        check_every_head_has_gold(nlp, [untagged[i : i + 10] for i in range(0, 30, 10)])
    single = spacy.blank("en")
    single.add_pipe("transformer", config={"model": {**TRF_MODEL, "name": str(tiny_bert)}})
    single.add_pipe("cascade", config={"model": {"levels": ["tag"], "inputs": {}, "layers": {"tag": -1}}})
    with pytest.raises(InputError, match=r"at least two heads; the pipeline has \['cascade:tag'\]"):
        train_with_affinity(single, iter([]), lambda batch: None, steps=1, every=1, lookahead_rate=0.01)


def test_grouping_is_the_partition_with_the_most_affinity_within_groups():
    heads = ["a", "b", "c", "d"]
    affinity = [
        [0.5, 0.3, -0.1, 0.0],
        [0.2, 0.4, 0.0, -0.2],
        [-0.3, 0.1, 0.6, 0.25],
        [0.0, None, 0.2, 0.3],
    ]
    groups, score = best_grouping(heads, affinity, 2)
    assert sorted(groups) == [["a", "b"], ["c", "d"]]
    assert score == pytest.approx(0.3 + 0.2 + 0.25 + 0.2)
    assert best_grouping(heads, affinity, 4)[0] == [["a"], ["b"], ["c"], ["d"]]
    with pytest.raises(InputError, match="groups 5"):
        best_grouping(heads, affinity, 5)


@pytest.mark.slow
def test_the_command_trains_a_config_and_writes_the_matrix_and_groupings(tiny_bert, snips_docs, tmp_path):
    """`spacy-mtl affinity CONFIG` on a config of the toy pipeline: a table,
    affinity.json with every pair and the suggested groupings, a heat map;
    a config with one head is one line naming it."""
    import json

    from spacy.tokens import DocBin
    from typer.testing import CliRunner

    from spacy_mtl.cli import app

    nlp, _, batches = toy_pipeline(tiny_bert, snips_docs)
    DocBin(docs=[eg.reference for batch in batches[:5] for eg in batch]).to_disk(tmp_path / "train.spacy")
    config = nlp.config.copy()
    config["paths"].update({"train": str(tmp_path / "train.spacy"), "dev": str(tmp_path / "train.spacy")})
    for split in ("train", "dev"):
        config["corpora"][split] = {"@readers": "spacy.Corpus.v1", "path": f"${{paths.{split}}}"}
    config["training"]["batcher"] = {"@batchers": "spacy.batch_by_sequence.v1", "size": 10}
    config.to_disk(tmp_path / "config.cfg")
    result = CliRunner().invoke(app, ["affinity", str(tmp_path / "config.cfg"), "-o", str(tmp_path / "out"),
                                      "--steps", "6", "--every", "2"])
    assert result.exit_code == 0, result.output
    assert "suggested grouping" in result.output
    written = json.loads((tmp_path / "out" / "affinity.json").read_text())
    assert written["heads"] == HEADS and written["measurements"] == 3
    assert all(value is not None for row in written["lookahead"] for value in row)
    assert [len(groups) for groups in (v["groups"] for v in written["groupings"].values())] == [2, 3]
    assert (tmp_path / "out" / "affinity.png").stat().st_size > 1000

    one_head = config.copy()
    del one_head["components"]["slot_intent"]
    one_head["nlp"]["pipeline"] = ["transformer", "cascade"]
    one_head.to_disk(tmp_path / "one_head.cfg")
    result = CliRunner().invoke(app, ["affinity", str(tmp_path / "one_head.cfg"), "-o", str(tmp_path / "out2")])
    assert result.exit_code == 1
    assert "affinity needs at least two heads; the pipeline has ['cascade:tag']" in " ".join(result.output.split())
    broken = config.copy()
    broken["paths"]["train"] = str(tmp_path / "missing.spacy")
    broken.to_disk(tmp_path / "broken.cfg")
    result = CliRunner().invoke(app, ["affinity", str(tmp_path / "broken.cfg"), "-o", str(tmp_path / "out3")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "broken.cfg:" in " ".join(result.output.split())
