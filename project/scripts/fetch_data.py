"""Get the datasets into assets/: copied from a local `shared/data` folder
beside the repository when there is one, else downloaded from the public
sources named in each dataset's SOURCE.md."""
import gzip
import shutil
import sys
import urllib.request
from pathlib import Path

import typer

SLOT_GATED = "https://raw.githubusercontent.com/MiuLab/SlotGated-SLU/61f0307c729b1fad479ef1de94aa5ac5dee601b0/data"
SLU_FILES = [f"{split}/{name}" for split in ("train", "valid") for name in ("seq.in", "seq.out", "label")]
CONLL04 = "https://raw.githubusercontent.com/tungnkhust/Information-Extraction/bf48e4e8dd71d08beaa04f1b523c3e5673c32440/data/conll04"
CONLL2000 = "https://raw.githubusercontent.com/yuxiang-wu/sgdsvm/e1735c8a36e0f6eaf0c1218679c6a66310ae6a0f/data/conll2000"
EWT = "https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/15d613d8447b3478787d4c278730a1e48a945efb"
# Files stored gzipped at their source, by their name here.
GZIPPED = {"train.txt"}
SOURCES = {
    "snips": (f"{SLOT_GATED}/snips", SLU_FILES),
    "atis": (f"{SLOT_GATED}/atis", SLU_FILES),
    "conll04": (CONLL04, ["conll04_train.json", "conll04_dev.json", "conll04_types.json"]),
    "conll2000": (CONLL2000, ["train.txt"]),
    "ud_english_ewt": (EWT, ["en_ewt-ud-train.conllu", "en_ewt-ud-dev.conllu"]),
}
REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_DATA = REPO_ROOT.parent / "shared" / "data"


def download(base_url: str, file_name: str, target: Path) -> None:
    gzipped = file_name in GZIPPED
    url = f"{base_url}/{file_name}" + (".gz" if gzipped else "")
    print(f"Downloading {url}", file=sys.stderr)
    tmp = target.with_suffix(target.suffix + ".part")
    urllib.request.urlretrieve(url, tmp)
    if gzipped:
        tmp.write_bytes(gzip.decompress(tmp.read_bytes()))
    tmp.rename(target)


def main(
    datasets: list[str] = typer.Argument(..., help=f"Any of: {', '.join(SOURCES)}"),
    dest: Path = typer.Option(REPO_ROOT / "assets", help="Where the dataset folders go"),
    local: Path = typer.Option(LOCAL_DATA, help="Local copy of the data, used when present"),
) -> None:
    for name in datasets:
        if name not in SOURCES:
            typer.secho(f"Unknown dataset '{name}'; known: {', '.join(SOURCES)}", fg="red", err=True)
            raise typer.Exit(1)
        base_url, files = SOURCES[name]
        for file_name in files:
            target = dest / name / file_name
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = local / name / file_name
            if source.is_file():
                shutil.copyfile(source, target)
            else:
                download(base_url, file_name, target)
        print(f"{name}: {dest / name}")


if __name__ == "__main__":
    typer.run(main)
