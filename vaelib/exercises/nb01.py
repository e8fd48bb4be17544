"""Checkers for Notebook 1, the generative model and the ELBO."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli

from .core import CheckResult, B, D, Fail, answer, call, check_shape, compare, first_difference, report


def bernoulli_entropy(logits: torch.Tensor) -> torch.Tensor:
    """The reference: H(p(x|z)) = sum_d softplus(l_d) - sigmoid(l_d) l_d, from the logits. Shapes: (B, D) -> (B,)."""
    return Bernoulli(logits=logits).entropy().sum(-1)


def check_bernoulli_entropy(fn) -> CheckResult:
    """fn(logits) -> H = -sum_d [p_d log p_d + (1 - p_d) log(1 - p_d)], p = sigmoid(logits), per image.

    The entropy of p(x|z), minus the expected log-likelihood of the decoder's own samples. Shapes: (B, D) -> (B,).
    """
    def run(fn):
        g = torch.Generator().manual_seed(1)
        for logits, nonfinite in (
            (3 * torch.randn(B, D, generator=g), "logits are log-odds, any real number: do not take their log"),
            (150 * torch.randn(B, D, generator=g).sign(), "at |logit| = 150, sigmoid is exactly 0 or 1 and "
             "0 * log 0 is nan: write log p and log(1 - p) with softplus, from the logits"),
        ):
            ref = Bernoulli(logits=logits).entropy().sum(-1)
            p = torch.sigmoid(logits)
            got = answer(fn, logits)
            compare(got, ref, {B: "batch", D: "pixel"}, {
                "wrong sign: an entropy is >= 0; it is minus the expected log-probability": -ref,
                "averages over the pixels; the pixels are independent, so their entropies add up": ref / D,
                "only the p log p part: the outcome x = 0 has probability 1 - p and counts too":
                    -(p * F.logsigmoid(logits)).sum(-1),
                "applies sigmoid twice: p = sigmoid(logits), once":
                    Bernoulli(probs=torch.sigmoid(p)).entropy().sum(-1),
                "uses log 2 (a bit) where the answer is in nats: use the natural log": ref / math.log(2),
                "swaps the two softplus terms: -log p = -log sigmoid(l) = softplus(-l) and -log(1 - p) = "
                "softplus(l); each is weighted by its own outcome's probability":
                    (p * F.softplus(logits) + (1 - p) * F.softplus(-logits)).sum(-1),
            }, nonfinite)
        return "matches torch.distributions.Bernoulli(logits).entropy(), saturated logits (|l| = 150) included"
    return report(fn, run, bernoulli_entropy)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The reference: log p(x|z) = sum_d log Bernoulli(x_d; sigmoid(l_d)), from the logits.
    Shapes: (B, D), (B, D) -> (B,)."""
    return Bernoulli(logits=logits, validate_args=False).log_prob(x).sum(-1)


def _log_likelihood_inputs():
    """Two batches of (logits, x), both float32 as a decoder gives them: moderate logits, where every stable and
    naive formula agree; and saturated ones, |logit| from 110 to 200 on pixels the decoder is confidently right
    about (pixels 0, 1) and confidently wrong about (pixels 2, 3), beside two moderate pixels."""
    g = torch.Generator().manual_seed(11)
    moderate = torch.empty(B, D).uniform_(-6, 6, generator=g)  # float32 sigmoid is accurate to 1e-5 here
    x_moderate = torch.bernoulli(torch.full((B, D), 0.5), generator=g)
    x_moderate[:, :2] = torch.tensor([1.0, 0.0])  # each image has black and white pixels
    size = torch.empty(B, 4).uniform_(110, 200, generator=g)
    saturated = torch.cat([size * torch.tensor([1.0, -1.0, 1.0, -1.0]),
                           torch.empty(B, D - 4).uniform_(-6, 6, generator=g)], 1)
    x_saturated = torch.cat([torch.tensor([1.0, 0.0, 0.0, 1.0]).expand(B, 4),
                             torch.bernoulli(torch.full((B, D - 4), 0.5), generator=g)], 1)
    return (moderate, x_moderate), (saturated, x_saturated)


