"""Memory over a long stream: the release_memory component trims the heap
every N docs, survives saving and loading, and names a bad setting; the
package bounds oneDNN's cache of primitives."""
import os
import subprocess
import sys

import pytest
import spacy

from spacy_mtl.pipeline import release_memory


def test_trims_every_n_docs(monkeypatch):
    calls = []
    monkeypatch.setattr(release_memory, "malloc_trim", lambda: calls.append)
    nlp = spacy.blank("en")
    nlp.add_pipe("release_memory", config={"every_n_docs": 4})
    docs = list(nlp.pipe(f"text number {i}" for i in range(10)))
    assert [doc.text for doc in docs] == [f"text number {i}" for i in range(10)]
    assert calls == [0, 0]  # after the 4th and the 8th doc


def test_without_glibc_it_passes_docs_through(monkeypatch):
    monkeypatch.setattr(release_memory, "malloc_trim", lambda: None)
    nlp = spacy.blank("en")
    nlp.add_pipe("release_memory", config={"every_n_docs": 1})
    assert nlp("still here").text == "still here"


def test_saved_pipeline_keeps_the_component(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("release_memory", config={"every_n_docs": 16})
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert loaded.get_pipe("release_memory").every_n_docs == 16
    assert [doc.text for doc in loaded.pipe(["a", "b"], n_process=2)] == ["a", "b"]


def test_bad_setting_is_named():
    with pytest.raises(ValueError, match="every_n_docs must be at least 1, got 0"):
        spacy.blank("en").add_pipe("release_memory", config={"every_n_docs": 0})


@pytest.mark.parametrize("preset,expected", [(None, "8"), ("100", "100")])
def test_importing_spacy_mtl_bounds_onednns_primitive_cache_unless_set(preset, expected):
    """oneDNN keeps a compiled primitive per input shape (1,024 by default,
    about a megabyte each), and batches of text come in ever new shapes: the
    package bounds the cache, and keeps a value the user has set."""
    env = {name: value for name, value in os.environ.items() if name != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    if preset is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = preset
    script = "import os, spacy_mtl; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == expected
