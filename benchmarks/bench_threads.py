"""vaelib's training speed under three OpenMP thread settings, on a free machine and beside a busy one.

Each setting trains in a fresh process (OpenMP reads its environment once, at start): 400 steps
of the default model on the offline sample, reporting History's images/s. The settings run in
turn, repeated, medians taken; then again while this script keeps one extra process spinning on
one core, as another job on a shared machine would. The busy process is this script's own child
and is stopped at the end.

    .venv/bin/python benchmarks/bench_threads.py [--repeats 3] [--steps 400]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

SETTINGS = {
    "torch default (a thread per core)": {},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}
TRAIN = """
import torch
from vaelib.config import TrainConfig
from vaelib.data import load_mnist
from vaelib.model import VAE
from vaelib.train import train
torch.manual_seed(0)
history = train(VAE(), load_mnist("sample", verbose=False), TrainConfig(steps={steps}, progress=False))
print(history.train_images / history.train_seconds)
"""


def images_per_second(env: dict, steps: int) -> float:
    out = subprocess.run([sys.executable, "-c", TRAIN.format(steps=steps)], env={**os.environ, **env},
                         capture_output=True, text=True, check=True).stdout
    return float(out.split()[-1])


def medians(steps: int, repeats: int) -> dict:
    seen = {name: [] for name in SETTINGS}
    for _ in range(repeats):
        for name, env in SETTINGS.items():
            seen[name].append(images_per_second(env, steps))
    return {name: statistics.median(v) for name, v in seen.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    free = medians(args.steps, args.repeats)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        loaded = medians(args.steps, args.repeats)
    finally:
        busy.kill()
        busy.wait()
    print(f"{'setting':38s} {'as found':>14s} {'+ 1 busy core':>14s}  (images/s)")
    for name in SETTINGS:
        print(f"{name:38s} {free[name]:14,.0f} {loaded[name]:14,.0f}")


if __name__ == "__main__":
    main()
