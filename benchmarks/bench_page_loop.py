"""Notebook 4's training loop, exactly as the page has it, against vaelib.train.train, side by side.

The page's code is read from notebooks/solutions/04_training.py (jupytext): its import statements, then every
cell tagged `training-code` in order (the CourseVAE class, the loss, the training step, the schedule, each with
its check cell, then evaluate_on_page and train_on_page). So the benchmark times the very code a student runs,
with the instructor's solutions. vaelib.train.train runs with the course defaults (Adam 1e-3, decay over the
last quarter, batch 100, seed 0, no progress bar).

Three measurements, each interleaved so that load from other processes hits both sides alike:

1. Speed: `blocks` blocks, each one epoch of the page's `train_on_page` and one epoch of `train` (fresh models,
   the order alternating A B, B A, ...), each timed whole, the test-set evaluation after the epoch included:
   what a student waits for. The ratio is the median of the per-block ratios page / library.
2. The one trick of vaelib.train left off the page: batches binarised into three reused buffers
   (vaelib.train.Batches) against the page's `binarise(train_x[order[...]], generator)`, microseconds per batch,
   interleaved, and what the difference comes to over an epoch.
3. Agreement: one epoch of each from the same weights and seed; the largest relative difference between their
   losses (train and test -ELBO), the difference in the test rate (KL), and the largest between their weights.

    .venv/bin/python benchmarks/bench_page_loop.py [--blocks 10] [--threads N] [--device cpu] [--out PATH]
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import statistics
import time
from pathlib import Path

import jupytext
import torch

import vaelib
from vaelib.config import TrainConfig, pick_device, seed_everything
from vaelib.data import binarise, load_mnist
from vaelib.model import VAE
from vaelib.train import Batches, synchronize, train

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "solutions" / "04_training.py"
TAG = "training-code"
DEFAULT_OUT = Path(__file__).parent / "results" / "bench_page_loop.json"


def page_code(device: torch.device) -> dict:
    """The namespace the page's training cells define: its imports, `device`, then each cell tagged TAG."""
    cells = [c for c in jupytext.read(NOTEBOOK).cells if c.cell_type == "code"]
    imports = [n for c in cells for n in ast.parse(c.source).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    namespace: dict = {"device": device}
    exec(compile(ast.Module(imports, type_ignores=[]), str(NOTEBOOK), "exec"), namespace)
    tagged = [c.source for c in cells if TAG in c.metadata.get("tags", [])]
    if not tagged:
        raise SystemExit(f"no cell of {NOTEBOOK.name} is tagged {TAG!r}")
    with contextlib.redirect_stdout(io.StringIO()) as printed:  # the check cells print their ticks
        for source in tagged:
            exec(compile(source, str(NOTEBOOK), "exec"), namespace)
    if printed.getvalue().count("✓") != printed.getvalue().count("\n"):
        raise SystemExit(f"a check in the page's training cells did not pass:\n{printed.getvalue()}")
    namespace["_cells"] = len(tagged)
    return namespace


def timed(fn, device: torch.device, cpu: list | None = None) -> float:
    """Wall-clock seconds of fn(); with `cpu`, its processor seconds (all threads) are appended to it."""
    synchronize(device)
    started, processor = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # the page prints a line per epoch
        fn()
    synchronize(device)
    if cpu is not None:
        cpu.append(time.process_time() - processor)
    return time.perf_counter() - started


def speed(page: dict, data, device: torch.device, blocks: int) -> dict:
    """Seconds per epoch of each loop, block by block, and the median ratio page / library."""
    def run_page():
        page["train_on_page"](page["CourseVAE"]().to(device), data, epochs=1)

    def run_library():
        train(VAE().to(device), data, TrainConfig(epochs=1, device=str(device), progress=False))

    timed(run_page, device), timed(run_library, device)  # warm-up, outside the timing
    seconds, processor = {"page": [], "library": []}, {"page": [], "library": []}
    for block in range(blocks):
        order = [("page", run_page), ("library", run_library)]
        for name, fn in order if block % 2 == 0 else order[::-1]:
            seconds[name].append(timed(fn, device, processor[name]))
    ratios = [p / q for p, q in zip(seconds["page"], seconds["library"])]
    return {"seconds_per_epoch": seconds, "page_over_library": ratios,
            "median_seconds": {k: statistics.median(v) for k, v in seconds.items()},
            "median_ratio": statistics.median(ratios),
            "processor_seconds_per_epoch": processor,  # with one thread: the wall time on a free core, about
            "median_processor_seconds": {k: statistics.median(v) for k, v in processor.items()},
            "median_processor_ratio": statistics.median(p / q for p, q in zip(processor["page"], processor["library"]))}


def batch_cost(data, device: torch.device, repeats: int = 7, steps: int = 600, B: int = 100) -> dict:
    """Microseconds per batch: the page's binarise(train_x[order[...]], g) against vaelib's reused buffers."""
    train_x = data.train_x.to(device)
    generator = torch.Generator(device).manual_seed(0)
    order = torch.randperm(len(train_x), generator=generator, device=device)
    buffers = Batches(train_x, B, generator)
    buffers.order = order
    n = min(steps, len(train_x) // B)

    def page_batches():
        for i in range(n):
            binarise(train_x[order[i * B:(i + 1) * B]], generator)

    def library_batches():
        for i in range(n):
            buffers(i)

    micro = {"page": [], "library": []}
    for _ in range(repeats):
        for name, fn in (("page", page_batches), ("library", library_batches)):
            micro[name].append(1e6 * timed(fn, device) / n)
    median = {k: statistics.median(v) for k, v in micro.items()}
    return {"microseconds_per_batch": micro, "median_microseconds": median,
            "difference_microseconds": median["page"] - median["library"]}


def agreement(page: dict, data, device: torch.device) -> dict:
    """One epoch of each loop from the same weights and seed: how far their losses and weights differ."""
    seed_everything(0)
    page_model = page["CourseVAE"]().to(device)
    library_model = VAE().to(device)
    library_model.load_state_dict(page_model.state_dict())
    with contextlib.redirect_stdout(io.StringIO()):
        ours = page["train_on_page"](page_model, data, epochs=1)
    theirs = train(library_model, data, TrainConfig(epochs=1, device=str(device), progress=False))
    keys = ("train_neg_elbo", "test_neg_elbo", "test_kl")
    relative = {k: abs(getattr(ours, k)[-1] - getattr(theirs, k)[-1]) / abs(getattr(theirs, k)[-1]) for k in keys}
    weights = max((p - q).abs().max().item() for p, q in zip(page_model.parameters(), library_model.parameters()))
    return {"page": {k: getattr(ours, k)[-1] for k in keys}, "library": {k: getattr(theirs, k)[-1] for k in keys},
            "relative_difference": relative,
            "losses_largest_relative_difference": max(relative["train_neg_elbo"], relative["test_neg_elbo"]),
            "rate_difference_nats": abs(ours.test_kl[-1] - theirs.test_kl[-1]), "largest_weight_difference": weights}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10, help="interleaved blocks of one epoch each")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: pick_device())")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's own)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    data = load_mnist("auto", verbose=False)
    page = page_code(device)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    result = {"agreement": agreement(page, data, device), "speed": speed(page, data, device, args.blocks),
              "batches": batch_cost(data, device)}
    steps = len(data.train_x) // 100
    result["batches"]["per_epoch_seconds"] = result["batches"]["difference_microseconds"] * steps / 1e6
    result["batches"]["fraction_of_library_epoch"] = (result["batches"]["per_epoch_seconds"]
                                                      / result["speed"]["median_seconds"]["library"])
    result.update(notebook=str(NOTEBOOK.relative_to(ROOT)), tag=TAG, cells=page["_cells"], blocks=args.blocks,
                  data=f"{data.source}: {len(data.train_x):,} train / {len(data.test_x):,} test images",
                  steps_per_epoch=steps, device=str(device), threads=torch.get_num_threads(),
                  cpu_count=os.cpu_count(), loadavg_1min_before_after=[load_before, os.getloadavg()[0]],
                  wall_seconds=time.perf_counter() - started, torch_version=torch.__version__,
                  vaelib_version=vaelib.__version__)
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return result


