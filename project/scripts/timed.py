"""Run a command and record its wall time as JSON, and optionally its output:
timed.py OUT.json [--log LOG.txt] CMD..."""
import json
import subprocess
import sys
import time
from pathlib import Path


def run_logged(command, log_path: Path) -> int:
    """Run the command, its output going both to stdout and to the log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf8") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)
            log.flush()
        return process.wait()


def main() -> int:
    out_path, command = Path(sys.argv[1]), sys.argv[2:]
    log_path = None
    if command[:1] == ["--log"]:
        log_path, command = Path(command[1]), command[2:]
    start = time.perf_counter()
    returncode = run_logged(command, log_path) if log_path else subprocess.call(command)
    seconds = time.perf_counter() - start
    if returncode == 0:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps({"command": " ".join(command), "wall_seconds": round(seconds, 1)}, indent=2))
        print(f"Took {seconds / 60:.1f} minutes")
    return returncode


if __name__ == "__main__":
    sys.exit(main())
