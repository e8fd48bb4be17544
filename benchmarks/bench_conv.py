"""Training speed of the convolutional networks against the MLP (vaelib.conv), side by side in one process.

Each network (mlp, conv, conv-mlp, mlp-conv; z of size 2 and 50) trains with vaelib's step (the ELBO, fused Adam,
dynamically binarised batches of 100) in interleaved blocks, at each thread count asked for; images/s are
medians over the blocks, and each ratio to the MLP is the median of the ratios within a block (paired). It also
times the decoder alone on a 2-D grid of points, the work of the exact quadrature (vaelib.exact), in points/s.

    .venv/bin/python benchmarks/bench_conv.py [--data-dir DIR] [--blocks 5] [--steps 100] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("VAELIB_ADAPT_THREADS", "0")  # the thread count is this benchmark's to fix
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_step import full_or_sample  # noqa: E402

from vaelib.config import ModelConfig, TrainConfig  # noqa: E402
from vaelib.model import build_model  # noqa: E402
from vaelib.train import Batches, make_optimizer, train_step  # noqa: E402

ARCHS = ("mlp", "conv", "conv-mlp", "mlp-conv")
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "bench_conv.json"


class Trainer:
    def __init__(self, data, arch: str, z_dim: int):
        torch.manual_seed(0)
        self.model = build_model(ModelConfig(arch=arch, z_dim=z_dim))
        self.optimizer = make_optimizer(self.model, "adam", 1e-3)
        self.generator = torch.Generator().manual_seed(0)
        self.batches = Batches(data.train_x, 100, self.generator)
        self.cfg = TrainConfig(progress=False)
        self.per_epoch, self.i = len(data.train_x) // 100, 0

    def run(self, steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            i = self.i % self.per_epoch
            if i == 0:
                self.batches.shuffle()
            train_step(self.model, self.optimizer, self.batches(i), self.generator, self.cfg)
            self.i += 1
        return steps * 100 / (time.perf_counter() - started)


def decode_rate(model, points: int = 8192) -> float:
    """Grid points decoded per second, in chunks of 4,096 as vaelib.exact decodes them; after a warm-up call."""
    z = torch.randn(points, 2)
    with torch.no_grad():
        model.decode(z[:4096])
        started = time.perf_counter()
        for i in range(0, points, 4096):
            model.decode(z[i:i + 4096])
    return points / (time.perf_counter() - started)


def measure(data, threads: int, blocks: int, steps: int) -> dict:
    torch.set_num_threads(threads)
    trainers = {(arch, z): Trainer(data, arch, z) for z in (2, 50) for arch in ARCHS}
    for trainer in trainers.values():
        trainer.run(5)  # warm-up
    seen = {f"{arch} z={z}": [] for arch, z in trainers}
    for block in range(blocks):
        for (arch, z), trainer in trainers.items():
            seen[f"{arch} z={z}"].append(trainer.run(steps))
        print(f"{threads} thread(s), block {block + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in seen.items()),
              flush=True)
    ratios = {name: statistics.median(a / m for a, m in zip(v, seen[f"mlp z={name.split('z=')[1]}"]))
              for name, v in seen.items()}
    decoding = {arch: [] for arch in ("mlp", "conv")}
    for _ in range(3):  # interleaved, paired
        for arch in decoding:
            decoding[arch].append(decode_rate(trainers[(arch, 2)].model))
    decoding = {arch: statistics.median(v) for arch, v in decoding.items()}
    decoding["conv / mlp"] = decoding["conv"] / decoding["mlp"]
    return {"images_per_second": {k: statistics.median(v) for k, v in seen.items()},
            "over the mlp (median of paired blocks)": ratios, "blocks": seen,
            "grid points decoded per second (z of size 2)": decoding}


def shown_arguments(argv: list[str]) -> str:
    """The arguments as a reader can rerun them: the folders given (--data-dir, --out) left out, never a machine's path."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg in ("--data-dir", "--out"):
            skip = not skip
            continue
        kept.append(arg)
    return " ".join(kept)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    data = full_or_sample(args.data_dir)
    params = {arch: {part: sum(p.numel() for n, p in build_model(ModelConfig(arch=arch)).named_parameters()
                               if (n.startswith("decoder") == (part == "decoder")))
                     for part in ("encoder and heads", "decoder")} for arch in ARCHS}
    result = {"command": "benchmarks/bench_conv.py " + shown_arguments(argv if argv is not None else sys.argv[1:]),
              "data": data.source, "torch": torch.__version__, "parameters (z of size 2)": params,
              "threads": {str(t): measure(data, t, args.blocks, args.steps) for t in args.threads}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for t, r in result["threads"].items():
        print(t, "thread(s):", {k: round(v, 3) for k, v in r["over the mlp (median of paired blocks)"].items()},
              {k: round(v) for k, v in r["grid points decoded per second (z of size 2)"].items()})
    return result


if __name__ == "__main__":
    main()
