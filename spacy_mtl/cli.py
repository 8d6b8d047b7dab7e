"""The `spacy-mtl` command line (also `python -m spacy_mtl`)."""
import json
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import typer
from wasabi import msg

from .convert import ConversionError, convert_chunks, convert_conllu, convert_relations, convert_slu
from .inputs import InputError, load_pipeline, read_docbin

app = typer.Typer(name="spacy-mtl", help="Multi-task learning for spaCy pipelines.", no_args_is_help=True)
convert_app = typer.Typer(help="Convert standard formats to .spacy (DocBin) files.", no_args_is_help=True)
app.add_typer(convert_app, name="convert")


@contextmanager
def user_errors() -> Iterator[None]:
    """A user's mistake (bad input, a missing or damaged path, a file that
    cannot be written) ends the command with one line and exit code 1."""
    try:
        yield
    except (InputError, ConversionError) as err:
        msg.fail(str(err), exits=1)
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        msg.fail(f"{where}{err.strerror or err}", exits=1)


def _convert(converter: Callable[[Path, Path], int], source: Path, out_path: Path) -> None:
    """Run a converter; a malformed input is reported, not raised."""
    with user_errors():
        n_docs = converter(source, out_path)
    msg.good(f"Wrote {n_docs} docs to {out_path}")


@convert_app.command("slu")
def convert_slu_command(
    in_dir: Path = typer.Argument(..., help="Folder with seq.in, seq.out (IOB2 slots) and label (intents)"),
    out_path: Path = typer.Argument(..., help="Output .spacy file"),
) -> None:
    """Convert an ATIS/SNIPS-style folder (seq.in, seq.out, label) to DocBin."""
    _convert(convert_slu, in_dir, out_path)


@convert_app.command("relations")
def convert_relations_command(
    in_path: Path = typer.Argument(..., help="SpERT JSON file (tokens, entities, relations)"),
    out_path: Path = typer.Argument(..., help="Output .spacy file"),
) -> None:
    """Convert SpERT JSON (CoNLL04 and similar) to DocBin: entities in doc.ents,
    relations in doc._.relations."""
    _convert(convert_relations, in_path, out_path)


@convert_app.command("chunks")
def convert_chunks_command(
    in_path: Path = typer.Argument(..., help="CoNLL-2000 file: `word POS chunk` a line, blank line between sentences"),
    out_path: Path = typer.Argument(..., help="Output .spacy file"),
) -> None:
    """Convert CoNLL-2000 chunking data to DocBin: PTB tags in token.tag_,
    chunks in doc.spans["chunks"]."""
    _convert(convert_chunks, in_path, out_path)


@convert_app.command("conllu")
def convert_conllu_command(
    in_path: Path = typer.Argument(..., help="CoNLL-U file (Universal Dependencies)"),
    out_path: Path = typer.Argument(..., help="Output .spacy file"),
) -> None:
    """Convert CoNLL-U to DocBin, a doc per sentence: XPOS in token.tag_, UPOS
    in token.pos_, the basic tree in token.head / token.dep_. Multiword tokens
    become their words; empty nodes are skipped."""
    _convert(convert_conllu, in_path, out_path)


@app.command("evaluate")
def evaluate_command(
    model: Path = typer.Argument(..., help="A trained pipeline (folder or installed package name)"),
    data: Path = typer.Argument(..., help="Gold docs (.spacy)"),
    output: Path = typer.Option(None, "--output", "-o", help="Write the scores as JSON here"),
    batch_size: int = typer.Option(64, help="Docs per batch"),
    gpu_id: int = typer.Option(-1, help="GPU to use (-1: CPU)"),
) -> None:
    """Score a pipeline on gold docs with every metric its components define
    (slot_f, intent_acc, sent_acc, ents_f, rel_micro_f, rel_macro_f,
    rel_boundaries_f, tag_acc, pos_acc, chunk_f, dep_uas, dep_las, ...), on
    the gold tokenization. Prints a table; --output writes JSON."""
    import spacy

    from .evaluate import describe_unknown_labels, score_pipeline, unknown_gold_labels

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    with user_errors():
        nlp = load_pipeline(model)
        references = read_docbin(data, nlp.vocab)
    scores = score_pipeline(nlp, references, batch_size=batch_size, progress=True)
    rows = [(key, value) for key, value in scores.items() if not isinstance(value, dict)]
    msg.table([(key, f"{100 * value:.2f}" if key != "speed" else f"{value:.0f}") for key, value in rows], header=("metric", "score"))
    for key, per_label in scores.items():
        if isinstance(per_label, dict):
            table = [(label, *(f"{100 * prf[k]:.2f}" for k in "prf")) for label, prf in per_label.items()]
            msg.table(table, header=(key, "p", "r", "f"))
    unknown = unknown_gold_labels(nlp, references)
    for line in describe_unknown_labels(unknown):
        msg.warn(line)
    if output is not None:
        result = {
            "model": str(model), "data": str(data), "n_docs": len(references), "scores": scores,
            "unknown_gold_labels": unknown,
        }
        _write_report(output, result)


