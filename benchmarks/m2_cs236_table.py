"""Notebook 13's M2s trained with Stanford CS236's recipe (vaelib.m2.CS236, CS236_TRAINING), scored again from the
committed models: test accuracy of q(y|x) on all 10,000 test images, binarised (vaelib's fixed binarisation) and
grey, for each label draw; the share of the test fives read as threes (where the weak draws fail); the pass with
the best validation accuracy (what the budget is chosen on); the training steps' seconds from each run's history;
the whole run's wall time and peak memory from its log (`/usr/bin/time -v`, benchmarks/results/m2_cs236/); then
the mean and standard deviation (n - 1) over draws.

    VAELIB_DATA=DIR python benchmarks/m2_cs236_table.py       # DIR holds full MNIST (MNIST/raw)
"""

from __future__ import annotations

import re
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vaelib import m2, runs  # noqa: E402
from vaelib.config import TrainConfig  # noqa: E402
from vaelib.data import load_full_mnist, load_mnist  # noqa: E402
from vaelib.study import fit_settings  # noqa: E402

DRAWS = (0, 1, 2, 3, 4)
LOGS = ROOT / "benchmarks" / "results" / "m2_cs236"


def from_log(path: Path) -> tuple[str, float]:
    """The wall time (h:mm:ss or m:ss) and the peak resident set (GiB) /usr/bin/time -v printed."""
    text = path.read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 2**20
    return wall, peak


def main() -> None:
    data = load_mnist("mnist")
    grey = load_full_mnist(splits=("t10k",))[0]  # the same 10,000 test images in the same order, not binarised
    rows = []
    for draw in DRAWS:
        cfg = TrainConfig(model=m2.CS236, **m2.CS236_TRAINING, seed=draw)
        key = runs.settings_key(fit_settings(cfg, "mnist"))
        found = runs.load(runs.PRETRAINED / key, fit_settings(cfg, "mnist"))
        if found is None:
            raise SystemExit(f"error: vaelib/pretrained/{key} (label draw {draw}) is missing or not these settings")
        model, history = found
        wall, peak = from_log(LOGS / f"vaelib_s{draw}.log")
        fives = data.test_x[data.test_y == 5]
        threes = (model.classify(fives).argmax(-1) == 3).float().mean().item()
        validation = history.metrics["validation_accuracy"]
        best = max(range(len(validation)), key=validation.__getitem__)  # the first of equal bests
        rows.append((draw, m2.accuracy(model, data.test_x, data.test_y), m2.accuracy(model, grey, data.test_y),
                     threes, (int(history.epoch[best]), validation[best], validation[-1]),
                     history.train_seconds, wall, peak))
    print("| label draw (seed) | test, binarised | test, grey | fives read as threes | best validation pass "
          "(accuracy; last) | training steps | whole run | peak memory |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for draw, binary, grey_acc, threes, (epoch, best, last), seconds, wall, peak in rows:
        print(f"| {draw} | {binary:.4f} | {grey_acc:.4f} | {threes:.1%} | {epoch} ({best:.4f}; {last:.4f}) | "
              f"{seconds:,.0f} s | {wall} | {peak:.2f} GiB |")
    for name, column in (("binarised", 1), ("grey", 2)):
        values = [row[column] for row in rows]
        print(f"mean ± sd, {name}: {statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}")
    print(f"training steps: {min(r[5] for r in rows) / 60:.1f} to {max(r[5] for r in rows) / 60:.1f} minutes")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
