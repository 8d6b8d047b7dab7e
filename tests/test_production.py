"""What production needs: a wheel that installs and loads, deterministic
training, and no network access at load or run time."""
import configparser
import json
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.util import fix_random_seed, registry

from pipelines import examples_for, make_nlp, train


@pytest.fixture(scope="module")
def saved_pipeline(tiny_bert, snips_docs, tmp_path_factory):
    nlp = make_nlp(tiny_bert)
    train(nlp, examples_for(nlp, snips_docs[:20]), n_epochs=2)
    path = tmp_path_factory.mktemp("pipeline") / "model"
    nlp.to_disk(path)
    return path


@pytest.mark.slow
def test_spacy_package_wheel_installs_and_loads(saved_pipeline, tmp_path):
    """`spacy package` -> wheel requiring spacy-mtl -> installed with spacy-mtl
    into a fresh virtual environment -> spacy.load("<package name>") with that
    environment's Python gives the predictions of the saved pipeline."""
    packages = tmp_path / "packages"
    packages.mkdir()
    subprocess.run(
        [sys.executable, "-m", "spacy", "package", str(saved_pipeline), str(packages),
         "--name", "mtl_tiny", "--version", "0.0.1", "--build", "wheel", "--force"],
        check=True, capture_output=True,
    )
    wheel = next(packages.glob("**/*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith("METADATA"))
        requirements = [line for line in archive.read(metadata).decode().splitlines() if line.startswith("Requires-Dist")]
    assert any("spacy-mtl" in line for line in requirements), requirements
    # The environment sees this one's site-packages for spaCy, PyTorch and the
    # rest (no download), but spacy-mtl and the pipeline are installed into it.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    repository = Path(__file__).parents[1]
    pip = [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet"]
    subprocess.run(pip + [str(repository), str(wheel)], check=True, capture_output=True)
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
    assert "spacy-mtl" not in check.stdout and "mtl-tiny" not in check.stdout, check.stdout
    script = (
        "import json, spacy, spacy_mtl; nlp = spacy.load('en_mtl_tiny'); doc = nlp('play some jazz music');"
        "print(json.dumps([spacy_mtl.__file__, doc.cats, [(s.start, s.end, s.label_) for s in doc.spans['slots']]]))"
    )
    result = subprocess.run([python, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    module_file, cats, slots = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(module_file).is_relative_to(venv)
    expected = spacy.load(saved_pipeline)("play some jazz music")
    assert cats == pytest.approx(expected.cats, abs=1e-5)
    assert slots == [[s.start, s.end, s.label_] for s in expected.spans["slots"]]


def trained_weights(tiny_bert, docs) -> bytes:
    fix_random_seed(0)
    nlp = make_nlp(tiny_bert)
    train(nlp, examples_for(nlp, docs), n_epochs=2)
    return nlp.get_pipe("transformer").to_bytes() + nlp.get_pipe("slot_intent").to_bytes()


def test_same_seed_gives_identical_weights(tiny_bert, snips_docs):
    first = trained_weights(tiny_bert, snips_docs[:20])
    assert trained_weights(tiny_bert, snips_docs[:20]) == first


def test_loading_and_running_needs_no_network(saved_pipeline, monkeypatch):
    def blocked(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.setattr(socket, "create_connection", blocked)
    nlp = spacy.load(saved_pipeline)
    doc = nlp("book a table for two in paris")
    assert numpy.isclose(sum(doc.cats.values()), 1.0)


def test_cli_evaluate_prints_and_writes_every_metric(saved_pipeline, snips_docs, tmp_path):
    import json

    from spacy.tokens import DocBin
    from typer.testing import CliRunner

    from spacy_mtl.cli import app

    data = tmp_path / "dev.spacy"
    DocBin(docs=snips_docs[20:30], store_user_data=True).to_disk(data)
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(app, ["evaluate", str(saved_pipeline), str(data), "--output", str(out)])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())["scores"]
    assert {"slot_f", "intent_acc", "sent_acc"} <= set(scores)
    assert "sent_acc" in result.output
    result = CliRunner().invoke(app, ["evaluate", str(saved_pipeline), str(tmp_path / "missing.spacy")])
    # The message may wrap at the terminal's width, wherever the temp path ends.
    assert result.exit_code == 1 and "file not found" in " ".join(result.output.split())


def test_cli_evaluate_warns_of_gold_labels_the_pipeline_never_predicts(saved_pipeline, snips_docs, tmp_path):
    import json

    from spacy.tokens import DocBin, Span
    from typer.testing import CliRunner

    from spacy_mtl.cli import app

    doc = snips_docs[20].copy()
    doc.spans["slots"] = [Span(doc, 0, 1, label="not_a_slot")]
    data, out = tmp_path / "dev.spacy", tmp_path / "scores.json"
    DocBin(docs=[doc, snips_docs[21]], store_user_data=True).to_disk(data)
    result = CliRunner().invoke(app, ["evaluate", str(saved_pipeline), str(data), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "slot_intent cannot predict gold slot_labels not_a_slot" in result.output
    assert json.loads(out.read_text())["unknown_gold_labels"] == {"slot_intent": {"slot_labels": ["not_a_slot"]}}


def test_cli_benchmark_reports_speed_and_memory(saved_pipeline, snips_docs, tmp_path):
    import json

    from typer.testing import CliRunner

    from spacy_mtl.cli import app

    data = tmp_path / "texts.txt"
    data.write_text("\n".join(doc.text for doc in snips_docs))
    out = tmp_path / "bench.json"
    args = ["benchmark", str(saved_pipeline), str(saved_pipeline), "--data", str(data), "--n-words", "300", "--runs", "2", "--output", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["words"] >= 300 and len(report["words_per_second"]) == 2
    assert report["median_words_per_second"] > 0 and report["peak_rss_mb"] > 0
    assert report["device"] == "cpu" and "peak_gpu_memory_mb" not in report
    assert report["components"] == [["transformer", "slot_intent"]] * 2


def test_cli_benchmark_beside_transformer_times_both_in_turn(saved_pipeline, snips_docs, tmp_path):
    """--beside-transformer times the pipeline and its transformer alone run
    after run: both speeds per run, the pipeline's share of its transformer's
    speed (below 1 by what slot_intent costs, within noise) and that cost."""
    import json

    from typer.testing import CliRunner

    from spacy_mtl.cli import app

    data = tmp_path / "texts.txt"
    data.write_text("\n".join(doc.text for doc in snips_docs))
    out = tmp_path / "ratio.json"
    args = ["benchmark", str(saved_pipeline), "--beside-transformer", "--data", str(data), "--n-words", "300",
            "--runs", "3", "--output", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["components"] == ["transformer", "slot_intent"] and report["runs"] == 3
    assert len(report["words_per_second"]) == len(report["transformer_words_per_second"]) == 3
    shares = sorted(a / b for a, b in zip(report["words_per_second"], report["transformer_words_per_second"]))
    assert report["median_share_of_transformer"] == pytest.approx(shares[1], abs=1e-3)
    assert 0 < report["median_share_of_transformer"] < 1.5 and report["device"] == "cpu"
    assert isinstance(report["other_components_us_per_word"], float)


# Entry-point group in setup.cfg -> spaCy registry.
ENTRY_POINT_GROUPS = {
    "spacy_architectures": "architectures",
    "spacy_scorers": "scorers",
    "spacy_readers": "readers",
    "spacy_batchers": "batchers",
    "spacy_callbacks": "callbacks",
    "spacy_loggers": "loggers",
    "spacy_misc": "misc",
    "thinc_optimizers": "optimizers",
}


@pytest.mark.parametrize("group", sorted(ENTRY_POINT_GROUPS))
def test_every_registered_function_is_an_entry_point(group):
    """spaCy finds what a config names through entry points: a function
    registered only by import fails in a config whose components are all
    stock ones (e.g. WithCasing around a listener of spaCy's ner)."""
    import spacy_mtl  # noqa: F401  (runs every @registry decorator)

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parent.parent / "setup.cfg")
    lines = setup["options.entry_points"].get(group, "").strip().splitlines()
    declared = {line.split("=")[0].strip() for line in lines}
    registered = {name for name in getattr(registry, ENTRY_POINT_GROUPS[group]).get_all() if name.startswith("spacy_mtl.")}
    assert registered - declared == set()
