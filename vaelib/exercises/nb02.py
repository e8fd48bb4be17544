"""Checkers for Notebook 2, the KL divergence."""

from __future__ import annotations

import torch
from torch.distributions import Normal, kl_divergence

from .core import CheckResult, B, L, answer, compare, normal_inputs, report


def kl_normal(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """The reference: KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))), summed over the latent dims.
    Shapes: 4 x (B, L) -> (B,)."""
    q, p = Normal(mu_q, (0.5 * logvar_q).exp()), Normal(mu_p, (0.5 * logvar_p).exp())
    return kl_divergence(q, p).sum(-1)


def check_kl_normal(fn) -> CheckResult:
    """fn(mu_q, logvar_q, mu_p, logvar_p) -> KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))) per example,
    summed over latent dims. Shapes: 4 x (B, L) -> (B,)."""
    def run(fn):
        mu_q, logvar_q, _ = normal_inputs(0)
        mu_p, logvar_p, _ = normal_inputs(9)
        q, p = (Normal(m, (0.5 * lv).exp()) for m, lv in ((mu_q, logvar_q), (mu_p, logvar_p)))
        ref = kl_divergence(q, p).sum(-1)
        per_dim = kl_divergence(q, p)
        got = answer(fn, mu_q, logvar_q, mu_p, logvar_p)
        compare(got, ref, {B: "batch", L: "latent"}, {
            "that is KL(p || q): the KL is not symmetric; the expectation is under q, the first argument":
                kl_divergence(p, q).sum(-1),
            "wrong sign: a KL is >= 0": -ref,
            "twice the KL: the factor 0.5 is missing": 2 * ref,
            "averages over the latent dims; the KL of independent dims is their sum": per_dim.mean(-1),
            "q's variance and (mu_q - mu_p)^2 must both be divided by p's variance, exp(logvar_p)":
                0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) - 1).sum(-1),
            "(mu_q - mu_p)^2 must be divided by p's variance too":
                0.5 * (logvar_p - logvar_q + logvar_q.exp() / logvar_p.exp() + (mu_q - mu_p) ** 2 - 1).sum(-1),
            "this is the KL to N(0, I): mu_p and logvar_p are not used":
                0.5 * (logvar_q.exp() + mu_q**2 - 1 - logvar_q).sum(-1),
        }, "logvar is negative for some inputs, so do not take its log or square root: sigma^2 = exp(logvar)")
        return "matches torch.distributions.kl_divergence(Normal, Normal), summed over the latent dims"
    return report(fn, run, kl_normal)
