"""Single-task pipelines vs the all-in-one pipeline: headline dev scores,
training wall times, and dev score against training step.

compare.py OUT.json OUT.md OUT.png [--config trf] [--seeds 0,1,2] [--single-timed-seeds 0]
    [--all-in-one-timed-seeds 0] [--timing-repeats _repeat1,_repeat2]

Seed 0's run of each pipeline is named as in project.yml (`snips_trf`,
`all_trf`); seed N's adds `_seedN` to the run name (`snips_trf_seed1`,
`all_trf_seed1`), for its training folder and its metrics files alike (the
pipeline in a training folder must have been trained with that seed). With
several seeds, the table compares the means over the seeds each pipeline was
trained with; a single-task pipeline may lack the later seeds. Wall times
compare runs of one machine: where some single-task runs were trained on
another, `--single-timed-seeds` names the seeds of those timed on the
all-in-one runs' machine (by default all of `--seeds`), and
`--all-in-one-timed-seeds` the all-in-one runs timed alone on it (by
default all of `--seeds` too); only they need a `timing.json`.
`--timing-repeats` names the suffixes of runs that trained a seed 0 pipeline
again, for its time only (`--vars.seed_suffix _repeat1`): one machine's
speed drifts from one run to the next, so each pipeline's time is the mean
of all its timed runs, repeats included. A run's
`timing.json` and `train.log` are read from its training folder, or else
from their copies in the metrics folder
(`<run>_timing.json`, `<run>_train.log`; `--keep-run-files` makes them), so
a committed table can be made again without the training folders.
"""
import json
import re
import shutil
from pathlib import Path
from statistics import mean
from typing import Dict, List, Sequence, Tuple

import typer
from thinc.api import Config

# task group -> (headline metric, single-task run, its metrics file stem, the
# all-in-one metrics file stem); {c} is the config, {s} the seed's suffix
TASKS = {
    "SNIPS": ("sent_acc", "snips_{c}{s}", "snips_{c}{s}", "all_{c}{s}_snips"),
    "CoNLL04": ("rel_micro_f", "conll04_{c}{s}", "conll04_{c}{s}", "all_{c}{s}_conll04"),
    "EWT": ("dep_las", "cascade_{c}{s}", "cascade_{c}{s}_ewt", "all_{c}{s}_ewt"),
    "CoNLL-2000": ("chunk_f", "cascade_{c}{s}", "cascade_{c}{s}_conll2000", "all_{c}{s}_conll2000"),
}
ALL_IN_ONE_RUN = "all_{c}{s}"
# a run's training files the table reads, which the metrics folder can keep copies of
RUN_FILES = ("timing.json", "train.log")
MAX_POINTS_BEHIND = 1.0
MAX_TIME_RATIO = 0.6
ANSI = re.compile(r"\x1b\[[0-9;]*m")
Curve = List[Tuple[int, float]]


def seed_suffix(seed: int) -> str:
    return "" if seed == 0 else f"_seed{seed}"


def run_name(template: str, config: str, seed: int) -> str:
    """A run's or metrics file's name for one config and seed."""
    return template.format(c=config, s=seed_suffix(seed))


def read_score(metrics_dir: Path, stem: str, metric: str) -> float:
    path = metrics_dir / f"{stem}.json"
    if not path.exists():
        raise SystemExit(f"Missing {path}: run its evaluate command first")
    score = json.loads(path.read_text())["scores"].get(metric)
    if score is None:
        raise SystemExit(f"{path} has no score '{metric}'")
    return 100 * score


def metrics_copy(metrics_dir: Path, run: str, name: str) -> Path:
    """Where the metrics folder keeps a copy of a run's training file."""
    return metrics_dir / f"{run}_{name}"


def run_file(training_dir: Path, metrics_dir: Path, run: str, name: str) -> Path:
    """A run's file in its training folder, or else its copy in the metrics
    folder; the training folder's path where neither exists."""
    path = training_dir / run / name
    copy = metrics_copy(metrics_dir, run, name)
    return copy if not path.exists() and copy.exists() else path


def read_wall_seconds(training_dir: Path, metrics_dir: Path, run: str) -> float:
    path = run_file(training_dir, metrics_dir, run, "timing.json")
    if not path.exists():
        raise SystemExit(
            f"Missing {path} (and {metrics_copy(metrics_dir, run, 'timing.json')}): "
            "train with the project's train command (scripts/timed.py)"
        )
    return json.loads(path.read_text())["wall_seconds"]


