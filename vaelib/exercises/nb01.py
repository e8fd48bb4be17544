"""Checkers for Notebook 1, the generative model and the ELBO."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli

from .core import CheckResult, B, D, answer, compare, report


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
            }, nonfinite)
        return "matches torch.distributions.Bernoulli(logits).entropy(), saturated logits (|l| = 150) included"
    return report(fn, run, bernoulli_entropy)