@app.command("benchmark")
def benchmark_command(
    models: List[Path] = typer.Argument(..., help="Pipelines, run one after another on the same texts"),
    data: Path = typer.Option(..., "--data", help="Texts: a .spacy file or a text file (a text a line)"),
    n_words: int = typer.Option(20000, help="Words of text (the data is cycled if shorter)"),
    batch_size: int = typer.Option(64, help="Texts per batch"),
    runs: int = typer.Option(3, help="Timed runs after the warm-up; the median is reported"),
    transformer_only: bool = typer.Option(False, help="Run only the transformer of each pipeline"),
    beside_transformer: bool = typer.Option(
        False, help="Time one pipeline and its transformer alone in turn, run after run, and report the ratio"
    ),
    output: Path = typer.Option(None, "--output", "-o", help="Write the results as JSON here"),
    gpu_id: int = typer.Option(-1, help="GPU to use (-1: CPU)"),
) -> None:
    """Inference words per second (median of several runs after a warm-up)
    and peak resident memory of one pipeline, or several in sequence; on a
    GPU also the peak GPU memory. With --beside-transformer, one pipeline
    and its transformer alone, timed in turn."""
    from .benchmark import benchmark, load_texts

    if beside_transformer:
        if transformer_only or len(models) != 1:
            msg.fail("--beside-transformer times one pipeline beside its own transformer",
                     "Give one pipeline, without --transformer-only", exits=1)
        _benchmark_beside_transformer(models[0], data, n_words, batch_size, runs, output, gpu_id)
        return
    _use_gpu(gpu_id)
    with user_errors():
        texts = load_texts(data, n_words)
        msg.info(f"{len(texts)} texts, batch size {batch_size}, {runs} runs")
        result = benchmark(models, texts, batch_size=batch_size, n_runs=runs, transformer_only=transformer_only)
    msg.table(
        [("words", result["words"]), ("words/s (median)", result["median_words_per_second"]),
         ("words/s (runs)", ", ".join(map(str, result["words_per_second"]))), ("peak RSS (MB)", result["peak_rss_mb"]),
         ("device", result["device"])]
        + ([("peak GPU memory (MB)", result["peak_gpu_memory_mb"])] if "peak_gpu_memory_mb" in result else []),
    )
    _write_report(output, result)


def _write_report(output: Optional[Path], result: Dict) -> None:
    """The result as JSON at output, if given."""
    if output is None:
        return
    with user_errors():
        write_text(output, json.dumps(result, indent=2) + "\n")
    msg.good(f"Wrote {output}")


def _use_gpu(gpu_id: int) -> None:
    if gpu_id < 0:
        return
    import spacy
    from thinc.api import set_gpu_allocator

    spacy.require_gpu(gpu_id)
    # CuPy's arrays then come from PyTorch's pool: one peak covers both.
    set_gpu_allocator("pytorch")


def _benchmark_beside_transformer(
    model: Path, data: Path, n_words: int, batch_size: int, runs: int, output: Optional[Path], gpu_id: int
) -> None:
    from .benchmark import benchmark_beside_transformer, load_texts

    _use_gpu(gpu_id)
    with user_errors():
        texts = load_texts(data, n_words)
        msg.info(f"{len(texts)} texts, batch size {batch_size}, {runs} runs of the pipeline and its transformer in turn")
        result = benchmark_beside_transformer(model, texts, batch_size=batch_size, n_runs=runs)
    msg.table(
        [("words", result["words"]),
         ("pipeline words/s (runs)", ", ".join(map(str, result["words_per_second"]))),
         ("transformer words/s (runs)", ", ".join(map(str, result["transformer_words_per_second"]))),
         ("pipeline / transformer (median)", result["median_share_of_transformer"]),
         ("other components, µs/word (median)", result["other_components_us_per_word"]),
         ("peak RSS (MB)", result["peak_rss_mb"]), ("device", result["device"])]
    )
    _write_report(output, result)


