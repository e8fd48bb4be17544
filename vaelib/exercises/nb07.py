"""Checkers for Notebook 7, beyond two dimensions."""

from __future__ import annotations

import torch

from .core import CheckResult, B, L, Fail, answer, compare, report, shape_text


def collapsed_dims(mu: torch.Tensor, logvar: torch.Tensor, threshold: float) -> torch.Tensor:
    """The reference: the latent dims whose KL to N(0, 1), averaged over the batch, is below threshold.
    Shapes: (B, L), (B, L), float -> (L,) bool."""
    return (0.5 * (logvar.exp() + mu.pow(2) - 1 - logvar)).mean(0) < threshold


def check_collapsed_dims(fn) -> CheckResult:
    """fn(mu, logvar, threshold) -> the latent dims whose KL, averaged over the batch, is below threshold.

    A KL criterion for posterior collapse: mean_b 0.5 * (exp(logvar_bj) + mu_bj^2 - 1 - logvar_bj) < threshold.
    Shapes: (B, L), (B, L), float -> (L,) bool.
    """
    def run(fn):
        # dim 0: q = N(0, e^0.139) for every image, KL 0.00506: below both thresholds, its sum over the batch
        # (0.025) above both, and twice it (0.0101, without the factor 0.5) between them; dim 1: mu = 1 for
        # every image, no variance but KL 0.5: not collapsed; dim 2: mu spread widely: used by every criterion.
        g = torch.Generator().manual_seed(8)
        mu = torch.stack([torch.zeros(B), torch.ones(B), 3 * torch.randn(B, generator=g)], 1)
        spread = torch.empty(B).uniform_(-3, -1, generator=g)
        logvar = torch.stack([torch.full((B,), 0.139), torch.zeros(B), spread], 1)
        per_dim = 0.5 * (logvar.exp() + mu**2 - 1 - logvar)  # (B, L)
        for threshold in (0.012, 0.008):
            expected = per_dim.mean(0) < threshold
            got = answer(fn, mu, logvar, threshold)
            if isinstance(got, torch.Tensor) and not (got.dtype == torch.bool or got.is_floating_point()) \
                    and got.shape != expected.shape:
                raise Fail(f"returned the indices {got.tolist()}; return a boolean mask of shape "
                            f"{shape_text(expected.shape)}, one entry per latent dimension (kl < threshold gives one)")
            compare(got, expected, {B: "batch", L: "latent"}, {
                "the factor 0.5 of the KL is missing": (2 * per_dim).mean(0) < threshold,
                "sums the KL over the batch; average it over the batch (.mean(0)), so that the threshold "
                "does not depend on the batch size": per_dim.sum(0) < threshold,
                "uses the variance of mu over the batch (the active-unit criterion); the exercise asks for the "
                "mean KL: a dimension whose mu is constant but far from 0 is not free": mu.var(0) < threshold,
                "returns the dimensions above the threshold (the used ones); return those below it": ~expected,
            }, "the KL of each dimension is finite for finite mu and logvar")
            if isinstance(got, torch.Tensor) and got.dtype != torch.bool:
                raise Fail(f"the right dimensions, but as a {got.dtype} tensor; return a boolean mask "
                            f"(kl < threshold)")
        return "one boolean per latent dimension: mean KL over the batch below the threshold"
    return report(fn, run, collapsed_dims)
