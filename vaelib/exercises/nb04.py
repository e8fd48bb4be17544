"""Checkers for Notebook 4, training the VAE."""

from __future__ import annotations

import torch

from .core import CheckResult, B, answer, compare, report


def warmup_loss(log_px_z: torch.Tensor, kl: torch.Tensor, step: int, warmup_steps: int) -> torch.Tensor:
    """The reference: -mean_b(log_px_z - beta kl), beta = min(1, step / warmup_steps). Shapes: (B,), (B,) -> ()."""
    return -(log_px_z - min(1.0, step / warmup_steps) * kl).mean()


def check_warmup_loss(fn) -> CheckResult:
    """fn(log_px_z, kl, step, warmup_steps) -> the loss with the KL term warmed up: beta = min(1, step /
    warmup_steps), loss = -mean_b(log_px_z - beta * kl). Shapes: (B,), (B,), int, int -> ()."""
    def run(fn):
        g = torch.Generator().manual_seed(10)
        log_px_z, kl = -100 - 50 * torch.rand(B, generator=g), 10 * torch.rand(B, generator=g)
        for step, warmup in ((0, 100), (25, 100), (100, 100), (450, 100)):
            beta = min(1.0, step / warmup)
            ref = -(log_px_z - beta * kl).mean()
            got = answer(fn, log_px_z, kl, step, warmup)
            compare(got, ref, {B: "batch"}, {
                "the weight is not capped at 1: after warm-up the loss is -ELBO": -(log_px_z - step / warmup * kl).mean(),
                "weights the reconstruction term instead of the KL": -(beta * log_px_z - kl).mean(),
                "the sign: the loss is minus the (weighted) ELBO": (log_px_z - beta * kl).mean(),
                "sums over the batch; the loss is a mean over the images": -(log_px_z - beta * kl).sum(),
                "the weight falls instead of rising: it goes from 0 at step 0 to 1 at warmup_steps":
                    -(log_px_z - (1 - beta) * kl).mean(),
            }, "every input is finite")
        return "beta = min(1, step / warmup_steps) on the KL term, checked at steps 0, 25, 100 and 450 with warmup_steps = 100"
    return report(fn, run, warmup_loss)