def read_curve(log_path: Path, metric: str) -> Curve:
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


def mean_curve(curves: List[Curve]) -> Curve:
    """The mean score at each step that every seed's log has."""
    curves = [dict(curve) for curve in curves if curve]
    if not curves:
        return []
    steps = sorted(set.intersection(*(set(curve) for curve in curves)))
    return [(step, mean(curve[step] for curve in curves)) for step in steps]


def runs_of(rows: List[Dict], config: str, repeats: Sequence[str] = ()) -> List[Tuple[str, int, str]]:
    """(run, seed, suffix) of every run the table's rows read, each once
    (the cascade's and the all-in-one runs serve several rows), and of each
    pipeline's repeats (seed 0), trained or not."""
    runs = set()
    for row in rows:
        single_run = TASKS[row["task"]][1]
        for template, seeds in ((single_run, row["single_seeds"]), (ALL_IN_ONE_RUN, row["all_in_one_seeds"])):
            runs.update((run_name(template, config, seed), seed, seed_suffix(seed)) for seed in seeds)
            runs.update((template.format(c=config, s=suffix), 0, suffix) for suffix in repeats)
    return sorted(runs)


def check_trained_seeds(rows: List[Dict], config: str, training_dir: Path, repeats: Sequence[str] = ()) -> None:
    """Each run in its training folder must have been trained with the seed
    its name stands for: a seed without its suffix (or the reverse) would
    count one seed's run as another's."""
    for run, seed, suffix in runs_of(rows, config, repeats):
        config_path = training_dir / run / "model-last" / "config.cfg"
        if not config_path.exists():
            continue
        trained = Config().from_disk(config_path, interpolate=False)["system"]["seed"]
        if trained != seed:
            suffix = suffix or '""'
            raise SystemExit(
                f"{config_path} was trained with seed {trained}, but its run's name is seed {seed}'s: "
                f"train it with --vars.seed {seed} --vars.seed_suffix {suffix}"
            )


def copy_run_files(
    rows: List[Dict], config: str, training_dir: Path, metrics_dir: Path, repeats: Sequence[str] = ()
) -> List[Path]:
    """Copy each run's `timing.json` and `train.log` from its training folder
    into the metrics folder, where the table can be made again from."""
    kept = []
    for run, _, _ in runs_of(rows, config, repeats):
        for name in RUN_FILES:
            path = training_dir / run / name
            if path.exists():
                kept.append(Path(shutil.copyfile(path, metrics_copy(metrics_dir, run, name))))
    return kept


def seeds_of(metrics_dir: Path, stem: str, config: str, seeds: List[int], required: bool) -> List[int]:
    """The seeds whose metrics file exists; a missing required one is an error."""
    found = [seed for seed in seeds if (metrics_dir / f"{run_name(stem, config, seed)}.json").exists()]
    missing = [seed for seed in seeds if seed not in found]
    if missing and (required or 0 in missing):
        path = metrics_dir / f"{run_name(stem, config, missing[0])}.json"
        raise SystemExit(f"Missing {path}: train and evaluate seed {missing[0]} first")
    return found


def score_cell(scores: List[float]) -> str:
    """The mean, with each seed's score when there are several."""
    if len(scores) == 1:
        return f"{scores[0]:.2f}"
    return f"{mean(scores):.2f} ({', '.join(f'{score:.2f}' for score in scores)})"


def untimed_note(pipelines: str, seeds: List[int]) -> str:
    if not seeds:
        return ""
    return f"; {pipelines} seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))} not timed"


