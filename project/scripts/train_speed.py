"""Training speed of a config: optimizer steps taken as `spacy train` takes
them (accumulate_gradient included), after a warm-up, on this machine.

Prints seconds per step, words per second, words per step, and the share of
real word pieces in what the transformer pads (each forward pass is padded
to its longest doc, in its tokenizer's word pieces, or each group of similar
length with `split_by_length`; in spaCy tokens for a pipeline without a
transformer).

    python scripts/train_speed.py configs/all_trf.cfg --steps 16 --warmup 4
    python scripts/train_speed.py configs/all_trf.cfg --training.accumulate_gradient 1
    python scripts/train_speed.py configs/all_trf.cfg --gpu-id 0 --system.gpu_allocator pytorch
    python scripts/train_speed.py configs/all_trf.cfg --weights training/all_trf/model-last
    python scripts/train_speed.py configs/all_trf.cfg --profile metrics/train_steps.prof
    python scripts/train_speed.py configs/all_trf.cfg --steps 60 --warmup 0 --thinc-blis
    python scripts/train_speed.py configs/all_trf.cfg --steps 60 --warmup 0 --heads-on-every-doc

The first steps of a run cost more than later ones (an untrained entity
head proposes many spurious entities, so many relation candidates):
`--weights` times steps that continue from a trained pipeline's weights.
"""
import cProfile
import json
import pstats
import time
from pathlib import Path
from typing import Callable, List, Tuple

import numpy
import typer
from spacy.cli._util import parse_config_overrides, setup_gpu
from spacy.schemas import ConfigSchemaInit, ConfigSchemaTraining
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.training.loop import create_train_batches, subdivide_batch
from spacy.util import load_config, registry, resolve_dot_names
from thinc.api import Model, NumpyOps

from spacy_mtl.benchmark import device_info, synchronize_gpu
from spacy_mtl.ml.encoders import length_groups
from spacy_mtl.ml.ops import set_numpy_ops
from spacy_mtl.pipeline.base import MultiTaskPipe


