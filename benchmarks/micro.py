"""The single operations behind each speed idea, timed one against the other.

Each pair (or group) is timed in turn, A B A B ..., --rounds times with torch.utils.benchmark,
and the median is printed in microseconds per call, at the model's sizes (batch 100 x 784 pixels,
the seed's VAE), on the offline sample's digits.

    .venv/bin/python benchmarks/micro.py [--rounds 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from vaelib.data import load_sample
from vaelib.model import VAE
from vaelib.train import Batches

sys.path.insert(0, str(Path(__file__).parent))
from ablation import NegLogLikelihood  # noqa: E402  the hand-written kernel vaelib's step used before


def binarise_ops(images: torch.Tensor) -> dict:
    batches, generator = Batches(images, 100, torch.Generator().manual_seed(0)), torch.Generator()
    batches.shuffle()
    index = batches.order[:100]
    return {"torch.bernoulli(images[index])": lambda: torch.bernoulli(images[index], generator=generator),
            "index_select + rand + lt, into buffers": lambda: batches(0)}


def likelihood_ops() -> dict:
    logits, x = (torch.randn(100, 784) * 5).requires_grad_(), (torch.rand(100, 784) < 0.3).float()
    t = torch.exp(-logits.detach().abs())  # in (0, 1], as in softplus(l) = max(l, 0) + log1p(t)
    return {"log1p(t)": lambda: torch.log1p(t), "log(1 + t)": lambda: torch.log(t + 1),
            "exp(-|l|)": lambda: torch.exp(-logits.detach().abs()),
            "binary_cross_entropy_with_logits, forward + backward":
                lambda: F.binary_cross_entropy_with_logits(logits, x, reduction="sum").backward(),
            "NegLogLikelihood, forward + backward": lambda: NegLogLikelihood.apply(logits, x).backward()}


def optimiser_ops() -> dict:
    model = VAE()
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    adam = {kind: torch.optim.Adam(model.parameters(), lr=1e-9, **kw) for kind, kw in
            [("for-loop", dict(foreach=False)), ("foreach", dict(foreach=True)), ("fused", dict(fused=True))]}
    schedule = torch.optim.lr_scheduler.LambdaLR(adam["fused"], lambda s: 1.0)
    group = adam["fused"].param_groups[0]
    ops = {f"Adam step, {kind}": opt.step for kind, opt in adam.items()}
    ops["SGD step, default"] = torch.optim.SGD(model.parameters(), lr=1e-9).step
    ops["SGD step, fused"] = torch.optim.SGD(model.parameters(), lr=1e-9, fused=True).step
    ops["LambdaLR.step"] = schedule.step
    ops["lr set by hand"] = lambda: group.__setitem__("lr", group["initial_lr"] * 1.0)
    return ops


def medians(ops: dict, rounds: int) -> dict:
    seen = {name: [] for name in ops}
    for _ in range(rounds):
        for name, op in ops.items():
            timer = Timer("op()", globals={"op": op}, num_threads=torch.get_num_threads())
            seen[name].append(timer.blocked_autorange(min_run_time=0.3).median)
    return {name: statistics.median(v) * 1e6 for name, v in seen.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} threads; microseconds per call, median of {args.rounds} rounds")
    images = load_sample()[0]
    for title, ops in [("binarising a batch", binarise_ops(images)), ("log-likelihood", likelihood_ops()),
                       ("optimiser and schedule", optimiser_ops())]:
        print(title)
        for name, us in medians(ops, args.rounds).items():
            print(f"  {name:55s} {us:8.1f}")


if __name__ == "__main__":
    main()
