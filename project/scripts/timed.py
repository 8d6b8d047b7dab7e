"""Run a command and record its wall time as JSON: timed.py OUT.json CMD..."""
import json
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    out_path, command = Path(sys.argv[1]), sys.argv[2:]
    start = time.perf_counter()
    returncode = subprocess.call(command)
    seconds = time.perf_counter() - start
    if returncode == 0:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps({"command": " ".join(command), "wall_seconds": round(seconds, 1)}, indent=2))
        print(f"Took {seconds / 60:.1f} minutes")
    return returncode


if __name__ == "__main__":
    sys.exit(main())
