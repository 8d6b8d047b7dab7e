"""What the heads cost beside the encoder, on any machine: the all-in-one
pipeline and a stock spaCy pipeline (tagger, parser, ner, textcat listening
to one transformer) are built on the same tiny random encoder (2 layers,
width 32), where the encoder costs almost nothing and what is left is each
pipeline's overhead per word and per step.

- inference: microseconds per word of the heads, the pipeline's time minus
  its transformer's alone, at each batch size (the two timed in turn, the
  median of --runs differences after a warm-up);
- training: milliseconds per step outside the transformer's forward and
  backward passes, on the all-in-one config's own training batches.

Both pipelines first train for --warmup steps on the same batches, so that
inference runs trained heads: untrained ones propose entities everywhere and
score random trees, which is work a trained pipeline does not do.

    python scripts/head_overhead.py configs/all_trf.cfg --output metrics/head_overhead.json
"""
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import spacy
import typer
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.training.loop import create_train_batches
from spacy.util import load_config, registry, resolve_dot_names

from spacy_mtl.benchmark import device_info
from spacy_mtl.tiny_encoder import build_tiny_bert
from train_speed import take_step

DEV_SETS = ["corpus/snips_dev.spacy", "corpus/conll04_dev.spacy", "corpus/ewt_dev.spacy", "corpus/conll2000_dev.spacy"]
TRF_LISTENER = {
    "@architectures": "spacy-transformers.TransformerListener.v1",
    "grad_factor": 1.0,
    "upstream": "*",
    "pooling": {"@layers": "reduce_mean.v1"},
}


def dev_texts(n_words: int) -> List[str]:
    """About n_words words of dev texts, the dev sets taken in turn."""
    vocab = spacy.blank("en").vocab
    sets = [[doc.text for doc in DocBin().from_disk(path).get_docs(vocab)] for path in DEV_SETS]
    texts, count = [], 0
    for i in range(max(len(texts) for texts in sets)):
        for texts_of_set in sets:
            if i < len(texts_of_set) and count < n_words:
                texts.append(texts_of_set[i])
                count += len(texts_of_set[i].split())
    return texts


def all_in_one(config_path: Path, bert: Path) -> spacy.Language:
    config = load_config(config_path)
    # Both name the encoder with a [...name] section: replaced by the folder.
    config["components"]["transformer"]["model"]["name"] = str(bert)
    if isinstance(config["training"]["batcher"].get("get_length"), dict):
        config["training"]["batcher"]["get_length"]["name"] = str(bert)
    return init_nlp(config)


def stock(all_in_one_nlp: spacy.Language, bert: Path, examples: List[Example]) -> spacy.Language:
    """tagger, parser, ner and textcat on the all-in-one pipeline's transformer settings."""
    nlp = spacy.blank("en")
    transformer = dict(all_in_one_nlp.config["components"]["transformer"]["model"])
    transformer.update({"@architectures": "spacy-transformers.TransformerModel.v3", "name": str(bert)})
    for key in ("split_by_length", "all_layers", "doc_dropout"):
        transformer.pop(key, None)
    nlp.add_pipe("transformer", config={"model": transformer})
    nlp.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": TRF_LISTENER}})
    for name in ("parser", "ner"):
        nlp.add_pipe(name, config={"model": {"@architectures": "spacy.TransitionBasedParser.v2", "state_type": name,
                                             "extra_state_tokens": False, "hidden_width": 64, "maxout_pieces": 2,
                                             "use_upper": True, "tok2vec": TRF_LISTENER}})
    nlp.add_pipe("textcat", config={"model": {"@architectures": "spacy.TextCatReduce.v1", "exclusive_classes": True,
                                              "use_reduce_first": False, "use_reduce_last": False, "use_reduce_max": False,
                                              "use_reduce_mean": True, "tok2vec": TRF_LISTENER}})
    nlp.initialize(lambda: [Example(nlp.make_doc(eg.reference.text), eg.reference) for eg in examples])
    return nlp


def words_in(texts: List[str]) -> int:
    return sum(len(text.split()) for text in texts)


def time_pipe(nlp, texts: List[str], batch_size: int) -> float:
    start = time.perf_counter()
    for _ in nlp.pipe(texts, batch_size=batch_size):
        pass
    return time.perf_counter() - start


