"""The low-resource table and plot: each config's dev scores over seeds (mean,
sample standard deviation, every seed) and its difference from the baseline
config's mean, from the evaluations metrics/runs/lowres_<config>_seed<N>.json.

    python scripts/lowres_table.py metrics/lowres_conll04 --runs metrics/runs \
        --baseline ner_re_trf --configs ner_re_trf,ner_re_mlm_trf --seeds 0,1,2
"""
import json
import statistics
from pathlib import Path
from typing import Dict, List

import typer

METRICS = ("rel_micro_f", "ents_f")


def summary(values: List[float]) -> Dict:
    return {
        "mean": 100 * statistics.mean(values),
        "sd": 100 * statistics.stdev(values) if len(values) > 1 else 0.0,
        "seeds": [100 * value for value in values],
    }


def main(
    output: Path = typer.Argument(..., help="Output path without suffix: .json, .md and .png are written"),
    runs: Path = typer.Option(..., help="Folder of the evaluations"),
    baseline: str = typer.Option(..., help="The config of the target alone"),
    configs: str = typer.Option(..., help="Comma-separated configs, the baseline among them"),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds"),
) -> None:
    names, seed_list = configs.split(","), [int(seed) for seed in seeds.split(",")]
    table = {}
    for name in names:
        scores = [json.loads((runs / f"lowres_{name}_seed{seed}.json").read_text())["scores"] for seed in seed_list]
        table[name] = {metric: summary([s[metric] for s in scores]) for metric in METRICS}
    for name in names:
        for metric in METRICS:
            table[name][metric]["diff"] = table[name][metric]["mean"] - table[baseline][metric]["mean"]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps({"baseline": baseline, "seeds": seed_list, "configs": table},
                                                      indent=2) + "\n")
    lines = [
        "| config | rel_micro_f (mean ± sd) | diff | seeds | ents_f (mean ± sd) | diff |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in table.items():
        rel, ents = row["rel_micro_f"], row["ents_f"]
        lines.append(
            f"| {name} | {rel['mean']:.2f} ± {rel['sd']:.2f} | {rel['diff']:+.2f} | "
            f"{', '.join(f'{v:.2f}' for v in rel['seeds'])} | {ents['mean']:.2f} ± {ents['sd']:.2f} | {ents['diff']:+.2f} |"
        )
    output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(table, output.with_suffix(".png"))


def plot(table: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(4, 0.8 * len(table))
    figure, axes = plt.subplots(1, len(METRICS), figsize=(width * len(METRICS), 4.5))
    for axis, metric in zip(axes, METRICS):
        names = list(table)
        means = [table[name][metric]["mean"] for name in names]
        spreads = [table[name][metric]["sd"] for name in names]
        axis.bar(range(len(names)), means, yerr=spreads, capsize=4, color="#9bc", edgecolor="#345")
        for i, name in enumerate(names):
            axis.plot([i] * len(table[name][metric]["seeds"]), table[name][metric]["seeds"], "o", color="#222", ms=3)
        axis.set_xticks(range(len(names)), names, rotation=35, ha="right")
        axis.set_title(f"{metric} (dev), mean ± sd over seeds")
        low = min(min(table[name][metric]["seeds"]) for name in names)
        axis.set_ylim(max(0, low - 10), None)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    print(f"-> {path}")


if __name__ == "__main__":
    typer.run(main)
