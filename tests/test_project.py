"""The spaCy project: its README is `spacy project document`'s output, and
every file under project/metrics/ is an output of one of its commands."""
import re
from pathlib import Path

import srsly

PROJECT = Path(__file__).parents[1] / "project"


def test_project_readme_is_the_generated_one(tmp_path):
    from weasel.cli.document import project_document

    project_document(PROJECT, tmp_path / "README.md")
    assert (tmp_path / "README.md").read_text() == (PROJECT / "README.md").read_text(), (
        "project/README.md is out of date: python -m spacy project document project --output project/README.md"
    )


def output_patterns() -> list:
    """Each command output under metrics/, as a pattern over file names
    (any value of the project's variables)."""
    project = srsly.read_yaml(PROJECT / "project.yml")
    outputs = [path for command in project["commands"] for path in command.get("outputs", [])]
    return [
        re.compile("".join(".*" if part.startswith("${") else re.escape(part) for part in re.split(r"(\$\{[^}]+\})", path)) + "$")
        for path in outputs
        if path.startswith("metrics/")
    ]


def test_every_metrics_file_is_a_command_output():
    patterns = output_patterns()
    files = [path.relative_to(PROJECT).as_posix() for path in (PROJECT / "metrics").rglob("*") if path.is_file()]
    run_copies = re.compile(r"metrics/runs/.*_(timing\.json|train\.log)$")  # compare-table --keep-run-files
    unnamed = [name for name in files if not any(p.match(name) for p in patterns) and not run_copies.match(name)]
    assert files and not unnamed, unnamed