@app.command("validate")
def validate_command(
    path: Path = typer.Argument(..., help="A data file (.conllu, .json SpERT, CoNLL-2000 .txt) or an ATIS/SNIPS folder"),
    data_format: str = typer.Option(None, "--format", help="slu, relations, chunks or conllu (default: from the path)"),
    max_errors: int = typer.Option(100, help="Stop after this many errors"),
) -> None:
    """Check training data and report every malformed sentence with its file
    and line (misaligned tokens and tags, invalid BIO, indices out of range,
    overlapping entities, several roots or cycles, wrong column counts)."""
    from .convert.validate import FORMATS, validate

    if data_format is not None and data_format not in FORMATS:
        msg.fail(f"Unknown format '{data_format}'", f"Known: {', '.join(FORMATS)}", exits=1)
    if not path.exists():
        msg.fail(f"{path}: no such file or folder", exits=1)
    n_docs, errors = validate(path, data_format, max_errors)
    for error in errors:
        msg.fail(str(error))
    if errors:
        msg.fail(f"{len(errors)} error(s); {n_docs} valid docs", exits=1)
    msg.good(f"{n_docs} docs, no errors", str(path))


RENDER_STYLES = ("relations", "slots", "chunks", "deps")


@app.command("render")
def render_command(
    model: Path = typer.Argument(..., help="A trained pipeline"),
    source: str = typer.Argument(..., help="Text to annotate, or a .spacy file whose texts to annotate"),
    output: Path = typer.Argument(..., help="Output .html file"),
    style: str = typer.Option("relations", help=f"What to draw: {', '.join(RENDER_STYLES)}"),
    limit: int = typer.Option(10, help="Number of docs to render from a .spacy file"),
) -> None:
    """Render predictions as HTML: entities and relations (labelled arcs
    between entity boxes), slots or chunks (labelled spans), or dependency
    trees."""
    from .evaluate import gold_token_inputs
    from .render import render_dependencies, render_relations, render_spans

    if style not in RENDER_STYLES:
        msg.fail(f"Unknown style '{style}'", f"Known: {', '.join(RENDER_STYLES)}", exits=1)
    with user_errors():
        nlp = load_pipeline(model)
        if source.endswith(".spacy"):
            references = islice(read_docbin(Path(source), nlp.vocab), limit)
            # Keep the file's tokenization, as evaluation does.
            inputs = list(gold_token_inputs(nlp, references))
        else:
            inputs = [source]
    docs = list(nlp.pipe(inputs))
    if style == "relations":
        page = render_relations(docs)
    elif style == "deps":
        page = render_dependencies(docs)
    else:
        page = render_spans(docs, style)
    with user_errors():
        write_text(output, page)
    msg.good(f"Rendered {len(inputs)} docs to {output}")


@app.command("annotate")
def annotate_command(
    model: str = typer.Argument(..., help="A trained pipeline (folder or installed package name)"),
    input_path: Path = typer.Argument(..., help="A text file (a document a line), JSON Lines, Parquet, or a folder of them"),
    output: Path = typer.Argument(..., help="Output folder: shards, manifest.jsonl, errors.jsonl"),
    engine: str = typer.Option("local", help="local (this process) or ray (Ray Data actors)"),
    address: str = typer.Option(None, help="Ray cluster to use (default: start one on this machine, on 127.0.0.1)"),
    num_actors: int = typer.Option(1, help="Ray actors, each with its own copy of the pipeline"),
    cpus_per_actor: float = typer.Option(1, help="CPUs (and PyTorch threads) per Ray actor"),
    gpus_per_actor: float = typer.Option(0, help="GPUs per Ray actor"),
    gpu_id: int = typer.Option(-1, help="GPU of the local engine (-1: CPU)"),
    batch_size: int = typer.Option(64, help="Documents per nlp.pipe batch"),
    shard_size: int = typer.Option(1000, help="Input lines (rows) per shard: the unit of output and of resumption"),
    text_field: str = typer.Option("text", help="The field of a JSON Lines or Parquet record that holds the text"),
    output_field: str = typer.Option("annotations", help="The field the annotations are added under (JSON Lines)"),
    output_format: str = typer.Option("jsonl", "--format", help="jsonl (records with annotations) or docbin (.spacy)"),
) -> None:
    """Annotate a corpus: each record of the input with the pipeline's
    annotations (cats, slots, entities, relations, tags, POS, chunks, heads
    and labels), in shard files. Started again with the same arguments, a
    job skips the shards it finished; invalid records go to errors.jsonl."""
    from .annotate import annotate

    with user_errors():
        summary = annotate(
            model, input_path, output, engine=engine, address=address, num_actors=num_actors,
            cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor, gpu_id=gpu_id, batch_size=batch_size,
            shard_size=shard_size, text_field=text_field, output_field=output_field, output_format=output_format,
            log=msg.info,
        )
    words_per_second = summary["words_this_run"] / max(summary["seconds"], 1e-9)
    msg.good(
        f"records in {summary['records']} = annotated {summary['annotated']} + rejected {summary['rejected']}; "
        f"{summary['words']} words; this run {summary['words_this_run']} words in {summary['seconds']:.1f} s "
        f"({words_per_second:.0f} words/s)"
    )
    if summary["rejected"]:
        msg.warn(f"{summary['rejected']} rejected record(s), each with its file, line and reason: {summary['errors_file']}")


