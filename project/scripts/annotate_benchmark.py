"""Words per second of `spacy-mtl annotate` with the local engine and with Ray
(1 actor with every CPU, then one actor per CPU), on the same texts and the
same pipeline, each run a fresh `spacy-mtl annotate` process into a fresh
folder, so every figure includes its start-up (Python, the pipeline, Ray).

- words/s: the words annotated over the command's wall-clock time;
- annotating words/s: each process's words over its time inside shards,
  summed over the processes (the rate once everything has started);
- peak RSS of each process that annotated (the local process, or each actor).

    python scripts/annotate_benchmark.py training/all_trf/model-last corpus/annotate_texts.txt \
        --output metrics/annotate_benchmark_trf.json
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import typer

def run_engine(model: str, source: Path, output: Path, options: List[str]) -> Dict:
    command = [sys.executable, "-m", "spacy_mtl", "annotate", model, str(source), str(output), *options]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    entries = [json.loads(line) for line in (output / "manifest.jsonl").read_text().splitlines()[1:]]
    words = sum(entry["words"] for entry in entries)
    processes = sorted({entry["process"] for entry in entries})
    busy = {p: sum(e["seconds"] for e in entries if e["process"] == p) for p in processes}
    own_words = {p: sum(e["words"] for e in entries if e["process"] == p) for p in processes}
    return {
        "options": " ".join(options),
        "words": words,
        "docs": sum(entry["annotated"] for entry in entries),
        "wall_seconds": round(wall, 1),
        "words_per_second": round(words / wall),
        "annotating_words_per_second": round(sum(own_words[p] / busy[p] for p in processes)),
        "peak_rss_mb_per_process": [max(e["peak_rss_mb"] for e in entries if e["process"] == p) for p in processes],
    }


def main(
    model: str = typer.Argument(..., help="The pipeline to run"),
    source: Path = typer.Argument(..., help="The texts, a text a line"),
    shard_size: int = typer.Option(500, help="Records per shard"),
    batch_size: int = typer.Option(64, help="Docs per nlp.pipe batch"),
    output: Path = typer.Option(..., "--output", "-o", help="JSON results"),
) -> None:
    n_cpus = len(os.sched_getaffinity(0))
    engines = {
        "local": [],
        "ray, 1 actor": ["--engine", "ray", "--num-actors", "1", "--cpus-per-actor", str(n_cpus)],
        f"ray, {n_cpus} actors": ["--engine", "ray", "--num-actors", str(n_cpus), "--cpus-per-actor", "1"],
    }
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        print(f"{source}: {len(source.read_text(encoding='utf8').splitlines())} texts; {n_cpus} CPUs", flush=True)
        for name, options in engines.items():
            options = options + ["--shard-size", str(shard_size), "--batch-size", str(batch_size)]
            results[name] = run_engine(model, source, Path(folder) / name.replace(" ", "_"), options)
            print(name, json.dumps(results[name]), flush=True)
    local = results["local"]["words_per_second"]
    for result in results.values():
        result["vs_local"] = round(result["words_per_second"] / local, 3)
    from spacy_mtl.benchmark import device_info

    report = {"model": model, "cpus": n_cpus, "shard_size": shard_size, "batch_size": batch_size,
              "device": device_info(), "engines": results}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print("| engine | words/s | x local | annotating words/s | wall s | peak RSS per process (MB) |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['words_per_second']} | {r['vs_local']} | {r['annotating_words_per_second']} | "
              f"{r['wall_seconds']} | {', '.join(map(str, r['peak_rss_mb_per_process']))} |")


if __name__ == "__main__":
    typer.run(main)
