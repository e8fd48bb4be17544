"""Checkers for Notebook 10, the appendix on static against dynamic binarisation."""

from __future__ import annotations

import math

import torch

from .core import CheckResult, Fail, answer, report

N_IMAGES = 8  # images in the check's inputs


def paired_difference(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """The reference: the mean over the images of b - a, and its standard error std(b - a) / sqrt(N), for two
    models scored on the same N images. Shapes: (N,), (N,) -> float, float."""
    d = b - a
    return d.mean().item(), (d.std() / math.sqrt(len(d))).item()


def paired_inputs(seed: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Two models' scores on the same images: the images differ by tens of nats, the models by a fraction
    of a nat on each. So the unpaired standard error is many times the paired one. (N,), (N,)."""
    g = torch.Generator().manual_seed(seed)
    difficulty = -100 + 20 * torch.randn(N_IMAGES, generator=g)  # log p(x) of each image, shared by both
    a = difficulty + 0.3 * torch.randn(N_IMAGES, generator=g)
    b = difficulty + 0.5 + 0.3 * torch.randn(N_IMAGES, generator=g)
    return a, b


def _number(value, what: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise Fail(f"returned a tensor of shape {tuple(value.shape)} as the {what}; reduce over the images to "
                       "one number")
        value = value.item()
    if not isinstance(value, (int, float)):
        raise Fail(f"returned a {type(value).__name__} as the {what}; return a number")
    if not math.isfinite(value):
        raise Fail(f"returned {value} as the {what}, where the answer is finite")
    return float(value)


def check_paired_difference(fn) -> CheckResult:
    """fn(a, b) -> (mean of b - a over the images, its standard error), for two models scored on the same
    images. The sample or the population standard deviation may be used. Shapes: (N,), (N,) -> float, float."""
    def run(fn):
        a, b = paired_inputs()
        got = answer(fn, a, b)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Fail("return two numbers: (mean difference, its standard error)")
        mean, se = _number(got[0], "mean difference"), _number(got[1], "standard error")
        d, n = b - a, len(a)
        right_mean = d.mean().item()
        se_right = (d.std() / math.sqrt(n)).item()
        if math.isclose(mean, se_right, rel_tol=1e-4) and math.isclose(_number(got[1], "standard error"),
                                                                      right_mean, rel_tol=1e-4):
            raise Fail("returns the two the other way round: (mean difference, standard error), in that order")
        if math.isclose(mean, -right_mean, rel_tol=1e-4):
            raise Fail("returns the mean of a - b; the difference asked for is b - a, the second model minus the first")
        if not math.isclose(mean, right_mean, rel_tol=1e-4, abs_tol=1e-6):
            raise Fail(f"the mean difference should be {right_mean:.4f}, got {mean:.4f}")
        ses = {unbiased: (d.std(correction=int(unbiased)) / math.sqrt(n)).item() for unbiased in (True, False)}
        if any(math.isclose(se, right, rel_tol=1e-4) for right in ses.values()):
            return "the mean of b - a over the images, and its paired standard error"
        mistakes = {
            "treats the two scores as independent (sqrt(var(a)/N + var(b)/N)); they are on the same images, so "
            "take the standard error of the per-image differences b - a: it leaves out how hard each image is":
                [math.sqrt((a.var(correction=c) + b.var(correction=c)).item() / n) for c in (0, 1)],
            "returns the standard deviation of the differences; the standard error of their mean divides it by "
            "sqrt(N)": [d.std(correction=c).item() for c in (0, 1)],
            "divides the standard deviation by N; the standard error divides it by sqrt(N)":
                [d.std(correction=c).item() / n for c in (0, 1)],
            "returns the variance of the mean (the standard error squared); take its square root":
                [d.var(correction=c).item() / n for c in (0, 1)],
        }
        for message, values in mistakes.items():
            if any(math.isclose(se, v, rel_tol=1e-4) for v in values):
                raise Fail(message)
        raise Fail(f"wrong standard error, and not a mistake this check knows: expected {ses[True]:.4f}, "
                   f"got {se:.4f}")
    return report(fn, run, paired_difference)
