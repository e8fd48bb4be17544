"""M2's training step as vaelib takes it, against the step before two changes that compute the same function faster.

(1) The unlabelled loss runs the encoder on [x, onehot(y)] for all 10 labels. Its first layer's product
    [x, y] W^T = x W_x^T + y W_y^T: vaelib computes x's part once per image (M2.encode) instead of once per
    label (`Concatenating` below, the encoder as it was written before).
(2) vaelib.model.ELU computes ELU with exp where PyTorch's CPU kernel uses a slower expm1 (torch.nn.ELU).

Four steps, before / (1) alone / (2) alone / both, run side by side in one process, in interleaved blocks
(a b c d a b c d ...), from the same weights on the same batches, at Stanford CS236's settings (notebook 13:
300-300 ELU networks, ReLU classifier, z of 64, alpha 100, labelled bound 0, batch 100); medians over the blocks.
First it checks that all four give the same loss and gradients (to roundoff).

    .venv/bin/python benchmarks/bench_m2_step.py [--blocks 7] [--steps 100] [--threads 2]

The images are random binary ones (a step's cost does not depend on them). Prints the steps per second of each
and their ratios to the step before, and writes them to benchmarks/results/bench_m2_step.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vaelib import m2  # noqa: E402
from vaelib.config import ModelConfig, TrainConfig  # noqa: E402
from vaelib.model import ELU  # noqa: E402
from vaelib.train import make_optimizer  # noqa: E402

CS236 = ModelConfig(kind="m2", hidden=(300, 300), z_dim=64, activation="elu", classifier_activation="relu")
OUT = ROOT / "benchmarks" / "results" / "bench_m2_step.json"


class Concatenating(m2.M2):
    """M2 with the encoder applied to the concatenation [x, onehot(y)], x repeated for every label."""

    def encode(self, x, y):
        h = self.encoder(m2.concat(x, y))
        return self.mu_head(h), self.logvar_head(h)


def with_torchs_elu(model: m2.M2) -> m2.M2:
    """The model with every vaelib ELU replaced by torch.nn.ELU (in place)."""
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, ELU):
                setattr(module, name, torch.nn.ELU())
    return model


def batches(n: int, seed: int = 0) -> list[m2.M2Batch]:
    g = torch.Generator().manual_seed(seed)
    return [m2.M2Batch(torch.randint(0, 2, (100, 784), generator=g).float(),
                       torch.randint(0, 2, (100, 784), generator=g).float(),
                       torch.randint(0, 10, (100,), generator=g), 100.0, 0.0) for _ in range(n)]


def same_step(models: dict[str, m2.M2], batch: m2.M2Batch) -> None:
    """All the models give the same loss and the same gradients on one batch with the same draws."""
    grads = []
    for model in models.values():
        model.zero_grad()
        loss, _ = m2.m2_loss(model, batch, torch.Generator().manual_seed(1))
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    for loss, grad in grads[1:]:
        torch.testing.assert_close(loss, grads[0][0], rtol=1e-5, atol=1e-4)
        for a, b in zip(grad, grads[0][1]):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def run(model: m2.M2, optimizer, work: list[m2.M2Batch], generator: torch.Generator) -> float:
    start = time.perf_counter()
    for batch in work:
        loss, _ = m2.m2_loss(model, batch, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return len(work) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {"before": with_torchs_elu(Concatenating(CS236)), "shared first layer": with_torchs_elu(m2.M2(CS236)),
              "exp ELU": Concatenating(CS236), "both (vaelib)": m2.M2(CS236)}
    weights = models["before"].state_dict()
    for model in models.values():
        model.load_state_dict(weights)
    work = batches(args.steps)
    same_step(models, work[0])
    lr = TrainConfig().lr
    runs = {name: (model, make_optimizer(model, "adam", lr)) for name, model in models.items()}
    rates = {name: [] for name in runs}
    for name, (model, optimizer) in runs.items():  # warm-up, not counted
        run(model, optimizer, work[:10], torch.Generator().manual_seed(2))
    for block in range(args.blocks):
        for name, (model, optimizer) in runs.items():
            rates[name].append(run(model, optimizer, work, torch.Generator().manual_seed(2)))
    median = {name: statistics.median(r) for name, r in rates.items()}
    ratio = {name: r / median["before"] for name, r in median.items()}
    for name, r in median.items():
        print(f"{name:>18}: {r:6.1f} steps/s (blocks {min(rates[name]):.1f} to {max(rates[name]):.1f}), "
              f"{ratio[name]:.2f} x the step before")
    print(f"({args.threads} threads, {args.blocks} blocks of {args.steps} steps, batch 100 + 100 labelled)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"threads": args.threads, "blocks": args.blocks, "steps": args.steps,
                                    "steps_per_second": median, "blocks_steps_per_second": rates,
                                    "ratio": ratio}, indent=1) + "\n")


if __name__ == "__main__":
    main()
