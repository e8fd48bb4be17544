"""Notebook 13's M2s trained with Stanford CS236's recipe (vaelib.m2.CS236), scored again from the committed models:
at CS236's alpha of 100 (CS236_TRAINING, the default) or at alpha 300 (CS236_ALPHA300_TRAINING, --alpha 300).

What it scores (benchmarks/m2_scores.py): test accuracy of q(y|x) on all 10,000 test images, binarised (vaelib's
fixed binarisation) and grey, for each label draw; the share of the test fives read as threes (where the weak draws
fail); the pass with the best validation accuracy (what the budget is chosen on); then the mean and standard
deviation (n - 1) over draws.

Where the times come from: "training steps" is each run's train_seconds (its history). At alpha 100 the runs had 2
threads each, alone, and the whole run's wall time and peak memory come from its log (`/usr/bin/time -v`,
benchmarks/results/m2_cs236/vaelib_s*.log). At alpha 300 the committed runs had one thread each, two runs at a time
(benchmarks/m2_sweep.py): the wall time is the one results/m2_sweep.json recorded, and no peak memory was recorded;
the draws retrained alone on 2 threads to check the 30-minute budget are read from their logs
(results/m2_cs236/alpha300_s*_2threads.log) and printed after the table.

    VAELIB_DATA=DIR python benchmarks/m2_cs236_table.py [--alpha 300]      # DIR holds full MNIST (MNIST/raw)
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from m2_scores import scores, test_images  # noqa: E402

from vaelib import m2, runs  # noqa: E402
from vaelib.config import TrainConfig  # noqa: E402
from vaelib.diagnostics import timed_run  # noqa: E402
from vaelib.study import fit_settings  # noqa: E402

DRAWS = (0, 1, 2, 3, 4)
LOGS = ROOT / "benchmarks" / "results" / "m2_cs236"
SWEEP = ROOT / "benchmarks" / "results" / "m2_sweep.json"
TRAINING = {100: m2.CS236_TRAINING, 300: m2.CS236_ALPHA300_TRAINING}
SWEEP_ROWS = functools.cache(lambda: json.loads(SWEEP.read_text())["runs"])  # read once, for all five draws


def from_log(path: Path) -> tuple[str, str]:
    """The wall time (h:mm:ss or m:ss) and the peak resident set /usr/bin/time -v printed."""
    if not path.is_file():
        raise SystemExit(f"error: {path} is missing: it is the log of /usr/bin/time -v of the run (see the commands "
                         f"in benchmarks/README.md)")
    try:
        run = timed_run(path.read_text())
    except ValueError as err:
        raise SystemExit(f"error: {path}: {err}") from None
    return run.wall_clock, f"{run.peak_gib:.2f} GiB"


def from_sweep(name: str) -> tuple[str, str]:
    """The wall time m2_sweep.py recorded for run `name` (one thread, beside another run); no peak memory."""
    row = next((r for r in SWEEP_ROWS() if r["name"] == name), None)
    if row is None:
        raise SystemExit(f"error: {SWEEP} has no row {name!r}")
    minutes, seconds = divmod(row["wall_seconds"], 60)
    threads = f"{row['threads']} thread" + ("s" if row["threads"] != 1 else "")
    return f"{int(minutes)}:{seconds:05.2f} ({threads})", "not recorded"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alpha", type=int, choices=sorted(TRAINING), default=100, help="which five models (default 100)")
    alpha = p.parse_args().alpha
    images = test_images()
    rows = []
    for draw in DRAWS:
        settings = fit_settings(TrainConfig(model=m2.CS236, **TRAINING[alpha], seed=draw), "mnist")
        found = runs.load(runs.PRETRAINED / runs.settings_key(settings), settings)
        if found is None:
            raise SystemExit(f"error: vaelib/pretrained/{runs.settings_key(settings)} (alpha {alpha}, label draw "
                             f"{draw}) is missing or not these settings")
        model, history = found
        wall, peak = from_log(LOGS / f"vaelib_s{draw}.log") if alpha == 100 else from_sweep(f"cs236_a300_s{draw}")
        validation = history.metrics["validation_accuracy"]
        best = max(range(len(validation)), key=validation.__getitem__)  # the first of equal bests
        rows.append((draw, scores(model, images), (int(history.epoch[best]), validation[best], validation[-1]),
                     history.train_seconds, wall, peak))
    threads = "2 threads, alone" if alpha == 100 else "1 thread, beside another run"
    print(f"alpha {alpha}:")
    print("| label draw (seed) | test, binarised | test, grey | fives read as threes | best validation pass "
          f"(accuracy; last) | training steps ({threads}) | whole run | peak memory |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for draw, s, (epoch, best, last), seconds, wall, peak in rows:
        print(f"| {draw} | {s.binarised:.4f} | {s.grey:.4f} | {s.fives_as_threes:.1%} | {epoch} ({best:.4f}; "
              f"{last:.4f}) | {seconds:,.0f} s | {wall} | {peak} |")
    for name in ("binarised", "grey"):
        values = [getattr(row[1], name) for row in rows]
        print(f"mean ± sd, {name}: {statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}")
    print(f"training steps: {min(r[3] for r in rows) / 60:.1f} to {max(r[3] for r in rows) / 60:.1f} minutes")
    if alpha == 300:  # the models above ran on one thread beside another run; the 2-core budget, timed apart
        for log in sorted(LOGS.glob("alpha300_s*_2threads.log")):
            wall, peak = from_log(log)
            print(f"label draw {log.name.split('_')[1][1:]} retrained alone on 2 threads (not the committed model): "
                  f"whole run {wall}, peak memory {peak} ({log.relative_to(ROOT)})")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
