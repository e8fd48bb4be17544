"""Checkers for Notebook 7, beyond two dimensions."""

from __future__ import annotations

import torch

from .core import CheckResult, B, Fail, answer, check_shape, report, shape_text

L_WIDE = 10  # latent dims of the check's inputs: one per case below, and two random ones (not B, so shapes tell)
THRESHOLDS = (0.02, 0.2, 1.0)  # nats; together they separate every mistake below from the answer and each other


def collapsed_dims(mu: torch.Tensor, logvar: torch.Tensor, threshold: float) -> torch.Tensor:
    """The reference: the latent dims whose KL to N(0, 1), averaged over the batch, is below threshold.
    Shapes: (B, L), (B, L), float -> (L,) bool."""
    return (0.5 * (logvar.exp() + mu.pow(2) - 1 - logvar)).mean(0) < threshold


def wide_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """mu, logvar (B, L_WIDE): one latent dim per way of getting the KL wrong, then two random ones.

    Mean KL per dim: 0 (q is the prior), 0.18 (mu = 0.6 for every image: no spread, still not free),
    0.184 (mu = 0, narrow q), 0.16 (mu spread around 0, unit variance), 0.359 (mu = 0, wide q), 0.33
    (logvar spread around 0), 0.011 (nearly collapsed), 0.576 (one image at the prior, four away from it),
    then two of about 1.5 and 1.8. A partial KL (a term
    missing or its sign flipped, with or without the 0.5, averaged or summed) lands on the other side
    of one of THRESHOLDS for at least one of these dims: tests/test_exercises_nb07.py tries them all.
    """
    spread = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])  # (B,), mean 0
    zero, one = torch.zeros(B), torch.ones(B)
    cases = [(zero, zero), (0.6 * one, zero), (zero, -one), (0.8 * spread, zero), (zero, one),
             (zero, 1.5 * spread), (0.15 * one, zero), (torch.tensor([0.0, 1.2, 1.2, 1.2, 1.2]), zero)]
    g = torch.Generator().manual_seed(7)
    cases += [(1.5 * torch.randn(B, generator=g), torch.empty(B).uniform_(-3, 2, generator=g)) for _ in range(2)]
    return torch.stack([m for m, _ in cases], 1), torch.stack([v for _, v in cases], 1)


def _kl(mu, logvar):
    return 0.5 * (logvar.exp() + mu.pow(2) - 1 - logvar)  # (B, L)


# Each known mistake, written as a student writes it, and the sentence that names it.
MISTAKES = [
    ("the factor 0.5 of the KL is missing: every term of the KL is halved",
     lambda mu, lv, t: (2 * _kl(mu, lv)).mean(0) < t),
    ("sums the KL over the batch; average it over the batch (.mean(0)), so that the threshold does not depend on "
     "the batch size", lambda mu, lv, t: _kl(mu, lv).sum(0) < t),
    ("uses the variance of mu over the batch (the active-unit criterion); the exercise asks for the mean KL: a "
     "dimension whose mu is constant but far from 0 is not free", lambda mu, lv, t: mu.var(0) < t),
    ("uses the variance of mu over the batch (the active-unit criterion); the exercise asks for the mean KL: a "
     "dimension whose mu is constant but far from 0 is not free", lambda mu, lv, t: mu.var(0, correction=0) < t),
    ("returns the dimensions above the threshold (the used ones); return those below it",
     lambda mu, lv, t: _kl(mu, lv).mean(0) > t),
    ("keeps only the mean's term 0.5 * mu^2: the terms of the variance are missing, so a narrow q at mu = 0 looks "
     "free", lambda mu, lv, t: (0.5 * mu.pow(2)).mean(0) < t),
    ("the mu^2 term is missing: a q centred away from 0 costs KL even with unit variance",
     lambda mu, lv, t: (0.5 * (lv.exp() - 1 - lv)).mean(0) < t),
    ("adds logvar where the KL subtracts it",
     lambda mu, lv, t: (0.5 * (lv.exp() + mu.pow(2) - 1 + lv)).mean(0) < t),
    ("the - 1 is missing: without it a q equal to the prior (mu = 0, logvar = 0) costs 0.5 nats instead of 0",
     lambda mu, lv, t: (0.5 * (lv.exp() + mu.pow(2) - lv)).mean(0) < t),
    ("the - logvar term is missing (the log of the ratio of the variances)",
     lambda mu, lv, t: (0.5 * (lv.exp() + mu.pow(2) - 1)).mean(0) < t),
    ("uses the standard deviation exp(logvar / 2) where the variance exp(logvar) goes",
     lambda mu, lv, t: (0.5 * ((0.5 * lv).exp() + mu.pow(2) - 1 - lv)).mean(0) < t),
    ("treats logvar as the variance: the variance is exp(logvar), and its log is logvar itself",
     lambda mu, lv, t: (0.5 * (lv + mu.pow(2) - 1 - lv.log())).mean(0) < t),
    ("computes KL(p || q), from the prior to q; the rate is KL(q || p), with the expectation under q",
     lambda mu, lv, t: (0.5 * (lv + (1 + mu.pow(2)) * (-lv).exp() - 1)).mean(0) < t),
    ("averages mu and logvar over the batch before taking the KL; take each image's KL, then average: a "
     "dimension whose mu spreads around 0 is used although its mean mu is 0",
     lambda mu, lv, t: _kl(mu.mean(0), lv.mean(0)) < t),
    ("compares each image's KL with the threshold and keeps the dimensions below it for every image; average "
     "the KL over the batch first, then compare", lambda mu, lv, t: (_kl(mu, lv) < t).all(0)),
    ("compares each image's KL with the threshold and keeps the dimensions below it for any one image; average "
     "the KL over the batch first, then compare", lambda mu, lv, t: (_kl(mu, lv) < t).any(0)),
]


