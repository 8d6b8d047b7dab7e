"""The `spacy-mtl` command line (also `python -m spacy_mtl`)."""
from pathlib import Path

import typer
from wasabi import msg

from .convert import ConversionError, convert_relations, convert_slu

app = typer.Typer(name="spacy-mtl", help="Multi-task learning for spaCy pipelines.", no_args_is_help=True)
convert_app = typer.Typer(help="Convert standard formats to .spacy (DocBin) files.", no_args_is_help=True)
app.add_typer(convert_app, name="convert")


@convert_app.command("slu")
def convert_slu_command(
    in_dir: Path = typer.Argument(..., help="Folder with seq.in, seq.out (IOB2 slots) and label (intents)"),
    out_path: Path = typer.Argument(..., help="Output .spacy file"),
) -> None:
    """Convert an ATIS/SNIPS-style folder (seq.in, seq.out, label) to DocBin."""
    try:
        n_docs = convert_slu(in_dir, out_path)
    except ConversionError as err:
        msg.fail("Conversion failed", str(err), exits=1)
    msg.good(f"Wrote {n_docs} docs to {out_path}")


@convert_app.command("relations")
def convert_relations_command(
    in_path: Path = typer.Argument(..., help="SpERT JSON file (tokens, entities, relations)"),
    out_path: Path = typer.Argument(..., help="Output .spacy file"),
) -> None:
    """Convert SpERT JSON (CoNLL04 and similar) to DocBin: entities in doc.ents,
    relations in doc._.relations."""
    try:
        n_docs = convert_relations(in_path, out_path)
    except ConversionError as err:
        msg.fail("Conversion failed", str(err), exits=1)
    msg.good(f"Wrote {n_docs} docs to {out_path}")
