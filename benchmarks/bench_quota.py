"""Training speed under a one-CPU quota: torch's default threads, vaelib's fit, and OMP_NUM_THREADS=1.

PyTorch starts a thread per core it sees; a cgroup CPU quota of one core does not change what it
sees, so its threads wait for each other while the quota holds them off the CPU. vaelib fits the
thread count to the quota when imported (vaelib/cpus.py). This benchmark trains the same fixed
number of steps three ways, each in a fresh process inside a control group with Binder's limits
(one CPU by cpu.cfs_quota_us, 2 GiB; tools/binder_limits.py makes the group, so it needs root and
cgroup v1, or systemd-run elsewhere), interleaved and repeated:

  (1) torch's default threads, vaelib's fit disabled (VAELIB_FIT_THREADS=0)
  (2) torch's default threads, with vaelib's fit (nothing set: what a student on Binder gets)
  (3) OMP_NUM_THREADS=1

    .venv/bin/python benchmarks/bench_quota.py [--steps 1000] [--repeats 3] [--cpus 1] [--out FILE]

Each run is ``python -m vaelib train --data sample --steps N --iwae-k 1 --no-progress --out <tmp>
--overwrite``; the figure is metrics.json's train_images_per_second (optimiser steps only,
evaluation excluded). Also recorded: the thread count torch had in the training process, and the
group's cpu.stat (periods throttled, seconds throttled). Medians are compared: (2)/(3) and (1)/(3).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("binder_limits", ROOT / "tools" / "binder_limits.py")
binder_limits = importlib.util.module_from_spec(spec)
spec.loader.exec_module(binder_limits)

SETTINGS = {
    "(1) default threads, fit off": {"VAELIB_FIT_THREADS": "0"},
    "(2) default threads, vaelib fit": {},
    "(3) OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
}
# `python -m vaelib train ...`, after printing the thread count torch has once vaelib is imported.
TRAIN = ("import sys, torch, vaelib; from vaelib.__main__ import main; "
         "print('torch_threads', torch.get_num_threads(), file=sys.stderr, flush=True); "
         "sys.exit(main(sys.argv[1:]))")


def train_once(make_limits, setting: dict, steps: int, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "VAELIB_FIT_THREADS")}
    env.update(setting, VAELIB_PROGRESS="0")
    command = [sys.executable, "-c", TRAIN, "train", "--data", "sample", "--steps", str(steps), "--iwae-k", "1",
               "--no-progress", "--out", str(out), "--overwrite"]
    with make_limits() as limits:
        started = time.perf_counter()
        done = subprocess.run(limits.wrap(command), env=env, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - started
        stats = limits.stats()
    if done.returncode != 0:
        raise SystemExit(f"training failed ({done.returncode}):\n{done.stderr[-2000:]}")
    threads = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("torch_threads ")]
    metrics = json.loads((out / "metrics.json").read_text())
    return {"images_per_second": round(metrics["train_images_per_second"], 1),
            "train_seconds": round(metrics["train_seconds"], 2), "process_seconds": round(seconds, 1),
            "torch_threads": int(threads[0]) if threads else None,
            "throttled_count": stats["throttled_count"], "cpu_periods": stats["cpu_periods"],
            "throttled_seconds": None if stats["throttled_seconds"] is None else round(stats["throttled_seconds"], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quota" / "quota_threads.json")
    args = parser.parse_args()
    try:
        make_limits = binder_limits.enforcer(binder_limits.parse_size("2G"), args.cpus)
    except binder_limits.CannotEnforce as error:
        print(f"bench_quota: cannot put a CPU quota in force here: {error}", file=sys.stderr)
        return 2
    machine = {"nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "torch": torch.__version__,
               "torch_threads_unlimited": torch.get_num_threads(), "load_average_before": os.getloadavg(),
               "mechanism": make_limits().mechanism}
    print(f"{machine}; {args.steps} steps per run, quota {args.cpus:g} CPU", flush=True)
    runs = {name: [] for name in SETTINGS}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp:
        for repeat in range(args.repeats):
            for name, setting in SETTINGS.items():
                run = train_once(make_limits, setting, args.steps, Path(tmp) / "run")
                runs[name].append(run)
                print(f"repeat {repeat + 1} {name}: {run['images_per_second']:,.0f} images/s, "
                      f"{run['torch_threads']} torch threads, throttled {run['throttled_count']} of "
                      f"{run['cpu_periods']} periods ({run['throttled_seconds']} s)", flush=True)
    medians = {name: statistics.median(r["images_per_second"] for r in v) for name, v in runs.items()}
    names = list(SETTINGS)
    ratios = {"(2)/(3)": medians[names[1]] / medians[names[2]], "(1)/(3)": medians[names[0]] / medians[names[2]]}
    print()
    print("| setting | torch threads | images/s, median | runs | vs (3) |")
    print("| --- | ---: | ---: | --- | ---: |")
    for name in names:
        print(f"| {name} | {runs[name][0]['torch_threads']} | {medians[name]:,.0f} | "
              f"{', '.join(format(r['images_per_second'], ',.0f') for r in runs[name])} | "
              f"{medians[name] / medians[names[2]]:.2f} |")
    print(f"\n(2)/(3) = {ratios['(2)/(3)']:.3f}, (1)/(3) = {ratios['(1)/(3)']:.3f}; "
          f"{time.perf_counter() - started:.0f} s in all")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": ".venv/bin/python benchmarks/bench_quota.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": machine, "steps": args.steps,
        "cpu_quota": args.cpus, "memory_limit": "2G", "settings": SETTINGS, "runs": runs,
        "median_images_per_second": medians, "ratios_of_medians": ratios,
        "load_average_after": os.getloadavg(), "total_seconds": round(time.perf_counter() - started)}, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
