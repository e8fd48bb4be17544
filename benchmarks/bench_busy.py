"""Training, the IWAE estimate and the exact quadrature beside other work: vaelib's default against fixed thread settings.

Four cases, each measured with every setting in turn (interleaved, the order rotated each repeat):

  quiet      nothing else started by this script (the load of other users is recorded, see below)
  busy core  beside one process that keeps one core busy (``while True: pass``)
  two runs   beside a second training run of the course with the same setting (two notebooks at once):
             ``python -m vaelib train --data sample`` restarted in a loop until the measurement ends
  quota      inside a cgroup with one CPU by quota and 2 GiB (Binder's limits; tools/binder_limits.py,
             root and cgroup v1 here, or systemd-run)

Settings (each a fresh process: OpenMP reads its environment once, when torch is imported):

  default    vaelib as a student gets it: threads fitted to the quota (vaelib.cpus), then adapted to
             the load (vaelib.threads)
  fit only   the default before vaelib.threads: VAELIB_ADAPT_THREADS=0
  1 thread   OMP_NUM_THREADS=1
  2 threads  OMP_NUM_THREADS=2 (torch's own default on this 2-core machine, whatever the quota)
  passive    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE

Each measured process imports vaelib and then, timed one after the other in the same process (as
``python -m vaelib train`` trains and then scores): (1) training, vaelib.train.train of the course
model on the offline sample for --steps steps (images/s of its History, optimiser steps only);
(2) the IWAE estimate, per_image_iwae with K = --iwae-k on the first --iwae-images test images
(images/s); (3) the exact quadrature, vaelib.exact.converged_log_px on the first --exact-images
test images with the model just trained (images/s). The table gives medians over the repeats and,
per case and workload, the default's median over the best fixed setting's median (1 thread,
2 threads, passive), and the same ratio paired within each repeat (its settings run one after another). Every process also reports the CPU time that processes other than this
benchmark's used while it ran ("others", in CPUs: from /proc/stat, less the measured process, its
companion and the busy loop), so a "quiet" row taken while other users were busy shows as such.

    .venv/bin/python benchmarks/bench_busy.py [--repeats 3] [--cases quiet busy two quota] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "busy" / "bench_busy.json"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                    "VAELIB_FIT_THREADS", "VAELIB_ADAPT_THREADS")
SETTINGS = {
    "default": {},
    "fit only": {"VAELIB_ADAPT_THREADS": "0"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "2 threads": {"OMP_NUM_THREADS": "2"},
    "passive": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
}
FIXED = ("1 thread", "2 threads", "passive")
WORKLOADS = ("train", "iwae", "exact")
CASES = ("quiet", "busy", "two", "quota")
CASE_NAMES = {"quiet": "quiet machine", "busy": "beside one busy core", "two": "beside a second training run",
              "quota": "one-CPU quota"}

# The measured process: three workloads, one JSON line.
CHILD = r"""
import json, sys, time, torch
import vaelib
from vaelib import threads
from vaelib.config import TrainConfig
from vaelib.data import load_mnist
from vaelib.exact import converged_log_px
from vaelib.model import VAE
from vaelib.evaluate import per_image_iwae
from vaelib.train import train
steps, k, n_iwae, n_exact = (int(a) for a in sys.argv[1:5])
data = load_mnist("sample", verbose=False)
torch.manual_seed(0)
model = VAE()
out = {"threads_at_start": torch.get_num_threads()}
h = train(model, data, TrainConfig(steps=steps, progress=False))
out["train"] = h.train_images / h.train_seconds
model.eval()
started = time.perf_counter()
per_image_iwae(model, data.test_x[:n_iwae], k)
out["iwae"] = n_iwae / (time.perf_counter() - started)
started = time.perf_counter()
converged_log_px(model, data.test_x[:n_exact])
out["exact"] = n_exact / (time.perf_counter() - started)
out["threads_at_end"] = torch.get_num_threads()
out["adaptation"] = threads.status()
print("RESULT " + json.dumps(out), flush=True)
"""
COMPANION = ("import sys; from vaelib.__main__ import main; "
             "sys.exit(main(['train', '--data', 'sample', '--steps', '100000', '--iwae-k', '1', '--no-progress', "
             "'--overwrite', '--out', sys.argv[1]]))")


def clean_env(setting: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env.update(setting, VAELIB_PROGRESS="0", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def busy_ticks() -> int:
    """Jiffies all CPUs spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[:8]) - fields[3] - fields[4]