def report(r: dict) -> None:
    s, b, a = r["speed"], r["batches"], r["agreement"]
    print(f"{r['data']}; {r['device']}, {r['threads']} threads, torch {r['torch_version']}; load average "
          f"{r['loadavg_1min_before_after'][0]:.1f} -> {r['loadavg_1min_before_after'][1]:.1f}")
    print(f"one epoch ({r['steps_per_epoch']} steps and the test set), median of {r['blocks']} interleaved blocks: "
          f"page {s['median_seconds']['page']:.2f} s, vaelib.train {s['median_seconds']['library']:.2f} s; "
          f"page / vaelib {s['median_ratio']:.3f} (blocks {min(s['page_over_library']):.3f} to "
          f"{max(s['page_over_library']):.3f})")
    print(f"processor time per epoch (all threads): page {s['median_processor_seconds']['page']:.2f} s, vaelib.train "
          f"{s['median_processor_seconds']['library']:.2f} s; page / vaelib {s['median_processor_ratio']:.3f}")
    print(f"batches: page {b['median_microseconds']['page']:.0f} us, vaelib's buffers "
          f"{b['median_microseconds']['library']:.0f} us; {b['per_epoch_seconds']:.3f} s per epoch, "
          f"{b['fraction_of_library_epoch']:.1%} of vaelib's epoch")
    print(f"agreement after one epoch from the same weights and seed: train and test -ELBO within "
          f"{a['losses_largest_relative_difference']:.1e} (relative), the test rate within "
          f"{a['rate_difference_nats']:.1e} nats, weights within {a['largest_weight_difference']:.1e}")


if __name__ == "__main__":
    main()
