"""A fixed sample of a corpus, and its texts: every Nth doc of a .spacy file
(the same docs every run), and optionally every doc's text, a text a line
(raw text for mlm_aux).

    python scripts/sample_corpus.py corpus/conll04_train.spacy corpus/conll04_train_10pct.spacy --every 10 \
        --texts corpus/conll04_train_texts.txt
"""
from pathlib import Path

import spacy
import typer
from spacy.tokens import DocBin


def main(
    source: Path = typer.Argument(..., exists=True, dir_okay=False),
    output: Path = typer.Argument(...),
    every: int = typer.Option(10, help="Keep docs 0, N, 2N, ..."),
    texts: Path = typer.Option(None, help="Also write every doc's text here, a text a line"),
) -> None:
    docs = list(DocBin().from_disk(source).get_docs(spacy.blank("xx").vocab))
    sample = docs[::every]
    output.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=sample, store_user_data=True).to_disk(output)
    print(f"{len(sample)} of {len(docs)} docs -> {output}")
    if texts is not None:
        texts.write_text("".join(" ".join(doc.text.split()) + "\n" for doc in docs), encoding="utf8")
        print(f"{len(docs)} texts -> {texts}")


if __name__ == "__main__":
    typer.run(main)