app = typer.Typer(add_completion=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False),
    steps: int = typer.Option(16, help="Steps to time"),
    warmup: int = typer.Option(4, help="Steps to take first, untimed"),
    gpu_id: int = typer.Option(-1, help="GPU to use (-1: CPU)"),
    output: Path = typer.Option(None, help="Write the numbers as JSON here"),
    weights: Path = typer.Option(None, exists=True, file_okay=False, help="Start from this trained pipeline's weights"),
    profile: Path = typer.Option(None, help="Profile further steps after the timed ones; write the stats (pstats) here"),
    profile_steps_count: int = typer.Option(8, "--profile-steps", help="Steps to profile with --profile"),
    thinc_blis: bool = typer.Option(False, "--thinc-blis", help="Multiply the thinc heads' matrices with thinc's BLIS instead of PyTorch (to compare)"),
    heads_on_every_doc: bool = typer.Option(False, "--heads-on-every-doc", help="Run each component's heads over every doc of a batch, as spacy-mtl did before they skipped the docs without their gold (to compare)"),
):
    overrides = parse_config_overrides(ctx.args)
    setup_gpu(gpu_id)
    nlp = init_nlp(load_config(config_path, overrides=overrides, interpolate=False), use_gpu=gpu_id)
    config = nlp.config.interpolate()
    if thinc_blis:
        use_thinc_blis(nlp)
    if heads_on_every_doc:
        MultiTaskPipe._examples_with_gold = lambda pipe, examples: list(range(len(examples)))
    if weights is not None:
        nlp.from_disk(weights)
        # Loading replaces the encoder's parameters: set up what
        # [initialize.after_init] set up for training (frozen parameters).
        after_init = registry.resolve(config["initialize"], schema=ConfigSchemaInit)["after_init"]
        if after_init is not None:
            after_init(nlp)
    T = registry.resolve(config["training"], schema=ConfigSchemaTraining)
    (train_corpus,) = resolve_dot_names(config, [T["train_corpus"]])
    batches = create_train_batches(nlp, train_corpus, T["batcher"], T["max_epochs"])
    count_padding, unit = padding_counter(nlp)
    seconds, words, real, padded = 0.0, 0, 0, 0
    for i, (_, batch) in enumerate(batches):
        if i == warmup + steps:
            break
        start = time.perf_counter()
        parts = take_step(nlp, batch, T)
        if i >= warmup:
            seconds += time.perf_counter() - start
            words += sum(len(eg) for eg in batch)
            for part in parts:
                part_real, part_padded = count_padding(part)
                real, padded = real + part_real, padded + part_padded
        typer.echo(f"step {i + 1}/{warmup + steps}", err=True)
    if not words:
        raise typer.BadParameter("the corpus ran out before the timed steps", param_hint="--steps")
    typer.echo(
        f"{config_path} {overrides or ''}\n"
        f"{seconds / steps:.2f} s/step, {words / seconds:.0f} words/s, "
        f"{words / steps:.0f} words/step, {real / padded:.0%} of the padded batches' {unit} are real"
    )
    if output is not None:
        result = {
            "config": str(config_path),
            "overrides": overrides,
            "weights": None if weights is None else str(weights),
            "steps": steps,
            "warmup": warmup,
            "matrix_products": "thinc BLIS" if thinc_blis else "PyTorch",
            "heads_run_on": "every doc" if heads_on_every_doc else "docs with their gold",
            "seconds_per_step": round(seconds / steps, 4),
            "words_per_second": round(words / seconds, 1),
            "words_per_step": round(words / steps, 1),
            "padded_unit": unit,
            "real_share_of_padded": round(real / padded, 3),
            **device_info(),
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")
    if profile is not None:
        profile_steps(nlp, batches, T, profile_steps_count, profile)


def take_step(nlp, batch: List[Example], T) -> List[List[Example]]:
    """One optimizer step as spaCy's training loop takes it; returns the
    parts the batch was split into for gradient accumulation."""
    parts = list(subdivide_batch(batch, T["accumulate_gradient"]))
    for part in parts:
        nlp.update(part, drop=T["dropout"], sgd=False)
    for _, component in nlp.pipeline:
        if getattr(component, "is_trainable", False) and component.model not in (True, False, None):
            component.finish_update(T["optimizer"])
    T["optimizer"].step_schedules()
    synchronize_gpu()
    return parts


def profile_steps(nlp, batches, T, n_steps: int, path: Path) -> None:
    """Take n_steps more steps under cProfile (after the timed ones, so the
    profiler's overhead stays out of the timings); print and save the stats."""
    profiler = cProfile.Profile()
    for _, (_, batch) in zip(range(n_steps), batches):
        profiler.runcall(take_step, nlp, batch, T)
    path.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(path))
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(30)


def use_thinc_blis(nlp) -> None:
    blis_ops = NumpyOps(use_blis=True)
    for _, component in nlp.pipeline:
        if isinstance(getattr(component, "model", None), Model):
            set_numpy_ops(component.model, blis_ops)


def padding_counter(nlp) -> Tuple[Callable[[List[Example]], Tuple[int, int]], str]:
    """(real, padded) lengths of a batch as its encoder pads it: each span of
    a doc (the transformer's get_spans) is a row of word pieces, padded to
    the longest row (of its group, with `split_by_length`); without a
    transformer, each doc a row of spaCy tokens."""
    if "transformer" not in nlp.pipe_names:
        def count_tokens(examples: List[Example]) -> Tuple[int, int]:
            lengths = [len(eg.predicted) for eg in examples]
            return sum(lengths), max(lengths) * len(lengths)

        return count_tokens, "tokens"
    model = nlp.get_pipe("transformer").model

    def count_wordpieces(examples: List[Example]) -> Tuple[int, int]:
        # Called after the step: a DocDropout encoder's get_spans records
        # each row's rate for the next forward pass, which calls it again.
        nested_spans = model.attrs["get_spans"]([eg.predicted for eg in examples])
        texts = [span.text for spans in nested_spans for span in spans]
        lengths = numpy.array([len(ids) for ids in model.tokenizer(texts)["input_ids"]])
        min_saving = model.layers[0].attrs.get("split_by_length")
        groups = [lengths] if min_saving is None else [lengths[rows] for rows in length_groups(lengths, min_saving)]
        return int(lengths.sum()), sum(int(group.max()) * len(group) for group in groups)

    return count_wordpieces, "word pieces"


if __name__ == "__main__":
    app()