def children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_ticks(pid: int) -> int:
    """CPU jiffies of a process and its live descendants (threads included), from /proc."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(stat[11]) + int(stat[12])
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo += [int(c) for c in children]
        except (OSError, IndexError, ValueError):
            pass
    return total


class Background:
    """What runs beside the measured process in a case: nothing, a busy loop, or a second training run."""

    def __init__(self, case: str, setting: dict, tmp: Path):
        self.case, self.setting, self.tmp, self.proc = case, setting, tmp, None

    def __enter__(self):
        if self.case == "busy":
            self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        elif self.case == "two":
            # A second course run with the same setting, restarted in a loop so it outlasts the measurement.
            loop = f"while true; do {sys.executable} -c \"{COMPANION}\" {self.tmp / 'companion'} >/dev/null 2>&1; done"
            self.proc = subprocess.Popen(["bash", "-c", loop], env=clean_env(self.setting), start_new_session=True)
            time.sleep(5)  # past its imports, into training
        return self

    def ticks(self) -> int:
        return tree_ticks(self.proc.pid) if self.proc else 0

    def __exit__(self, *exc):
        if self.proc is None:
            return
        if self.case == "two":
            os.killpg(self.proc.pid, 9)
        else:
            self.proc.kill()
        self.proc.wait()


def measure(case: str, name: str, args, limits_factory, tmp: Path) -> dict:
    command = [sys.executable, "-c", CHILD, str(args.steps), str(args.iwae_k), str(args.iwae_images),
               str(args.exact_images)]
    env = clean_env(SETTINGS[name])
    hz = os.sysconf("SC_CLK_TCK")
    with Background(case, SETTINGS[name], tmp) as background:
        limits = limits_factory() if case == "quota" else None
        if limits is not None:
            limits.__enter__()
            command = limits.wrap(command)
        try:
            before = (busy_ticks(), background.ticks(), time.perf_counter(), children_seconds())
            done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
            after = (busy_ticks(), background.ticks(), time.perf_counter(), children_seconds())
        finally:
            if limits is not None:
                limits.__exit__(None, None, None)
    if done.returncode != 0:
        raise SystemExit(f"{case} / {name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    wall = after[2] - before[2]
    # The measured process is the only child reaped in the window, so RUSAGE_CHILDREN's growth is its CPU time.
    others = ((after[0] - before[0]) - (after[1] - before[1])) / hz - (after[3] - before[3])
    others /= wall
    result.update(case=case, setting=name, wall_s=round(wall, 1), others_cpus=round(max(0.0, others), 2),
                  background_cpus=round((after[1] - before[1]) / hz / wall, 2))
    return result


def others_cpus(seconds: float) -> float:
    """CPUs that processes other than this one and its children used over the next `seconds`."""
    hz = os.sysconf("SC_CLK_TCK")
    before, mine = busy_ticks(), tree_ticks(os.getpid())
    time.sleep(seconds)
    return ((busy_ticks() - before) - (tree_ticks(os.getpid()) - mine)) / hz / seconds


def wait_quiet(timeout: float, threshold: float = 0.2, window: float = 5.0) -> float:
    """Wait until other processes use under `threshold` CPUs over `window` seconds, or `timeout` has passed."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout and others_cpus(window) >= threshold:
        pass
    return round(time.perf_counter() - started, 1)


def summarise(runs: list[dict]) -> dict:
    table = {}
    for case in dict.fromkeys(r["case"] for r in runs):
        rows = {}
        for name in SETTINGS:
            mine = [r for r in runs if r["case"] == case and r["setting"] == name]
            if mine:
                rows[name] = {w: statistics.median(r[w] for r in mine) for w in WORKLOADS}
                rows[name]["others_cpus"] = statistics.median(r["others_cpus"] for r in mine)
        ratios = {}
        for w in WORKLOADS:
            best = max(FIXED, key=lambda n: rows.get(n, {}).get(w, 0))
            ratios[w] = {"best": best, "default / best": rows["default"][w] / rows[best][w],
                         "fit only / best": rows["fit only"][w] / rows[best][w] if "fit only" in rows else None,
                         "paired": paired(runs, case, w)}
        table[case] = {"medians": rows, "ratios": ratios}
    return table


