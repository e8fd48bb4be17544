"""Checkers for Notebook 6, the exact likelihood and its bounds."""

from __future__ import annotations

import math

import torch

from .core import CheckResult, B, K, Fail, answer, compare, report


def log_mean_exp(log_w: torch.Tensor) -> torch.Tensor:
    """The reference: log (1/K) sum_k exp(log_w[k]), stably, by hand (what the exercise asks; torch.logsumexp
    computes the same). Shapes: (K, B) -> (B,)."""
    top = log_w.max(0).values  # (B,): each image's largest log weight, taken out of its sum
    return top + torch.log(torch.exp(log_w - top).mean(0))


def wide_log_weights(seed: int = 6) -> torch.Tensor:
    """Log weights as a badly fitted encoder gives them: images hundreds of nats apart, and within an image
    draws that spread over hundreds of nats, all far below float32's exp range (e^-103). Shape: (K, B).

    Each known mistake gives -inf or +inf on its own images: exp(log_w) underflows for every image (and in
    float64 for image 3, below e^-745); one maximum over all images (log_w.max()) for images 2 and 3, which
    lie hundreds of nats below image 1; each image's minimum for images 0, 2 and 4, whose draws spread over
    more than 88 nats; each image's mean for images 2 and 4, where the largest draw lies far above it.
    """
    g = torch.Generator().manual_seed(seed)
    columns = [-140.0 - torch.tensor([0.0, 1, 2, 3, 4, 5, 300]),  # six close draws and one far below
               -120.0 + 3 * torch.randn(K, generator=g),  # the image with the largest weights
               -400.0 - torch.tensor([0.0, 50, 100, 150, 200, 250, 300]),  # spread evenly over 300 nats
               -800.0 + 3 * torch.randn(K, generator=g),  # below exp's range even in float64
               -160.0 - torch.tensor([0.0, 120, 150, 180, 200, 220, 250])]  # one draw dominates
    return torch.stack([c[torch.randperm(K, generator=g)] for c in columns], 1)  # draws in random order


def shifted(log_w: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """top + log mean exp(log_w - top): the log-mean-exp trick with a shift `top`, as a student writes it."""
    return top + torch.log(torch.exp(log_w - top).mean(0))


def nonfinite_mistakes(log_w: torch.Tensor) -> dict[str, torch.Tensor]:
    """The answers that overflow or underflow, each computed as a student would write it (float32)."""
    return {
        "returned -inf where the answer is finite: exp(log_w) underflows to 0 in float32 below about -103, and "
        "every log weight here lies below that: take a common factor out of the sum before the exponentials":
            torch.log(torch.exp(log_w).mean(0)),
        "returned -inf where the answer is finite: exp(log_w) underflows even in float64 below about -745; take "
        "a common factor out of the sum before the exponentials instead of raising the precision":
            torch.log(torch.exp(log_w.double()).mean(0)).float(),
        "returned -inf where the answer is finite: it takes out one maximum over all images (log_w.max()), and "
        "an image whose log weights lie hundreds of nats below another image's still underflows; take out each "
        "image's own maximum, log_w.max(0).values":
            shifted(log_w, log_w.max()),
        "returned +inf where the answer is finite: it takes out each image's smallest log weight, and "
        "exp(log_w - min) overflows (past e^88 in float32) for an image whose log weights spread over hundreds "
        "of nats; take out the largest, so that every term lies between 0 and 1":
            shifted(log_w, log_w.min(0).values),
        "returned +inf where the answer is finite: it takes out each image's mean log weight, and exp overflows "
        "(past e^88 in float32) where a log weight lies hundreds of nats above the mean; take out the largest, "
        "so that every term lies between 0 and 1":
            shifted(log_w, log_w.mean(0)),
    }


def same(got: torch.Tensor, wrong: torch.Tensor) -> bool:
    """Equal where finite (to float32 rounding of numbers near -800) and infinite in the same places."""
    return torch.isclose(got.double(), wrong.double(), rtol=1e-5, atol=1e-4).all().item()


def names_used(code) -> set[str]:
    """The global and attribute names a function's code uses, nested functions and lambdas included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= names_used(const)
    return names


def check_iwae(fn) -> CheckResult:
    """fn(log_w) -> log (1/K) sum_k exp(log_w[k]), computed stably. Shapes: (K, B) -> (B,)."""
    def run(fn):
        log_w = wide_log_weights()
        ref = log_mean_exp(log_w.double())
        try:
            got = answer(fn, log_w)
        except Fail as err:
            if "return_types.max" in str(err) or "return_types.min" in str(err):
                raise Fail(f"{err}. log_w.max(0) returns the maxima and their indices: take .values") from None
            raise
        if isinstance(got, torch.Tensor) and got.shape == (1, B):
            raise Fail(f"returned shape (1, {B}), expected ({B},): keepdim=True kept the reduced sample axis "
                       f"in what you return")
        if isinstance(got, torch.Tensor) and got.shape == ref.shape and not torch.isfinite(got).all():
            for label, wrong in nonfinite_mistakes(log_w).items():
                if same(got.detach().cpu(), wrong):
                    raise Fail(label)
        top = log_w.max(0).values
        compare(got, ref, {K: "sample (K)", B: "batch"}, {
            "the - log K is missing: that is the log of the sum of the weights, not of their mean":
                torch.logsumexp(log_w, 0),
            "averages the log weights: that is the ELBO estimate, below the bound by Jensen's inequality":
                log_w.mean(0),
            "takes the largest log weight only": top,
            "the maximum taken out of the sum is not added back: add it to the log of the mean":
                torch.log(torch.exp(log_w - top).mean(0)),
            f"subtracts log B, the number of images (log_w.shape[1]); the mean is over the K samples, "
            f"log_w.shape[0]": torch.logsumexp(log_w, 0) - math.log(B),
            "divides the log of the sum by K; the 1/K belongs inside the log, where it becomes - log K":
                torch.logsumexp(log_w, 0) / K,
            "subtracts K, not log K": torch.logsumexp(log_w, 0) - K,
        }, "exp(log_w) underflows or overflows for log weights hundreds of nats apart; take each image's "
           "largest log weight out of the sum before the exponentials", rtol=1e-5)
        code = getattr(fn, "__code__", None)  # a plain function's; a callable object's is not looked into
        if code is not None and "logsumexp" in names_used(code):  # right, but not by hand
            raise Fail("uses logsumexp: right, but the exercise is to write the trick inside it. Take each "
                       "image's largest log weight out of the sum by hand")
        return "log-mean-exp over the K samples, stable for log weights hundreds of nats apart"
    return report(fn, run, log_mean_exp)