@app.command("affinity", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def affinity_command(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., help="A training config with several heads on one transformer"),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for affinity.json and affinity.png"),
    steps: int = typer.Option(200, help="Training steps to take"),
    every: int = typer.Option(20, help="Measure before every this many steps' update"),
    lookahead_rate: float = typer.Option(0.01, help="Learning rate of the lookahead SGD step on one head's gradient"),
    max_groups: int = typer.Option(3, help="Suggest groupings into 2 .. this many groups"),
    gpu_id: int = typer.Option(-1, help="GPU to use (-1: CPU)"),
) -> None:
    """Inter-task affinity (Fifty et al. 2021) of every pair of heads while
    the config trains: how much a step on one head's gradient changes each
    head's loss (Z_i->j = 1 - L_j(after) / L_j(before)), the cosine of their
    gradients at the transformer, and the partition of the heads into groups
    with the most affinity within them. Config overrides as for spacy train
    (--paths.train ...)."""
    from spacy.cli._util import parse_config_overrides
    from tqdm import tqdm

    from .affinity import affinity_from_config, best_grouping

    with user_errors():
        if not config_path.is_file():
            raise InputError(f"{config_path}: file not found")
        for what, value in (("steps", steps), ("every", every)):
            if value < 1:
                raise InputError(f"{what} {value}: must be at least 1")
        with tqdm(total=steps, unit="step", desc="Training with affinity") as bar:
            result = affinity_from_config(config_path, parse_config_overrides(ctx.args), steps=steps, every=every,
                                          lookahead_rate=lookahead_rate, gpu_id=gpu_id,
                                          progress=lambda step: bar.update(1))
        heads = result["heads"]
        result["groupings"] = {}
        for n_groups in range(2, min(max_groups, len(heads)) + 1):
            groups, score = best_grouping(heads, result["lookahead"], n_groups)
            result["groupings"][n_groups] = {"groups": groups, "within_group_affinity": score}
        write_text(output / "affinity.json", json.dumps(result, indent=2) + "\n")
    _print_matrix("lookahead affinity Z (row: the head stepped; column: the head whose loss changed)", heads,
                  result["lookahead"], "{:+.4f}")
    _print_matrix("gradient cosine at the transformer", heads, result["cosine"], "{:+.3f}")
    msg.table([(n, " | ".join(", ".join(g) for g in v["groups"]), f"{v['within_group_affinity']:+.4f}")
               for n, v in result["groupings"].items()], header=("groups", "suggested grouping", "affinity within"))
    msg.good(f"Wrote {output / 'affinity.json'} ({result['measurements']} measurements)")
    _write_heatmap(output / "affinity.png", heads, result["lookahead"])


def _print_matrix(title: str, heads: List[str], matrix: List[List], number: str) -> None:
    msg.text(title)
    rows = [(head, *("-" if v is None else number.format(v) for v in row)) for head, row in zip(heads, matrix)]
    msg.table(rows, header=("", *heads))


def _write_heatmap(path: Path, heads: List[str], matrix: List[List]) -> None:
    """A heat map of the affinity matrix, where matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        msg.warn('No heat map: it needs matplotlib (pip install "spacy-mtl[project]")')
        return
    import numpy

    values = numpy.array([[numpy.nan if v is None else v for v in row] for row in matrix])
    limit = numpy.nanmax(numpy.abs(values)) if numpy.isfinite(values).any() else 1.0
    figure, axes = plt.subplots(figsize=(1.2 * len(heads) + 2, 1.0 * len(heads) + 1.5))
    image = axes.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit)
    axes.set_xticks(range(len(heads)), heads, rotation=45, ha="right")
    axes.set_yticks(range(len(heads)), heads)
    axes.set_xlabel("head whose loss changed")
    axes.set_ylabel("head stepped")
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            if numpy.isfinite(value):
                axes.text(j, i, f"{value:+.3f}", ha="center", va="center", fontsize=8)
    figure.colorbar(image, ax=axes, label="Z = 1 - L_after / L_before")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    msg.good(f"Wrote {path}")


def write_text(path: Path, text: str) -> None:
    """Write a result file, making its folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf8")
