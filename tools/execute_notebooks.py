"""Execute the instructor notebooks in place, one after another, and record each one's wall time.

    python tools/execute_notebooks.py [notebooks/solutions/NN_name.ipynb ...]   (what `make notebooks` runs)

Each notebook runs in a fresh kernel with `jupytext --execute` (outputs saved into the .ipynb), in
order, so that notebook 4's course model is there for notebooks 5 to 7. The times, with the machine
they were measured on, go to benchmarks/results/notebook_times.json, which the README's table quotes
(given notebooks, only their times are replaced).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "notebook_times.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb"))
    jupytext = Path(sys.executable).with_name("jupytext")
    seconds = {}
    for notebook in notebooks:
        started = time.perf_counter()
        subprocess.run([str(jupytext), "--execute", "--set-kernel", "python3", str(notebook)], check=True)
        seconds[notebook.stem] = round(time.perf_counter() - started, 1)
        print(f"{notebook.stem}: {seconds[notebook.stem]:.0f} s", flush=True)
    import torch

    record = {"command": "make notebooks (python tools/execute_notebooks.py)",
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
              "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "processor": platform.processor() or platform.machine(), "torch": torch.__version__},
              "smoke": os.environ.get("VAELIB_SMOKE", "0"), "seconds": seconds,
              "total_seconds": round(sum(seconds.values()), 1)}
    if args.notebooks and RESULT.exists():  # a few notebooks run again: their times replace the old ones
        record["seconds"] = {**json.loads(RESULT.read_text())["seconds"], **seconds}
        record["total_seconds"] = round(sum(record["seconds"].values()), 1)
    RESULT.write_text(json.dumps(record, indent=1) + "\n")
    print(f"total of every notebook's latest time: {record['total_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
