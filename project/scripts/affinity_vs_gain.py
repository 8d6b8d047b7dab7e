"""Does affinity predict transfer? For each (helper config -> target metric)
pair of the low-resource table, the mean lookahead affinity and gradient
cosine from the helper's heads to the target's head (metrics/affinity_*),
beside the measured gain over the target alone, and whether their signs agree.

    python scripts/affinity_vs_gain.py metrics/affinity_vs_gain \
        --affinity metrics/affinity_trf/affinity.json --lowres metrics/lowres_conll04.json \
        --helpers "ner_re_snips_trf=slot_intent:slots+slot_intent:intent,..." \
        --targets "rel_micro_f=ner_re:relations,ents_f=ner_re:entities"
"""
import json
import statistics
from pathlib import Path
from typing import Dict, List

import typer


def parse_mapping(text: str) -> Dict[str, List[str]]:
    """'a=x+y,b=z' -> {'a': ['x', 'y'], 'b': ['z']}."""
    mapping = {}
    for item in text.split(","):
        name, _, values = item.partition("=")
        if not values:
            raise typer.BadParameter(f"'{item}' is not NAME=HEAD[+HEAD...]")
        mapping[name.strip()] = values.strip().split("+")
    return mapping


def mean_from(matrix: List[List[float]], heads: List[str], sources: List[str], target: str) -> float:
    unknown = [head for head in sources + [target] if head not in heads]
    if unknown:
        raise typer.BadParameter(f"heads {unknown} are not in the affinity matrix ({', '.join(heads)})")
    return statistics.mean(matrix[heads.index(source)][heads.index(target)] for source in sources)


def sign(value: float) -> str:
    return "+" if value > 0 else "−" if value < 0 else "0"


def main(
    output: Path = typer.Argument(..., help="Output path without suffix: .json and .md are written"),
    affinity: Path = typer.Option(..., help="affinity.json of `spacy-mtl affinity`"),
    lowres: Path = typer.Option(..., help="The low-resource table's JSON (scripts/lowres_table.py)"),
    helpers: str = typer.Option(..., help="CONFIG=HEAD+HEAD,...: each helper config's heads"),
    targets: str = typer.Option(..., help="METRIC=HEAD,...: the head each target metric scores"),
) -> None:
    matrices = json.loads(affinity.read_text())
    lowres_table = json.loads(lowres.read_text())
    table, baseline = lowres_table["configs"], lowres_table["baseline"]
    target_heads = parse_mapping(targets)
    rows = []
    for config, sources in parse_mapping(helpers).items():
        if config not in table:
            raise typer.BadParameter(f"config '{config}' is not in {lowres}")
        for metric, (target,) in target_heads.items():
            score = table[config][metric]
            baseline_sd = table[baseline][metric]["sd"]
            row = {
                "helper": config, "helper_heads": sources, "metric": metric, "target_head": target,
                "lookahead": mean_from(matrices["lookahead"], matrices["heads"], sources, target),
                "cosine": mean_from(matrices["cosine"], matrices["heads"], sources, target),
                "gain": score["diff"], "gain_beyond_sd": abs(score["diff"]) > max(score["sd"], baseline_sd),
            }
            row["lookahead_agrees"] = sign(row["lookahead"]) == sign(row["gain"])
            row["cosine_agrees"] = sign(row["cosine"]) == sign(row["gain"])
            rows.append(row)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| helper → target | lookahead Z | cosine | gain (points) | beyond 1 sd | signs agree (Z / cos) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['helper']} → {row['metric']} | {row['lookahead']:+.4f} | {row['cosine']:+.4f} | "
            f"{row['gain']:+.2f} | {'yes' if row['gain_beyond_sd'] else 'no'} | "
            f"{'yes' if row['lookahead_agrees'] else 'no'} / {'yes' if row['cosine_agrees'] else 'no'} |"
        )
    agree = sum(row["lookahead_agrees"] for row in rows), sum(row["cosine_agrees"] for row in rows)
    lines.append("")
    lines.append(f"Signs agree: lookahead {agree[0]} of {len(rows)}, cosine {agree[1]} of {len(rows)}.")
    output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    typer.run(main)
