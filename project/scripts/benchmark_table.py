"""The speed benchmark's three measurements side by side, with the machine:
(a) the all-in-one pipeline, (b) the single-task pipelines one after another,
(c) the bare transformer. Writes JSON and a Markdown table.

benchmark_table.py ALL.json SINGLES.json TRANSFORMER.json OUT.json OUT.md
"""
import json
import os
import platform
from pathlib import Path

import typer

MIN_SPEEDUP_OVER_SINGLES = 2.5
MIN_SHARE_OF_TRANSFORMER = 0.75


def describe_machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import torch

    return f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), no GPU"


def main(all_in_one: Path, singles: Path, transformer: Path, out_json: Path, out_md: Path) -> None:
    runs = {name: json.loads(path.read_text()) for name, path in
            (("all_in_one", all_in_one), ("singles", singles), ("transformer", transformer))}
    speed = {name: run["median_words_per_second"] for name, run in runs.items()}
    speedup = speed["all_in_one"] / speed["singles"]
    share = speed["all_in_one"] / speed["transformer"]
    result = {
        "machine": describe_machine(),
        "words": runs["all_in_one"]["words"],
        "batch_size": runs["all_in_one"]["batch_size"],
        "runs": runs,
        "all_in_one_vs_singles": round(speedup, 2),
        "all_in_one_vs_transformer": round(share, 2),
        "targets_met": {
            f"all_in_one >= {MIN_SPEEDUP_OVER_SINGLES}x singles": speedup >= MIN_SPEEDUP_OVER_SINGLES,
            f"all_in_one >= {MIN_SHARE_OF_TRANSFORMER}x transformer": share >= MIN_SHARE_OF_TRANSFORMER,
        },
    }
    out_json.write_text(json.dumps(result, indent=2) + "\n")
    labels = {
        "all_in_one": "(a) all-in-one pipeline",
        "singles": "(b) single-task pipelines, one after another",
        "transformer": "(c) bare transformer",
    }
    lines = ["| run | words/s (median) | peak RSS (MB) |", "|---|---|---|"]
    lines += [f"| {labels[name]} | {speed[name]:.0f} | {runs[name]['peak_rss_mb']:.0f} |" for name in labels]
    table = "\n".join(lines) + (
        f"\n\n{result['words']} words, batch size {result['batch_size']}, median of {runs['all_in_one']['runs']} runs "
        f"after a warm-up; {result['machine']}. (a)/(b) = {speedup:.2f}, (a)/(c) = {share:.2f}.\n"
    )
    out_md.write_text(table)
    print(table)


if __name__ == "__main__":
    typer.run(main)
