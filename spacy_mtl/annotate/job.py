"""An annotation job: input shards in, annotated shards out, on one process
(the local engine) or on a Ray cluster. Both engines run the same
ShardAnnotator, so they write the same files."""
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from spacy.language import Language

from ..benchmark import peak_rss_mb, words_in
from ..inputs import InputError, check_pipeline, load_pipeline
from .manifest import JobSettings, Manifest
from .output import OUTPUT_FORMATS, shard_file_name, write_shard
from .records import Rejected, ShardTask, input_files, plan_shards, read_shard

ENGINES = ("local", "ray")


class ShardAnnotator:
    """A pipeline, loaded once, and the job's settings: annotates a shard,
    writes its file and returns its manifest entry."""

    def __init__(self, settings: JobSettings, output_dir: str, batch_size: int, nlp: Optional[Language] = None):
        self.settings = settings
        self.output_dir = Path(output_dir)
        self.batch_size = batch_size
        self.nlp = nlp if nlp is not None else load_pipeline(settings.model)

    def __call__(self, task: ShardTask) -> Dict[str, Any]:
        start = time.perf_counter()
        settings = self.settings
        records = list(read_shard(task, settings.text_field, settings.output_field))
        valid = [record for record in records if not isinstance(record, Rejected)]
        docs = list(self.nlp.pipe((record[settings.text_field] for record in valid), batch_size=self.batch_size))
        name = shard_file_name(task.index, settings.output_format)
        write_shard(self.output_dir / name, zip(valid, docs), settings.output_format, settings.text_field,
                    settings.output_field)
        return {
            "shard": task.index,
            "file": name,
            "records": len(records),
            "annotated": len(docs),
            "rejected": len(records) - len(docs),
            "words": words_in(docs),
            "errors": [asdict(record) for record in records if isinstance(record, Rejected)],
            "seconds": round(time.perf_counter() - start, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }


def annotate(
    model: str,
    input_path: Path,
    output_dir: Path,
    *,
    engine: str = "local",
    batch_size: int = 64,
    shard_size: int = 1000,
    text_field: str = "text",
    output_field: str = "annotations",
    output_format: str = "jsonl",
    gpu_id: int = -1,
    address: Optional[str] = None,
    num_actors: int = 1,
    cpus_per_actor: float = 1,
    gpus_per_actor: float = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """Annotate every record of input_path with the pipeline, into shard
    files in output_dir; skip the shards a previous run of the same job
    finished. Returns the job's totals, and the time and words of this run
    (start-up included)."""
    start = time.perf_counter()
    _check_arguments(engine, output_format, batch_size, num_actors)
    check_pipeline(model)
    files = input_files(input_path)
    tasks = plan_shards(files, shard_size)
    if not tasks:
        raise InputError(f"{input_path}: holds no records")
    settings = JobSettings(_model_name(model), str(input_path.resolve()), text_field, output_field, output_format,
                           shard_size)
    # Loaded before the output folder is made, so that a damaged pipeline leaves nothing behind.
    nlp = _local_pipeline(settings.model, gpu_id) if engine == "local" else None
    manifest = Manifest(output_dir, settings, [[str(path.resolve()), path.stat().st_size] for path in files],
                        len(tasks))
    pending = [task for task in tasks if task.index not in manifest.done]
    log(f"{len(files)} input file(s), {len(tasks)} shard(s) of up to {shard_size} records; "
        f"{len(tasks) - len(pending)} already done, {len(pending)} to do ({engine} engine)")
    if pending and nlp is not None:
        _run_local(ShardAnnotator(settings, str(output_dir), batch_size, nlp), pending, manifest, progress)
    elif pending:
        from .ray_engine import run_ray

        run_ray(pending, settings, output_dir, manifest, batch_size=batch_size, address=address,
                num_actors=num_actors, cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor)
    seconds = time.perf_counter() - start
    errors_path = manifest.write_errors()
    run_entries = [manifest.done[task.index] for task in pending]
    return {
        **manifest.totals(),
        "errors_file": str(errors_path),
        "seconds": round(seconds, 2),
        "words_this_run": sum(entry["words"] for entry in run_entries),
        "peak_rss_mb_per_process": _peak_per_process(run_entries),
    }


def _local_pipeline(model: str, gpu_id: int) -> Language:
    if gpu_id >= 0:
        import spacy

        spacy.require_gpu(gpu_id)
    return load_pipeline(model)


def _run_local(annotator: ShardAnnotator, pending: List[ShardTask], manifest: Manifest, progress: bool) -> None:
    from tqdm import tqdm

    total_words, start = 0, time.perf_counter()
    with tqdm(total=sum(task.n_lines for task in pending), unit="doc", desc="Annotating", disable=not progress) as bar:
        for task in pending:
            entry = annotator(task)
            entry["process"] = "local"
            manifest.add(entry)
            total_words += entry["words"]
            bar.update(task.n_lines)
            bar.set_postfix(words_per_s=f"{total_words / (time.perf_counter() - start):.0f}")


def _peak_per_process(entries: List[Dict[str, Any]]) -> Dict[str, float]:
    peaks: Dict[str, float] = {}
    for entry in entries:
        peaks[entry["process"]] = max(peaks.get(entry["process"], 0.0), entry["peak_rss_mb"])
    return peaks


def _model_name(model: str) -> str:
    """A folder as an absolute path (Ray actors may start elsewhere), a package as its name."""
    path = Path(model)
    return str(path.resolve()) if path.exists() else str(model)


def _check_arguments(engine: str, output_format: str, batch_size: int, num_actors: int) -> None:
    for what, value, known in (("engine", engine, ENGINES), ("format", output_format, tuple(OUTPUT_FORMATS))):
        if value not in known:
            raise InputError(f"{what} '{value}': unknown (known: {', '.join(known)})")
    for what, number in (("batch size", batch_size), ("number of actors", num_actors)):
        if number < 1:
            raise InputError(f"{what} {number}: must be at least 1")