def paired(runs: list[dict], case: str, workload: str) -> list[float]:
    """Per repeat, the default's speed over the best fixed setting's in that same repeat (the settings of a
    repeat run one after another, so they met much the same load): the ratios, in repeat order."""
    ratios = []
    for repeat in sorted({r["repeat"] for r in runs if r["case"] == case}):
        mine = {r["setting"]: r[workload] for r in runs if r["case"] == case and r["repeat"] == repeat}
        fixed = [mine[n] for n in FIXED if n in mine]
        if "default" in mine and fixed:
            ratios.append(round(mine["default"] / max(fixed), 3))
    return ratios


def markdown(table: dict) -> str:
    lines = ["| case | setting | training (images/s) | IWAE (images/s) | exact (images/s) | others (CPUs) |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for case, t in table.items():
        for name, row in t["medians"].items():
            cells = []
            for w in WORKLOADS:
                cell = f"{row[w]:,.0f}" if row[w] >= 100 else f"{row[w]:,.1f}"
                if name == "default":
                    each = ", ".join(f"{r:.2f}" for r in t["ratios"][w]["paired"])
                    cell += f" ({t['ratios'][w]['default / best']:.2f} of best; per repeat {each})"
                if name == t["ratios"][w]["best"]:
                    cell = f"**{cell}**"
                cells.append(cell)
            lines.append(f"| {CASE_NAMES[case]} | {name} | {' | '.join(cells)} | {row['others_cpus']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=1600, help="1,600: `python -m vaelib train --data sample`'s 20 epochs")
    parser.add_argument("--iwae-k", type=int, default=1000, help="1,000: the IWAE estimate at the end of a run")
    parser.add_argument("--iwae-images", type=int, default=500)
    parser.add_argument("--exact-images", type=int, default=2000, help="2,000: all of the sample's test images")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each run, wait up to this long for other processes to use under 0.2 CPUs "
                             "(over 5 s); the wait and the CPUs they used during the run are recorded")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    limits_factory = None
    if "quota" in args.cases:
        spec = importlib.util.spec_from_file_location("binder_limits", ROOT / "tools" / "binder_limits.py")
        binder_limits = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(binder_limits)
        try:
            limits_factory = binder_limits.enforcer(binder_limits.parse_size("2G"), 1.0)
        except binder_limits.CannotEnforce as error:
            print(f"bench_busy: no quota case here: {error}", file=sys.stderr)
            args.cases = [c for c in args.cases if c != "quota"]
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()}; cases {args.cases}; {args.repeats} repeats", flush=True)
    runs, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-busy-") as tmp:
        for case in args.cases:
            for repeat in range(args.repeats):
                order = args.settings[repeat % len(args.settings):] + args.settings[:repeat % len(args.settings)]
                for name in order:
                    waited = wait_quiet(args.wait_quiet)
                    run = measure(case, name, args, limits_factory, Path(tmp))
                    run["waited_for_quiet_s"] = waited
                    run["repeat"] = repeat
                    runs.append(run)
                    print(f"{case:5s} {name:9s} train {run['train']:8,.0f}  iwae {run['iwae']:6,.0f}  exact "
                          f"{run['exact']:6,.0f} images/s; threads {run['threads_at_start']} -> {run['threads_at_end']}; "
                          f"others {run['others_cpus']:.2f} CPUs; {run['wall_s']} s", flush=True)
                    if run["adaptation"].get("history"):
                        print("      probes (s, threads chosen): " + ", ".join(
                            f"{t:.1f} {c}" for t, _, c in run["adaptation"]["history"][:12]), flush=True)
    table = summarise(runs)
    print()
    print(markdown(table))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python benchmarks/bench_busy.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpus": os.cpu_count(), "settings": SETTINGS,
        "workloads": {"train": f"{args.steps} steps, offline sample", "iwae": f"K = {args.iwae_k}, {args.iwae_images} test images",
                      "exact": f"converged_log_px, {args.exact_images} test images"},
        "table": table, "markdown": markdown(table), "runs": runs,
        "total_seconds": round(time.perf_counter() - started)}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
