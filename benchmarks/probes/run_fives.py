"""Probe (issue 22): score finished M2 run folders (`python -m vaelib train --model m2 ... --out FOLDER`, or
m2_sweep.py's) on all 10,000 test images, binarised (vaelib's fixed test seed) and grey, and give the share of the
892 test fives each reads as threes (where CS236's recipe fails on label draws 3 and 4 at alpha 100).

    VAELIB_DATA=DIR python benchmarks/probes/run_fives.py FOLDER ...      # DIR holds full MNIST (MNIST/raw)
"""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from vaelib import m2  # noqa: E402
from vaelib.data import load_full_mnist, load_mnist  # noqa: E402
from vaelib.model import load_checkpoint  # noqa: E402

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("folders", nargs="+", type=Path, help="finished M2 run folders (model.pt and metrics.json)")
folders = p.parse_args().folders
runs = []  # every folder read and checked before anything is printed
for folder in folders:
    if not (folder / "model.pt").is_file() or not (folder / "metrics.json").is_file():
        raise SystemExit(f"error: {folder} holds no finished run (model.pt and metrics.json); "
                         f"train one with python -m vaelib train --model m2 --out {folder}")
    metrics = json.loads((folder / "metrics.json").read_text())
    if metrics.get("complete") is False or "test_accuracy" not in metrics:
        raise SystemExit(f"error: {folder} is an unfinished run; finish it with "
                         f"python -m vaelib train --resume {folder}")
    model = load_checkpoint(folder / "model.pt").eval()
    if model.config.kind != "m2":
        raise SystemExit(f"error: {folder} holds a {model.config.kind} model, not an M2")
    runs.append((folder, metrics, model))
torch.set_grad_enabled(False)
data = load_mnist("mnist")
grey = load_full_mnist(splits=("t10k",))[0]  # the same 10,000 test images in the same order, not binarised
fives = data.test_x[data.test_y == 5]
print("| run | seed | alpha | validation (last pass) | test, binarised | test, grey | binarised test fives read as "
      "threes |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for folder, metrics, model in runs:
    threes = (model.classify(fives).argmax(-1) == 3).float().mean().item()
    print(f"| {folder.name} | {metrics['seed']} | {metrics['alpha']:g} | {metrics['validation_accuracy']:.4f} | "
          f"{m2.accuracy(model, data.test_x, data.test_y):.4f} | {m2.accuracy(model, grey, data.test_y):.4f} | "
          f"{threes:.1%} |")
