"""Checkers for Notebook 2, the KL divergence."""

from __future__ import annotations

import torch
from torch.distributions import Normal, kl_divergence

from .core import CheckResult, B, L, Fail, answer, call, compare, normal_inputs, report


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
        var_q, var_p, sq = logvar_q.exp(), logvar_p.exp(), (mu_q - mu_p) ** 2
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
            "the log of the variance ratio misses its factor 1/2: the log term is 0.5 * log(sigma_p^2 / sigma_q^2), "
            "half of logvar_p - logvar_q":
                (logvar_p - logvar_q + 0.5 * (var_q + sq) / var_p - 0.5).sum(-1),
            "the log of the variance ratio is upside down: it is log(sigma_p^2 / sigma_q^2), logvar_p - logvar_q":
                0.5 * (logvar_q - logvar_p + (var_q + sq) / var_p - 1).sum(-1),
            "the - 1 is missing: without it the KL of q = p would be 0.5 per dimension, not 0":
                0.5 * (logvar_p - logvar_q + (var_q + sq) / var_p).sum(-1),
            "divides by p's standard deviation where its variance belongs: sigma_p^2 = exp(logvar_p)":
                0.5 * (logvar_p - logvar_q + (var_q + sq) / (0.5 * logvar_p).exp() - 1).sum(-1),
            "uses the standard deviations where the variances belong: sigma^2 = exp(logvar), sigma = exp(logvar / 2)":
                0.5 * (logvar_p - logvar_q + ((0.5 * logvar_q).exp() + sq) / (0.5 * logvar_p).exp() - 1).sum(-1),
            "the variance ratio is upside down: it is q's variance over p's, sigma_q^2 / sigma_p^2":
                0.5 * (logvar_p - logvar_q + var_p / var_q + sq / var_p - 1).sum(-1),
            "divides by q's variance where p's belongs: the expectation is under q, but the squared distances are "
            "measured by p, so both sigma_q^2 and (mu_q - mu_p)^2 are divided by sigma_p^2":
                0.5 * (logvar_p - logvar_q + (var_p + sq) / var_q - 1).sum(-1),
            "this is the KL to N(0, I): mu_p and logvar_p are not used":
                0.5 * (logvar_q.exp() + mu_q**2 - 1 - logvar_q).sum(-1),
        }, "logvar is negative for some inputs, so do not take its log or square root: sigma^2 = exp(logvar)")
        return "matches torch.distributions.kl_divergence(Normal, Normal), summed over the latent dims"
    return report(fn, run, kl_normal)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The reference: KL(N(mu, exp(logvar)) || N(0, I)), summed over the latent dims. Shapes: (B, L), (B, L) -> (B,)."""
    q = Normal(mu, (0.5 * logvar).exp(), validate_args=False)
    return kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)


def _kl_standard_normal_mistakes(mu: torch.Tensor, logvar: torch.Tensor) -> dict[str, torch.Tensor]:
    """The usual wrong answers, each with its message. On the checker's inputs (logvar from -2 to 2, |mu| up to about 7)
    every partial formula differs from the KL and from every other one."""
    ref, var = kl_standard_normal(mu, logvar), logvar.exp()

    def half_sum(terms):
        return 0.5 * terms.sum(-1)

    return {
        "only the 0.5 mu^2 term: the variance terms 0.5 (sigma^2 - 1 - log sigma^2) count too, and are 0 only "
        "when sigma = 1": half_sum(mu**2),
        "only the variance terms: 0.5 mu^2, the cost of a mean away from 0, is missing":
            half_sum(var - 1 - logvar),
        "the - 1 is missing: without it the KL of q = p would be 0.5 per dimension, not 0":
            half_sum(var + mu**2 - logvar),
        "the - log sigma^2 term (- logvar) is missing": half_sum(var + mu**2 - 1),
        "+ logvar where - logvar belongs: KL = 0.5 (sigma^2 + mu^2 - 1 - log sigma^2)":
            half_sum(var + mu**2 - 1 + logvar),
        "mu where mu^2 belongs": half_sum(var + mu - 1 - logvar),
        "uses logvar as the variance: logvar is log sigma^2, so sigma^2 = exp(logvar)":
            half_sum(logvar + mu**2 - 1 - logvar),
        "uses logvar as the standard deviation: sigma = exp(logvar / 2), so sigma^2 = exp(logvar)":
            half_sum(logvar**2 + mu**2 - 1 - torch.log(logvar**2)),
        "uses logvar as log sigma: it is log sigma^2, so sigma^2 = exp(logvar), not exp(2 logvar)":
            half_sum((2 * logvar).exp() + mu**2 - 1 - 2 * logvar),
        "uses the standard deviation exp(logvar / 2) where the variance exp(logvar) belongs":
            half_sum((0.5 * logvar).exp() + mu**2 - 1 - logvar),
        "the factor 0.5 is missing": 2 * ref,
        "averages over the latent dims; the KL of independent dims is their sum": ref / L,
        "wrong sign: a KL is >= 0": -ref,
        "that is KL(p || q), with the prior first: the KL is not symmetric, and the ELBO's is KL(q || p)":
            half_sum((1 + mu**2) / var - 1 + logvar),
    }


def check_kl_standard_normal(fn) -> CheckResult:
    """fn(mu, logvar) -> KL(N(mu, exp(logvar)) || N(0, I)) per example, summed over latent dims, with its gradient.

    0.5 * sum_j (exp(logvar_j) + mu_j^2 - 1 - logvar_j) [Kingma & Welling 2014, App. B]. Shapes: (B, L), (B, L) -> (B,).
    """
    def run(fn):
        mu, logvar, _ = normal_inputs(4)
        mu = 2 * mu  # |mu| up to about 7, so that 0.5 mu^2 is not small beside the variance terms
        compare(answer(fn, mu, logvar), kl_standard_normal(mu, logvar), {B: "batch", L: "latent"},
                _kl_standard_normal_mistakes(mu, logvar),
                "logvar is negative for some inputs (it is log sigma^2, any real number): taking its log or square "
                "root treats it as a variance or a standard deviation; sigma^2 = exp(logvar)")
        mu_g, logvar_g = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
        kl = call(fn, mu_g, logvar_g)
        if not kl.requires_grad:
            raise Fail("the values are right but carry no gradient: do not use .detach(), .item(), numpy or "
                       "torch.no_grad() inside")
        weights = torch.randn(B, generator=torch.Generator().manual_seed(5))
        (kl * weights).sum().backward()
        for name, grad, expected in (("mu", mu_g.grad, weights[:, None] * mu),
                                     ("logvar", logvar_g.grad, weights[:, None] * 0.5 * (logvar.exp() - 1))):
            if grad is None or not torch.allclose(grad, expected, rtol=1e-4, atol=1e-5):
                raise Fail(f"the values are right but the gradient does not reach {name} correctly: build the KL "
                           f"from mu and logvar themselves, with no .detach() inside")
        return ("matches torch.distributions.kl_divergence(Normal(mu, exp(logvar / 2)), Normal(0, 1)) summed over "
                "the latent dims, and its gradients")
    return report(fn, run, kl_standard_normal)
