"""Collect the cascade ablation: for each variant, the EWT dev scores, the
CoNLL-2000 held-out chunk F1 and the training wall time, as JSON and as a
Markdown table."""
import json
from pathlib import Path
from typing import List

import typer

EWT_SCORES = ("tag_acc", "pos_acc", "dep_uas", "dep_las")


def read_row(name: str, prefix: str) -> dict:
    ewt = json.loads(Path(f"{prefix}_ewt.json").read_text())
    conll2000 = json.loads(Path(f"{prefix}_conll2000.json").read_text())
    row = {"variant": name}
    row.update({key: ewt["scores"].get(key) for key in EWT_SCORES})
    row["chunk_f"] = conll2000["scores"].get("chunk_f")
    row["train_minutes"] = round(ewt.get("training", {}).get("wall_seconds", 0) / 60, 1) or None
    return row


def markdown(rows: List[dict]) -> str:
    columns = ["variant", *EWT_SCORES, "chunk_f", "train_minutes"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [row["variant"]] + [
            "-" if row[key] is None else (f"{100 * row[key]:.2f}" if key != "train_minutes" else str(row[key]))
            for key in columns[1:]
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(
    output: Path = typer.Argument(..., help="JSON file to write"),
    variants: List[str] = typer.Argument(..., help="name=metrics prefix (reads PREFIX_ewt.json, PREFIX_conll2000.json)"),
) -> None:
    rows = [read_row(*variant.split("=", 1)) for variant in variants]
    table = markdown(rows)
    output.write_text(json.dumps({"rows": rows, "markdown": table}, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    typer.run(main)
