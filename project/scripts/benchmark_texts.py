"""The benchmark's text: docs of several dev sets taken in turn (one of each,
then the next of each, ...) until about N words, one text a line.

benchmark_texts.py OUT.txt DEV.spacy... [--n-words 20000]
"""
from itertools import zip_longest
from pathlib import Path
from typing import List

import spacy
import typer
from spacy.tokens import DocBin


def main(
    output: Path,
    corpora: List[Path],
    n_words: int = typer.Option(20_000, help="Words of text in all"),
) -> None:
    vocab = spacy.blank("xx").vocab
    texts_per_corpus = [[doc.text for doc in DocBin().from_disk(path).get_docs(vocab)] for path in corpora]
    lines, count = [], 0
    for row in zip_longest(*texts_per_corpus):
        for text in row:
            if text and count < n_words:
                lines.append(" ".join(text.split()))
                count += len(text.split())
    if count < n_words:
        raise SystemExit(f"The corpora hold only {count} words, fewer than {n_words}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines) + "\n", encoding="utf8")
    print(f"{len(lines)} texts, {count} words -> {output}")


if __name__ == "__main__":
    typer.run(main)
