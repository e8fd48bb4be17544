"""Probe (issue 22): score finished M2 run folders (`python -m vaelib train --model m2 ... --out FOLDER`, or
m2_sweep.py's) with benchmarks/m2_scores.py: accuracy on all 10,000 test images, binarised (vaelib's fixed test
seed) and grey, and the share of the 892 test fives each reads as threes (where CS236's recipe fails on label draws
3 and 4 at alpha 100). Every folder is checked before anything is printed.

    VAELIB_DATA=DIR python benchmarks/probes/run_fives.py FOLDER ...      # DIR holds full MNIST (MNIST/raw)
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # vaelib
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # m2_scores
from m2_scores import scores, test_images  # noqa: E402

from vaelib.model import load_checkpoint  # noqa: E402


def checked(folder: Path) -> tuple[dict, object]:
    """The run's metrics and model, or a stop that says what is wrong with the folder and what to do."""
    if not (folder / "model.pt").is_file() or not (folder / "metrics.json").is_file():
        raise SystemExit(f"error: {folder} holds no run (model.pt and metrics.json); train one with "
                         f"python -m vaelib train --model m2 --out {folder}")
    metrics = json.loads((folder / "metrics.json").read_text())
    if not metrics.get("complete"):
        raise SystemExit(f"error: {folder} is an unfinished run; finish it with "
                         f"python -m vaelib train --resume {folder}")
    if metrics.get("data_source") != "mnist":
        raise SystemExit(f"error: {folder} was trained on {metrics.get('data_source')!r}, not full MNIST: scoring it "
                         f"on full MNIST's test images would mix data; train it with --data mnist")
    model = load_checkpoint(folder / "model.pt").eval()
    if model.config.kind != "m2":
        raise SystemExit(f"error: {folder} holds a {model.config.kind} model, not an M2")
    return metrics, model


p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("folders", nargs="+", type=Path, help="finished M2 run folders (model.pt and metrics.json)")
runs = [(folder, *checked(folder)) for folder in p.parse_args().folders]
images = test_images()
print("| run | seed | alpha | validation (last pass) | test, binarised | test, grey | binarised test fives read as "
      "threes |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for folder, metrics, model in runs:
    s = scores(model, images)
    alpha, validation = metrics.get("alpha"), metrics.get("validation_accuracy")
    print(f"| {folder.name} | {metrics.get('seed', '?')} | {'?' if alpha is None else f'{alpha:g}'} | "
          f"{'?' if validation is None else f'{validation:.4f}'} | {s.binarised:.4f} | {s.grey:.4f} | "
          f"{s.fives_as_threes:.1%} |")
