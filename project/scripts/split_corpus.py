"""Split a .spacy file into train and held-out parts: the last N docs are
held out (a fixed, documented slice, e.g. of CoNLL-2000 train, which has no
dev split)."""
from pathlib import Path

import typer
from spacy.tokens import DocBin
from spacy.vocab import Vocab

from spacy_mtl.convert import write_docbin


def main(
    source: Path = typer.Argument(..., help="The .spacy file to split"),
    train_out: Path = typer.Argument(..., help="Output: all docs but the last N"),
    heldout_out: Path = typer.Argument(..., help="Output: the last N docs"),
    n_heldout: int = typer.Option(1000, help="N, the number of docs held out"),
) -> None:
    docs = list(DocBin().from_disk(source).get_docs(Vocab()))
    if not 0 < n_heldout < len(docs):
        raise typer.BadParameter(f"{source} has {len(docs)} docs; cannot hold out {n_heldout}")
    write_docbin(docs[:-n_heldout], train_out, source)
    write_docbin(docs[-n_heldout:], heldout_out, source)
    print(f"{len(docs) - n_heldout} docs -> {train_out}, {n_heldout} docs -> {heldout_out}")


if __name__ == "__main__":
    typer.run(main)
