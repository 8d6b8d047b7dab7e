"""Single-task pipelines vs the all-in-one pipeline: headline dev scores,
training wall times, and dev score against training step.

compare.py OUT.json OUT.md OUT.png [--config trf]
"""
import json
import re
from pathlib import Path
from typing import Dict, List, Tuple

import typer

# task group -> (headline metric, single-task run, its metrics file stem, the all-in-one metrics file stem)
TASKS = {
    "SNIPS": ("sent_acc", "snips_{c}", "snips_{c}", "all_{c}_snips"),
    "CoNLL04": ("rel_micro_f", "conll04_{c}", "conll04_{c}", "all_{c}_conll04"),
    "EWT": ("dep_las", "cascade_{c}", "cascade_{c}_ewt", "all_{c}_ewt"),
    "CoNLL-2000": ("chunk_f", "cascade_{c}", "cascade_{c}_conll2000", "all_{c}_conll2000"),
}
MAX_POINTS_BEHIND = 1.0
MAX_TIME_RATIO = 0.6
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def read_score(metrics_dir: Path, stem: str, metric: str) -> float:
    path = metrics_dir / f"{stem}.json"
    if not path.exists():
        raise SystemExit(f"Missing {path}: run its evaluate command first")
    score = json.loads(path.read_text())["scores"].get(metric)
    if score is None:
        raise SystemExit(f"{path} has no score '{metric}'")
    return 100 * score


def read_wall_seconds(training_dir: Path, run: str) -> float:
    path = training_dir / run / "timing.json"
    if not path.exists():
        raise SystemExit(f"Missing {path}: train with the project's train command (scripts/timed.py)")
    return json.loads(path.read_text())["wall_seconds"]


def read_curve(log_path: Path, metric: str) -> List[Tuple[int, float]]:
    """(step, dev score) rows of spaCy's console table in a training log."""
    if not log_path.exists():
        return []
    columns: List[str] = []
    curve = []
    for line in log_path.read_text(encoding="utf8").splitlines():
        line = ANSI.sub("", line).strip()
        if line.startswith("E ") and "#" in line:
            columns = re.split(r"\s{2,}", line)
        elif columns and re.match(r"^\d+\s+\d+\s", line):
            values = line.split()
            if len(values) == len(columns) and metric.upper() in columns:
                curve.append((int(values[1]), float(values[columns.index(metric.upper())])))
    return curve


def markdown_table(rows: List[Dict], seconds: Dict[str, float]) -> str:
    lines = [
        "| task (dev) | metric | single-task | all-in-one | all-in-one - single |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['task']} | `{row['metric']}` | {row['single']:.2f} | {row['all_in_one']:.2f} | {row['difference']:+.2f} |"
        )
    lines.append(
        f"| training wall time | | {seconds['single_sum'] / 60:.1f} min (sum of {len(seconds['single'])} runs) "
        f"| {seconds['all_in_one'] / 60:.1f} min | x{seconds['ratio']:.2f} |"
    )
    return "\n".join(lines) + "\n"


def plot(curves: Dict[str, Dict[str, List[Tuple[int, float]]]], out_path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("The plot needs matplotlib: pip install 'spacy-mtl[project]' (or matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.4))
    for ax, (task, runs) in zip(axes, curves.items()):
        metric = TASKS[task][0]
        for label, style in (("single-task", "o--"), ("all-in-one", "s-")):
            points = runs[label]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], style, label=label)
        ax.set_title(f"{task}: {metric}")
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("dev score")
    axes[0].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)


def main(
    out_json: Path,
    out_md: Path,
    out_png: Path,
    config: str = typer.Option("trf", help="The project's config variable (run names end with it)"),
    metrics_dir: Path = typer.Option(Path("metrics")),
    training_dir: Path = typer.Option(Path("training")),
):
    rows, curves = [], {}
    for task, (metric, run, single_stem, all_stem) in TASKS.items():
        run, all_run = run.format(c=config), f"all_{config}"
        single = read_score(metrics_dir, single_stem.format(c=config), metric)
        all_in_one = read_score(metrics_dir, all_stem.format(c=config), metric)
        rows.append({
            "task": task, "metric": metric, "single_run": run,
            "single": round(single, 2), "all_in_one": round(all_in_one, 2),
            "difference": round(all_in_one - single, 2),
            "within_target": all_in_one >= single - MAX_POINTS_BEHIND,
        })
        curves[task] = {
            "single-task": read_curve(training_dir / run / "train.log", metric),
            "all-in-one": read_curve(training_dir / all_run / "train.log", metric),
        }
    single_runs = sorted({row["single_run"] for row in rows})
    single_seconds = {run: read_wall_seconds(training_dir, run) for run in single_runs}
    all_seconds = read_wall_seconds(training_dir, f"all_{config}")
    seconds = {
        "single": single_seconds, "single_sum": sum(single_seconds.values()), "all_in_one": all_seconds,
        "ratio": round(all_seconds / sum(single_seconds.values()), 3),
    }
    result = {
        "rows": rows, "training_seconds": seconds, "curves": curves,
        "targets": {
            "max_points_behind": MAX_POINTS_BEHIND, "max_time_ratio": MAX_TIME_RATIO,
            "scores_met": all(row["within_target"] for row in rows),
            "time_met": seconds["ratio"] <= MAX_TIME_RATIO,
        },
    }
    out_json.write_text(json.dumps(result, indent=2))
    table = markdown_table(rows, seconds)
    out_md.write_text(table)
    plot(curves, out_png)
    print(table)
    print(f"Scores within {MAX_POINTS_BEHIND} point: {result['targets']['scores_met']}; "
          f"time ratio {seconds['ratio']:.2f} (target <= {MAX_TIME_RATIO}): {result['targets']['time_met']}")


if __name__ == "__main__":
    typer.run(main)