def _log_likelihood_mistakes(logits: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The usual wrong answers, computed as a student would compute them (float32), each with its message."""
    ref = bernoulli_log_likelihood(logits, x)
    p = torch.sigmoid(logits)
    return {
        "wrong sign: that is minus the log-likelihood (the binary cross-entropy, a loss); a log-probability "
        "of binary pixels is <= 0": -ref,
        "averages over the pixels; the pixels are independent given z, so their log-probabilities add up": ref / D,
        "only the x_d = 1 term: a white pixel (x_d = 0) has probability 1 - sigmoid(l_d), and its log counts "
        "too": (x * F.logsigmoid(logits)).sum(-1),
        "only the x_d = 0 term: a black pixel (x_d = 1) has probability sigmoid(l_d), and its log counts too":
            ((1 - x) * F.logsigmoid(-logits)).sum(-1),
        "the term log(1 - sigmoid(l_d)) needs its weight (1 - x_d): it counts only for white pixels":
            (x * F.logsigmoid(logits) + F.logsigmoid(-logits)).sum(-1),
        "swaps the softplus identities: log sigmoid(l) = -softplus(-l) and log(1 - sigmoid(l)) = -softplus(l); "
        "check which of the two your rewrite of x_d log sigmoid(l_d) + (1 - x_d) log(1 - sigmoid(l_d)) needs":
            (x * logits - F.softplus(-logits)).sum(-1),
        "swaps the two logs: log sigmoid(l) goes with x_d = 1 and log(1 - sigmoid(l)) = log sigmoid(-l) with "
        "x_d = 0": (x * F.logsigmoid(-logits) + (1 - x) * F.logsigmoid(logits)).sum(-1),
        "applies sigmoid to probabilities: the logits go into the formula as they are, sigmoid(logits) "
        "is p": (x * F.logsigmoid(p) + (1 - x) * F.logsigmoid(-p)).sum(-1),
        "swaps the arguments: binary_cross_entropy_with_logits(input, target) takes the logits first and "
        "the pixels second": -F.binary_cross_entropy_with_logits(x, logits, reduction="none").sum(-1),
        "each pixel's log-probability stops at -100: binary_cross_entropy on probabilities clamps its logs "
        "there (1 - sigmoid(l) is already 0 in float32 from l = 17), and so does a clamp of the logits at 100. "
        "Pixels the decoder is confidently wrong about are then scored wrong and get no gradient: work from the "
        "logits with softplus":
            -F.binary_cross_entropy(p, x, reduction="none").sum(-1),
    }


def check_bernoulli_log_likelihood(fn) -> CheckResult:
    """fn(logits, x) -> log p(x|z) = sum_d [x_d log sigmoid(l_d) + (1 - x_d) log(1 - sigmoid(l_d))] per image,
    finite at any logit, with the gradient x - sigmoid(logits). Shapes: (B, D), (B, D) -> (B,)."""
    def run(fn):
        (moderate, x_moderate), (saturated, x_saturated) = _log_likelihood_inputs()
        ref = bernoulli_log_likelihood(moderate, x_moderate)
        compare(answer(fn, moderate, x_moderate), ref, {B: "batch", D: "pixel"},
                _log_likelihood_mistakes(moderate, x_moderate),
                "logits are log-odds, any real number: do not take their log; p = sigmoid(logits)")
        got = answer(fn, saturated, x_saturated)
        check_shape(got, ref, {B: "batch", D: "pixel"})
        got = got.detach().to("cpu", torch.float64)
        if torch.isnan(got).any():
            raise Fail("returned nan at |logit| > 100: there sigmoid(l) rounds to exactly 0 or 1, so a term "
                       "such as (1 - x_d) log(1 - sigmoid(l_d)) is 0 * log 0 = nan even where its weight is 0. "
                       "Rewrite both logs with the softplus identities above")
        if torch.isinf(got).any():
            raise Fail("returned -inf at |logit| > 100: there sigmoid(l) underflows to 0 (its log is -inf) and "
                       "exp(l) overflows to inf, so log(sigmoid(l)) or log(1 + exp(l)) is infinite. F.softplus "
                       "and F.logsigmoid compute the same logs without overflow")
        expected = bernoulli_log_likelihood(saturated, x_saturated).double()
        if not torch.allclose(got, expected, rtol=1e-4, atol=1e-3):
            clamped = -F.binary_cross_entropy(torch.sigmoid(saturated), x_saturated, reduction="none").sum(-1)
            if torch.allclose(got, clamped.double(), rtol=1e-4, atol=1e-3):
                raise Fail(list(_log_likelihood_mistakes(saturated, x_saturated))[-1])
            raise Fail("right for moderate logits, wrong at |logit| > 100: a clamp, or a small constant inside a "
                       "log, caps the log-probability of the pixels the decoder is confidently wrong about "
                       f"({first_difference(got, expected)}). The softplus identities need neither")
        logits = saturated.clone().requires_grad_()
        value = call(fn, logits, x_saturated)
        if not value.requires_grad:
            raise Fail("the values are right but carry no gradient: do not use .detach(), .item(), numpy or "
                       "torch.no_grad() inside")
        weights = torch.randn(B, generator=torch.Generator().manual_seed(12))
        (value * weights).sum().backward()
        expected_grad = weights[:, None] * (x_saturated - torch.sigmoid(saturated))  # d log p / d l = x - sigmoid(l)
        if logits.grad is None or not torch.allclose(logits.grad, expected_grad, atol=1e-5):
            raise Fail("the values are right but the gradient with respect to the logits is not x - sigmoid(logits) "
                       "at |logit| > 100 (a clamp or a where() leaves 0 or nan there): build it from softplus")
        return ("matches torch.distributions.Bernoulli(logits).log_prob summed over pixels, at |logit| up to 200 "
                "too, with the gradient x - sigmoid(logits)")
    return report(fn, run, bernoulli_log_likelihood)
