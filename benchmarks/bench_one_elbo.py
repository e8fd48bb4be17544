"""The training step on the one ELBO (vaelib.elbo.elbo_terms) against the fast path it replaced, side by side.

Until the model protocol (issue 25), vaelib.train had a loss of its own beside elbo_terms: the batch's
-log p(x|z) summed at once by a hand-written autograd function (log(1 + t) for log1p, gradient written out),
plus the closed-form KL. Now every step goes through elbo_terms, per image, then the mean. This times both
steps, interleaved in blocks of --steps, --repeats times, on the course model and the offline sample, with
the same fused Adam, LambdaLR and reused batch buffers, and prints the median images per second of each and
their ratio, for each thread count.

    .venv/bin/python benchmarks/bench_one_elbo.py [--threads 1 2] [--repeats 9] [--steps 100]
        [--json benchmarks/results/one_elbo.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from vaelib.config import TrainConfig
from vaelib.data import load_sample
from vaelib.elbo import kl_standard_normal
from vaelib.model import VAE
from vaelib.train import Batches, lr_factor, make_optimizer, train_step

sys.path.insert(0, str(Path(__file__).parent))
from ablation import NegLogLikelihood  # noqa: E402  the hand-written kernel of the old fast path


def old_objective(model, x, generator, cfg):
    """The fast path as it was: one summed -log p(x|z) by NegLogLikelihood, the closed-form KL, / B."""
    logits, mu, logvar = model(x, generator=generator)
    neg_log_px_z, kl = NegLogLikelihood.apply(logits, x), kl_standard_normal(mu, logvar).sum()
    return (neg_log_px_z + cfg.beta * kl) / len(x), torch.stack([neg_log_px_z + kl, kl]) / len(x)


def stepper(images, objective):
    """A closure running one training step as vaelib.train runs it, with `objective` (None: vaelib's own)."""
    torch.manual_seed(0)
    model, cfg = VAE(), TrainConfig(progress=False)
    optimizer = make_optimizer(model, "adam", cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, 10**9, "decay"))
    generator = torch.Generator().manual_seed(0)
    batches, per_epoch, count = Batches(images, cfg.batch_size, generator), len(images) // cfg.batch_size, [0]

    def step():
        i = count[0] % per_epoch
        if i == 0:
            batches.shuffle()
        x = batches(i)
        if objective is None:
            train_step(model, optimizer, x, generator, cfg)
        else:
            loss, _ = objective(model, x, generator, cfg)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
        count[0] += 1
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    images = load_sample()[0]
    steps = {"one ELBO (vaelib now)": stepper(images, None), "old fast path": stepper(images, old_objective)}
    result = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        seen = {name: [] for name in steps}
        for step in steps.values():  # warm-up
            for _ in range(20):
                step()
        for _ in range(args.repeats):
            for name, step in steps.items():
                started = time.perf_counter()
                for _ in range(args.steps):
                    step()
                seen[name].append(args.steps * 100 / (time.perf_counter() - started))
        medians = {name: statistics.median(v) for name, v in seen.items()}
        ratio = medians["one ELBO (vaelib now)"] / medians["old fast path"]
        result[f"{threads} thread(s)"] = {**{k: round(v) for k, v in medians.items()}, "ratio": round(ratio, 3)}
        print(f"{threads} thread(s): " + ", ".join(f"{k} {v:,.0f} images/s" for k, v in medians.items())
              + f"; one ELBO / old = {ratio:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "torch": torch.__version__,
                                         "data": "offline sample (8,000 training images)", **result}, indent=1) + "\n")


if __name__ == "__main__":
    main()
