"""The config snippets of README.md and docs/ are valid as written: each
parses, each component block's settings are the factory's, and the loss
weighting and logger blocks resolve."""
import re
from pathlib import Path

import pytest
import spacy
from spacy.util import registry
from thinc.api import Config

ROOT = Path(__file__).parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def ini_blocks(path: Path) -> list:
    return re.findall(r"```ini\n(.*?)```", path.read_text(encoding="utf8"), flags=re.S)


def with_config_ancestors(block: str) -> str:
    """A snippet is part of a full config, which has the top sections
    ([components], [corpora.train], ...) and each component's [.model]; a
    snippet leaves those out. Any other section it uses must be in it."""
    sections = re.findall(r"^\[([^\]]+)\]", block, flags=re.M)
    given = set(sections)
    missing = []
    for section in sections:
        parts = section.split(".")
        for depth in range(1, len(parts)):
            ancestor = ".".join(parts[:depth])
            structural = depth <= 2 or (parts[0] == "components" and parts[depth - 1] == "model")
            if structural and ancestor not in given:
                given.add(ancestor)
                missing.append(ancestor)
    return "".join(f"[{name}]\n\n" for name in missing) + block


SNIPPETS = [(path, i, block) for path in DOCUMENTS for i, block in enumerate(ini_blocks(path))]


def test_the_documents_have_snippets_and_links_that_exist():
    assert len(SNIPPETS) > 10
    readme = (ROOT / "README.md").read_text(encoding="utf8")
    assert len(readme.splitlines()) <= 400
    for link in re.findall(r"\]\(((?:docs|project)/[^)#]+)\)", readme):
        assert (ROOT / link).exists(), link


@pytest.mark.parametrize("path,index,block", SNIPPETS, ids=[f"{p.name}:{i}" for p, i, _ in SNIPPETS])
def test_snippet_parses_and_names_real_settings(path, index, block):
    config = Config().from_str(with_config_ancestors(block), interpolate=False)
    for name, section in config.get("components", {}).items():
        if "factory" not in section:
            continue
        settings = {key: value for key, value in section.items() if key != "factory" and not isinstance(value, dict)}
        # An unknown setting is a config validation error here.
        pipe = spacy.blank("en").add_pipe(section["factory"], name=name, config=settings)
        assert all(key in getattr(pipe, "cfg", {}) or hasattr(pipe, key) for key in settings), settings
    before_update = config.get("training", {}).get("before_update")
    if before_update:
        callback = registry.resolve({"callback": before_update})["callback"]
        assert callback.strategy in ("static", "uncertainty", "dwa", "gradnorm")
        assert set(callback.schedules) == set(before_update.get("schedules", {}))
    logger = config.get("training", {}).get("logger")
    if logger:
        assert callable(registry.resolve({"logger": logger})["logger"])