def inference(nlp, texts: List[str], batch_size: int, runs: int) -> Dict[str, float]:
    """The whole pipeline and its transformer alone timed in turn, run
    after run, so that both see the same state of a shared machine; the
    heads' cost is the median of the runs' differences."""
    words = words_in(texts)
    list(nlp.pipe(texts[: batch_size * 2], batch_size=batch_size))  # warm-up
    whole, encoder = [], []
    for _ in range(runs):
        whole.append(time_pipe(nlp, texts, batch_size))
        with nlp.select_pipes(enable=["transformer"]):
            encoder.append(time_pipe(nlp, texts, batch_size))
    heads = statistics.median(w - e for w, e in zip(whole, encoder))
    return {
        "words_per_second": round(words / statistics.median(whole), 1),
        "transformer_words_per_second": round(words / statistics.median(encoder), 1),
        "heads_us_per_word": round(1e6 * heads / words, 1),
    }


class EncoderClock:
    """Seconds spent in the transformer's forward and backward passes."""

    def __init__(self, nlp) -> None:
        self.seconds = 0.0
        model = nlp.get_pipe("transformer").model
        begin_update = model.begin_update

        def timed_begin_update(docs):
            start = time.perf_counter()
            output, backprop = begin_update(docs)
            self.seconds += time.perf_counter() - start

            def timed_backprop(d_output):
                start = time.perf_counter()
                result = backprop(d_output)
                self.seconds += time.perf_counter() - start
                return result

            return output, timed_backprop

        model.begin_update = timed_begin_update


def training(nlp, batches: List[List[Example]], warmup: int, training_config: dict) -> Dict[str, float]:
    """Steps as spacy train takes them (train_speed.take_step), on the
    config's optimizer, dropout and gradient accumulation."""
    T = {
        "optimizer": registry.resolve({"optimizer": training_config["optimizer"]})["optimizer"],
        "dropout": training_config["dropout"],
        "accumulate_gradient": training_config["accumulate_gradient"],
    }
    clock = EncoderClock(nlp)
    steps, outside = [], []
    for i, batch in enumerate(batches):
        clock.seconds = 0.0
        start = time.perf_counter()
        take_step(nlp, batch, T)
        seconds = time.perf_counter() - start
        if i >= warmup:
            steps.append(seconds)
            outside.append(seconds - clock.seconds)
    return {
        "ms_per_step": round(1000 * statistics.mean(steps), 1),
        "ms_per_step_outside_encoder": round(1000 * statistics.mean(outside), 1),
    }


def main(
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="The all-in-one config"),
    n_words: int = typer.Option(20_000, help="Words of dev text to annotate"),
    batch_sizes: str = typer.Option("64,256", help="Texts per batch, comma-separated"),
    runs: int = typer.Option(7, help="Timed inference runs of each pipeline and its transformer in turn (the median is kept)"),
    steps: int = typer.Option(30, help="Training steps to time"),
    warmup: int = typer.Option(300, help="Training steps taken first, untimed"),
    output: Path = typer.Option(None, help="Write the figures as JSON here"),
) -> None:
    texts = dev_texts(n_words)
    with tempfile.TemporaryDirectory() as tmp:
        bert = build_tiny_bert(Path(tmp), texts, vocab_size=8000, min_frequency=2, max_length=512)
        ours = all_in_one(config_path, bert)
        config = ours.config.interpolate()
        train_corpus, = resolve_dot_names(config, [config["training"]["train_corpus"]])
        batcher = registry.resolve({"batcher": config["training"]["batcher"]})["batcher"]
        batches = [batch for _, batch in zip(range(warmup + steps), (b for _, b in create_train_batches(ours, train_corpus, batcher, -1)))]
        theirs = stock(ours, bert, [eg for batch in batches for eg in batch])
        pipelines = {"all-in-one (spacy-mtl)": ours, "stock spaCy (tagger, parser, ner, textcat)": theirs}
        result = {"config": str(config_path), "device": device_info(), "words": words_in(texts), "pipelines": {}}
        for name, nlp in pipelines.items():
            typer.echo(f"{name}: training ...", err=True)
            own_batches = [[Example(nlp.make_doc(eg.reference.text), eg.reference) for eg in batch] for batch in batches]
            figures = {"training": training(nlp, own_batches, warmup, config["training"])}
            typer.echo(f"{name}: inference ...", err=True)
            figures.update({f"batch_{size}": inference(nlp, texts, int(size), runs) for size in batch_sizes.split(",")})
            result["pipelines"][name] = figures
    sizes = batch_sizes.split(",")
    print("| pipeline | " + " | ".join(f"heads µs/word, batch {size}" for size in sizes) + " | training ms/step outside the encoder |")
    print("|---|" + "---|" * (len(sizes) + 1))
    for name, figures in result["pipelines"].items():
        cells = [str(figures[f"batch_{size}"]["heads_us_per_word"]) for size in sizes]
        print(f"| {name} | " + " | ".join(cells) + f" | {figures['training']['ms_per_step_outside_encoder']} |")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
