"""The package's layers import each other in one direction only: the
converters know neither models nor components, training reads components
through their API, and nothing imports its way back up."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "spacy_mtl"

# subpackage -> the spacy_mtl modules and subpackages it may import from
ALLOWED = {
    "convert": {"names", "relations", "trees"},
    "ml": {"compat", "names", "trees"},
    "training": {"compat", "names", "weighting"},
    "pipeline": {"compat", "ml", "names", "relations", "scoring", "weighting"},
    "annotate": {"benchmark", "inputs", "names", "relations"},
}


def package_imports(subpackage: str) -> dict:
    """spacy_mtl module or subpackage -> the files of `subpackage` importing it."""
    found = {}
    for path in sorted((PACKAGE / subpackage).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module:
                found.setdefault(node.module.split(".")[0], []).append(path.name)
            elif isinstance(node, ast.ImportFrom) and node.level == 2:
                for alias in node.names:
                    found.setdefault(alias.name, []).append(path.name)
    return found


@pytest.mark.parametrize("subpackage", ALLOWED)
def test_subpackage_imports_only_lower_layers(subpackage):
    imports = package_imports(subpackage)
    assert not set(imports) - ALLOWED[subpackage], {name: imports[name] for name in set(imports) - ALLOWED[subpackage]}
