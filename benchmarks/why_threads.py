"""Why two threads crawl beside a busy core: the pieces of a training step timed under OpenMP settings, with
what the scheduler saw of each thread.

Each setting runs in a fresh process (libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, when
``import torch`` loads it), on a quiet machine and beside one process that keeps a core busy (this
script's own child, ``while True: pass``), settings interleaved, --repeats times. Each process times:

- the first layer's product at batch 100 (100 x 784 by 784 x 256, ``torch.addmm``), the course's
  largest GEMM; the decoder's last (100 x 256 by 256 x 784); one element-wise operation over the
  100 x 784 logits (``exp``), a parallel region with almost no work in it;
- a training step of the course's model (vaelib.train.train_step), 300 steps: mean and median;
- from /proc/self/task/*/schedstat and status, for the main thread and the busiest other thread
  (OpenMP's worker): seconds on the CPU, seconds waiting in the run queue (runnable, not running),
  and involuntary context switches, over the 300 steps.

    .venv/bin/python benchmarks/why_threads.py [--repeats 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "busy" / "why_threads.json"
SETTINGS = {
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "2 threads (libgomp default: 300,000 spins)": {"OMP_NUM_THREADS": "2"},
    "2 threads, GOMP_SPINCOUNT=30000": {"OMP_NUM_THREADS": "2", "GOMP_SPINCOUNT": "30000"},
    "2 threads, GOMP_SPINCOUNT=3000": {"OMP_NUM_THREADS": "2", "GOMP_SPINCOUNT": "3000"},
    "2 threads, OMP_WAIT_POLICY=PASSIVE": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
}

CHILD = r"""
import json, os, statistics, time, torch
from vaelib.config import TrainConfig
from vaelib.data import load_mnist
from vaelib.model import VAE
from vaelib.train import Batches, make_optimizer, train_step

def per_call(f, n):
    for _ in range(10): f()
    times = []
    for _ in range(n):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return statistics.median(times)

def tasks():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        run, wait, slices = (int(v) for v in open(f"/proc/self/task/{tid}/schedstat").read().split())
        status = dict(line.split(":", 1) for line in open(f"/proc/self/task/{tid}/status").read().splitlines() if ":" in line)
        out[int(tid)] = (run / 1e9, wait / 1e9, int(status["nonvoluntary_ctxt_switches"]))
    return out

x, w1, b1 = torch.rand(100, 784), torch.randn(784, 256) * 0.05, torch.zeros(256)
h, w6, b6 = torch.rand(100, 256), torch.randn(256, 784) * 0.05, torch.zeros(784)
logits = torch.randn(100, 784)
out = {"threads": torch.get_num_threads(),
       "gemm_100x784x256_us": 1e6 * per_call(lambda: torch.addmm(b1, x, w1), 500),
       "gemm_100x256x784_us": 1e6 * per_call(lambda: torch.addmm(b6, h, w6), 500),
       "exp_100x784_us": 1e6 * per_call(lambda: torch.exp(logits), 500)}
data = load_mnist("sample", verbose=False)
torch.manual_seed(0)
model, generator = VAE(), torch.Generator().manual_seed(0)
optimizer, batches, cfg = make_optimizer(model, "adam", 1e-3), Batches(data.train_x, 100, generator), TrainConfig()
batches.shuffle()
for i in range(20): train_step(model, optimizer, batches(i % 80), generator, cfg)
before, steps = tasks(), []
for i in range(300):
    t = time.perf_counter(); train_step(model, optimizer, batches(i % 80), generator, cfg); steps.append(time.perf_counter() - t)
after = tasks()
delta = {tid: tuple(a - b for a, b in zip(after[tid], before.get(tid, (0, 0, 0)))) for tid in after}
main = delta.pop(os.getpid())
worker = max(delta.values(), key=lambda v: v[0]) if delta else (0.0, 0.0, 0)
wall = sum(steps)
out.update(step_mean_ms=1e3 * statistics.mean(steps), step_median_ms=1e3 * statistics.median(steps),
           step_p90_ms=1e3 * sorted(steps)[int(0.9 * len(steps))], wall_s=wall,
           main_cpu_s=main[0], main_runqueue_wait_s=main[1], main_involuntary_switches=main[2],
           worker_cpu_s=worker[0], worker_runqueue_wait_s=worker[1], worker_involuntary_switches=worker[2])
print("RESULT " + json.dumps(out))
"""


def run(setting: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(setting, VAELIB_ADAPT_THREADS="0", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(next(l for l in done.stdout.splitlines() if l.startswith("RESULT "))[7:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_busy import others_cpus
    results = []
    for case in ("quiet", "busy core"):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if case == "busy core" else None
        try:
            for repeat in range(args.repeats):
                for name, setting in SETTINGS.items():
                    r = run(setting)
                    r.update(case=case, setting=name, repeat=repeat)
                    results.append(r)
                    print(f"{case:9s} {name:42s} step {r['step_mean_ms']:6.2f} ms (median {r['step_median_ms']:5.2f}); "
                          f"gemm {r['gemm_100x784x256_us']:5.0f} us, exp {r['exp_100x784_us']:4.0f} us; worker "
                          f"{r['worker_cpu_s']:.2f} s on CPU, {r['worker_runqueue_wait_s']:.2f} s waiting, "
                          f"{r['worker_involuntary_switches']} preemptions, in {r['wall_s']:.2f} s", flush=True)
        finally:
            if spinner:
                spinner.kill()
                spinner.wait()
    print(f"others used {others_cpus(2):.2f} CPUs just after")
    summary = {}
    for case in ("quiet", "busy core"):
        for name in SETTINGS:
            mine = [r for r in results if r["case"] == case and r["setting"] == name]
            summary[f"{case} | {name}"] = {k: statistics.median(r[k] for r in mine) for k in mine[0]
                                           if isinstance(mine[0][k], (int, float)) and k != "repeat"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python benchmarks/why_threads.py " + " ".join(sys.argv[1:]),
                                    "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "summary": summary,
                                    "runs": results}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