def _as_mask(got, expected: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
    """got as a boolean mask of expected's shape, or Fail with what it is instead."""
    if isinstance(got, torch.Tensor) and not (got.dtype == torch.bool or got.is_floating_point()) \
            and got.shape != expected.shape:
        raise Fail(f"returned the indices {got.tolist()}; return a boolean mask of shape "
                   f"{shape_text(expected.shape)}, one entry per latent dimension (kl < threshold gives one)")
    check_shape(got, expected, {B: "batch", L_WIDE: "latent"})
    got = got.detach().cpu()
    if got.dtype == torch.bool:
        return got
    if got.is_floating_point() and torch.allclose(got.double(), kl, rtol=1e-4, atol=1e-4):
        raise Fail("returned each dimension's mean KL; compare it with the threshold (kl < threshold) and "
                   "return that boolean mask")
    if torch.equal(got.double(), expected.double()):
        raise Fail(f"the right dimensions, but as a {got.dtype} tensor; return a boolean mask (kl < threshold)")
    raise Fail(f"returned a {got.dtype} tensor; return a boolean mask (kl < threshold)")


def _difference(got: list[torch.Tensor], mu: torch.Tensor, logvar: torch.Tensor) -> str:
    """The first dimension the answer gets wrong, as a sentence a student can check by hand."""
    kl = _kl(mu.double(), logvar.double()).mean(0)
    for t, mask in zip(THRESHOLDS, got):
        wrong = (mask != (kl < t)).nonzero().flatten()
        if len(wrong):
            j = wrong[0].item()
            should = "is" if kl[j] < t else "is not"
            return (f"at threshold {t}, latent dimension {j} (mu {[round(v, 2) for v in mu[:, j].tolist()]}, "
                    f"logvar {[round(v, 2) for v in logvar[:, j].tolist()]}) has mean KL {kl[j]:.3f} nats, so it "
                    f"{should} collapsed; yours says the opposite")
    return "no difference found"


def check_collapsed_dims(fn) -> CheckResult:
    """fn(mu, logvar, threshold) -> the latent dims whose KL, averaged over the batch, is below threshold.

    A KL criterion for posterior collapse: mean_b 0.5 * (exp(logvar_bj) + mu_bj^2 - 1 - logvar_bj) < threshold.
    Shapes: (B, L), (B, L), float -> (L,) bool. The inputs (wide_inputs) and the three thresholds separate every
    mistake of MISTAKES from the answer, each by its own pattern.
    """
    def run(fn):
        mu, logvar = wide_inputs()
        kl = _kl(mu.double(), logvar.double()).mean(0)
        got = [_as_mask(answer(fn, mu, logvar, t), kl < t, kl) for t in THRESHOLDS]
        expected = [collapsed_dims(mu, logvar, t) for t in THRESHOLDS]
        if all(torch.equal(g, e) for g, e in zip(got, expected)):
            return "one boolean per latent dimension: mean KL over the batch below the threshold"
        for message, wrong in MISTAKES:
            if all(torch.equal(g, wrong(mu, logvar, t)) for g, t in zip(got, THRESHOLDS)):
                raise Fail(message)
        raise Fail(f"wrong values, and not a mistake this check knows: {_difference(got, mu, logvar)}")
    return report(fn, run, collapsed_dims)
