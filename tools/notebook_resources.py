"""Run each notebook in a fresh kernel and report its wall time and the kernel's peak memory.

    python tools/notebook_resources.py                # smoke setting (what `make check` runs)
    python tools/notebook_resources.py --full         # full settings (what students run)
    python tools/notebook_resources.py --full --binder   # ... with the environment Binder's `start` sets

Peak memory is the largest resident set of the kernel process (getrusage of the waited-for
children of a fresh runner process), to compare with Binder's 2 GB limit.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNER = """
import resource, sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def measure(notebook: Path, env: dict) -> dict:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", RUNNER, str(notebook), str(notebook.parent)], env=env,
                         capture_output=True, text=True, check=True)
    peak_kib = int(out.stdout.strip().splitlines()[-1])
    return {"notebook": notebook.name, "seconds": round(time.perf_counter() - started, 1),
            "peak_kernel_mib": round(peak_kib / 1024)}


def start_exports() -> dict[str, str]:
    """The `export NAME=value` lines of ./start, the script Binder runs before the notebook server."""
    lines = (ROOT / "start").read_text().splitlines()
    return dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full settings instead of VAELIB_SMOKE=1")
    parser.add_argument("--binder", action="store_true", help="with the variables that ./start exports on Binder")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args()
    env = {**os.environ, "VAELIB_SMOKE": "0" if args.full else "1", "MPLBACKEND": "Agg", "VAELIB_PROGRESS": "0"}
    if args.binder:
        env.update(start_exports())
    for notebook in args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        print(json.dumps(measure(notebook, env)), flush=True)


if __name__ == "__main__":
    main()
