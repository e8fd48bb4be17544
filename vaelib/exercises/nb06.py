"""Checkers for Notebook 6, the exact likelihood and its bounds."""

from __future__ import annotations

import math

import torch

from .core import CheckResult, B, K, answer, compare, report


def log_mean_exp(log_w: torch.Tensor) -> torch.Tensor:
    """The reference: log (1/K) sum_k exp(log_w[k]), stably. Shapes: (K, B) -> (B,)."""
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def check_iwae(fn) -> CheckResult:
    """fn(log_w) -> log (1/K) sum_k exp(log_w[k]), computed stably. Shapes: (K, B) -> (B,)."""
    def run(fn):
        g = torch.Generator().manual_seed(6)
        for log_w in (torch.randn(K, B, generator=g), torch.randn(K, B, generator=g) - 800):
            ref = torch.logsumexp(log_w, 0) - math.log(K)
            got = answer(fn, log_w)
            compare(got, ref, {K: "sample (K)", B: "batch"}, {
                "the - log K is missing: that is the log of the sum of the weights, not of their mean":
                    torch.logsumexp(log_w, 0),
                "averages the log weights: that is the ELBO estimate, below the bound by Jensen's inequality":
                    log_w.mean(0),
                "takes the largest log weight only": log_w.max(0).values,
            }, "exp(log_w) underflows for log weights near -800; use torch.logsumexp(log_w, 0) - log K")
        return "log-mean-exp over the K samples, stable at log weights near -800"
    return report(fn, run, log_mean_exp)