def markdown_table(rows: List[Dict], seconds: Dict) -> str:
    timed = seconds["single_timed_seeds"]
    all_in_one_timed = seconds["all_in_one_timed_seeds"]
    several = any(len(row["single_seeds"]) > 1 or len(row["all_in_one_seeds"]) > 1 for row in rows)
    runs_timed = [len(times) for times in seconds["single"].values()] + [len(seconds["all_in_one"])]
    lines = [
        "| task (dev) | metric | single-task | all-in-one | all-in-one - single |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        single, all_in_one = score_cell(row["single_scores"]), score_cell(row["all_in_one_scores"])
        lines.append(f"| {row['task']} | `{row['metric']}` | {single} | {all_in_one} | {row['difference']:+.2f} |")
    lines.append(
        f"| training wall time | | {seconds['single_sum'] / 60:.1f} min (sum of {len(seconds['single'])} pipelines) "
        f"| {mean(seconds['all_in_one']) / 60:.1f} min | x{seconds['ratio']:.2f} |"
    )
    notes = ["Means over seeds, each seed's score in brackets"] if several else []
    if max(runs_timed) > 1:
        counts = ", ".join(map(str, runs_timed[:-1]))
        notes.append(f"each wall time is the mean of a pipeline's timed runs (single-task {counts}; all-in-one {runs_timed[-1]})")
    if notes:
        single_untimed = sorted({seed for row in rows for seed in row["single_seeds"]} - set(timed))
        all_in_one_untimed = sorted({seed for row in rows for seed in row["all_in_one_seeds"]} - set(all_in_one_timed))
        note = "; ".join(notes)
        lines += ["", f"{note[0].upper()}{note[1:]}"
                  f"{untimed_note('single-task', single_untimed)}{untimed_note('all-in-one', all_in_one_untimed)}."]
    return "\n".join(lines) + "\n"


def plot(curves: Dict[str, Dict[str, Curve]], out_path: Path) -> None:
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


def compare_task(task: str, config: str, seeds: List[int], metrics_dir: Path, training_dir: Path) -> Tuple[Dict, Dict]:
    """One row of the table (mean scores over the seeds) and its mean curves."""
    metric, run, single_stem, all_stem = TASKS[task]
    single_seeds = seeds_of(metrics_dir, single_stem, config, seeds, required=False)
    all_seeds = seeds_of(metrics_dir, all_stem, config, seeds, required=True)
    single = [read_score(metrics_dir, run_name(single_stem, config, seed), metric) for seed in single_seeds]
    all_in_one = [read_score(metrics_dir, run_name(all_stem, config, seed), metric) for seed in all_seeds]
    row = {
        "task": task, "metric": metric, "single_run": run_name(run, config, 0),
        "single_seeds": single_seeds, "single_scores": [round(score, 2) for score in single],
        "all_in_one_seeds": all_seeds, "all_in_one_scores": [round(score, 2) for score in all_in_one],
        "single": round(mean(single), 2), "all_in_one": round(mean(all_in_one), 2),
        "difference": round(mean(all_in_one) - mean(single), 2),
        "within_target": mean(all_in_one) >= mean(single) - MAX_POINTS_BEHIND,
    }

    def log_of(template: str, seed: int) -> Path:
        return run_file(training_dir, metrics_dir, run_name(template, config, seed), "train.log")

    curves = {
        "single-task": mean_curve([read_curve(log_of(run, seed), metric) for seed in single_seeds]),
        "all-in-one": mean_curve([read_curve(log_of(ALL_IN_ONE_RUN, seed), metric) for seed in all_seeds]),
    }
    return row, curves


def training_seconds(
    rows: List[Dict], config: str, all_in_one_timed_seeds: List[int], single_timed_seeds: List[int],
    training_dir: Path, metrics_dir: Path, repeats: Sequence[str] = (),
) -> Dict:
    """The all-in-one pipeline's mean wall time, against the sum of each
    single-task pipeline's: the mean over a pipeline's timed seeds and its
    repeats (`repeat_runs`)."""
    repeated = repeat_runs(config, repeats, training_dir, metrics_dir)
    single_runs = {}
    for row in rows:
        run = TASKS[row["task"]][1]
        timed = [seed for seed in row["single_seeds"] if seed in single_timed_seeds]
        if not timed:
            raise SystemExit(f"No timed run of {row['single_run']}: --single-timed-seeds must hold one of its seeds {row['single_seeds']}")
        single_runs[row["single_run"]] = [run_name(run, config, seed) for seed in timed] + repeated[run]
    all_in_one_runs = [run_name(ALL_IN_ONE_RUN, config, seed) for seed in all_in_one_timed_seeds] + repeated[ALL_IN_ONE_RUN]

    def wall_seconds(runs: List[str]) -> List[float]:
        return [read_wall_seconds(training_dir, metrics_dir, run) for run in runs]

    single = {run: wall_seconds(runs) for run, runs in single_runs.items()}
    single_sum = sum(mean(times) for times in single.values())
    all_in_one = wall_seconds(all_in_one_runs)
    return {
        "single_timed_seeds": single_timed_seeds, "all_in_one_timed_seeds": all_in_one_timed_seeds,
        "timing_repeats": list(repeats), "single": single, "single_sum": single_sum, "all_in_one": all_in_one,
        "ratio": round(mean(all_in_one) / single_sum, 3),
    }


def repeat_runs(config: str, repeats: Sequence[str], training_dir: Path, metrics_dir: Path) -> Dict[str, List[str]]:
    """Per run template, its runs that trained the pipeline again with seed 0
    under a repeat's suffix and have a timing; a suffix no pipeline has is
    an error (a typo would silently time fewer runs)."""
    templates = sorted({single_run for _, single_run, _, _ in TASKS.values()}) + [ALL_IN_ONE_RUN]
    found: Dict[str, List[str]] = {template: [] for template in templates}
    for suffix in repeats:
        runs = {template: template.format(c=config, s=suffix) for template in templates}
        timed = {template: run for template, run in runs.items() if run_file(training_dir, metrics_dir, run, "timing.json").exists()}
        if not timed:
            raise SystemExit(f"--timing-repeats {suffix}: no run has a timing.json ({', '.join(runs.values())})")
        for template, run in timed.items():
            found[template].append(run)
    return found


def parse_repeats(value: str) -> List[str]:
    repeats = [suffix.strip() for suffix in value.split(",") if suffix.strip()]
    for suffix in repeats:
        if not re.fullmatch(r"_\w+", suffix) or re.fullmatch(r"_seed\d+", suffix):
            raise SystemExit(f"--timing-repeats takes run-name suffixes like _repeat1, other than a seed's: not '{suffix}'")
    return repeats


def parse_seeds(option: str, value: str) -> List[int]:
    try:
        return sorted({int(seed) for seed in value.split(",")})
    except ValueError:
        raise SystemExit(f"{option} takes comma-separated integers, like 0,1,2: not '{value}'") from None


def timed_seeds(option: str, value: str, seeds: List[int]) -> List[int]:
    """A subset of --seeds, all of them when the option is not given."""
    timed = parse_seeds(option, value) if value else seeds
    if not set(timed) <= set(seeds):
        raise SystemExit(f"{option} {timed} must be among --seeds {seeds}")
    return timed


def main(
    out_json: Path,
    out_md: Path,
    out_png: Path,
    config: str = typer.Option("trf", help="The project's config variable (run names end with it)"),
    seeds: str = typer.Option("0", help="The seeds the runs were trained with, comma-separated"),
    single_timed_seeds: str = typer.Option("", help="The seeds of the single-task runs timed on the all-in-one runs' machine (default: all of --seeds)"),
    all_in_one_timed_seeds: str = typer.Option("", help="The seeds of the all-in-one runs timed alone on that machine (default: all of --seeds)"),
    metrics_dir: Path = typer.Option(Path("metrics")),
    training_dir: Path = typer.Option(Path("training")),
    timing_repeats: str = typer.Option("", help="Suffixes of runs that trained a seed 0 pipeline again, timed alone: _repeat1,_repeat2"),
    keep_run_files: bool = typer.Option(
        False, "--keep-run-files", help="Copy each run's timing.json and train.log into the metrics folder"
    ),
):
    seeds = parse_seeds("--seeds", seeds)
    single_timed_seeds = timed_seeds("--single-timed-seeds", single_timed_seeds, seeds)
    all_in_one_timed_seeds = timed_seeds("--all-in-one-timed-seeds", all_in_one_timed_seeds, seeds)
    repeats = parse_repeats(timing_repeats)
    rows, curves = [], {}
    for task in TASKS:
        row, curves[task] = compare_task(task, config, seeds, metrics_dir, training_dir)
        rows.append(row)
    check_trained_seeds(rows, config, training_dir, repeats)
    seconds = training_seconds(rows, config, all_in_one_timed_seeds, single_timed_seeds, training_dir, metrics_dir, repeats)
    if keep_run_files:
        kept = copy_run_files(rows, config, training_dir, metrics_dir, repeats)
        print(f"Copied {len(kept)} training files into {metrics_dir}")
    result = {
        "seeds": seeds, "rows": rows, "training_seconds": seconds, "curves": curves,
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
