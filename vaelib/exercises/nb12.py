"""Checkers for Notebook 12, the network: the side of a convolution's output and of a transposed convolution's.

The reference is PyTorch itself: F.conv2d and F.conv_transpose2d (what nn.Conv2d and nn.ConvTranspose2d run), on
inputs of many combinations of side, kernel, stride and padding; each known mistake is recognised by the formula
a student would write for it, which gives every answer the student's function gives.
"""

from __future__ import annotations

import itertools
import numbers

import torch
import torch.nn.functional as F

from ..conv import conv_out, conv_transpose_out  # the references: what vaelib.conv builds its shapes with
from .core import CheckResult, Fail, call, report


def measured_conv(side, kernel, stride, padding) -> int:
    """The side F.conv2d gives (zero weights: no random draw, so the check leaves the global generator alone)."""
    return F.conv2d(torch.zeros(1, 1, side, side), torch.zeros(1, 1, kernel, kernel), None, stride, padding).shape[-1]


def measured_transposed(side, kernel, stride, padding, output_padding) -> int:
    """The side F.conv_transpose2d gives, as nn.ConvTranspose2d computes it."""
    return F.conv_transpose2d(torch.zeros(1, 1, side, side), torch.zeros(1, 1, kernel, kernel), None, stride,
                              padding, output_padding).shape[-1]


CONV_CASES = [case for case in itertools.product((28, 14, 7, 9), (3, 4, 5), (1, 2, 3), (0, 1, 2))
              if case[0] + 2 * case[3] >= case[1]]
TRANSPOSED_CASES = [case for case in itertools.product((7, 14, 5), (3, 4), (1, 2, 3), (0, 1), (0, 1))
                    if case[4] < case[2]]  # PyTorch wants output_padding below the stride


def _integer(value, case) -> int:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, float):
        if not value.is_integer():
            raise Fail(f"returned {value} for the arguments {case}: a side is a whole number of pixels; what does "
                       "a stride that does not divide evenly leave over?")
        value = int(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)  # NumPy's integers too
    if not isinstance(value, int) or isinstance(value, bool):
        raise Fail(f"returned a {type(value).__name__}; return the side as an int")
    return value


def _answers(fn, cases) -> list[int]:
    return [_integer(call(fn, *case), case) for case in cases]


CONV_MISTAKES = {
    "forgets the +1: the first position of the kernel is an output too":
        lambda n, k, s, p: (n + 2 * p - k) // s,
    "pads one side only: the padding goes on both sides of the image (2 x padding)":
        lambda n, k, s, p: (n + p - k) // s + 1,
    "forgets the padding": lambda n, k, s, p: (n - k) // s + 1,
    "rounds up: PyTorch drops a last position where the kernel would not fit (floor, //)":
        lambda n, k, s, p: -(-(n + 2 * p - k) // s) + 1,
    "divides the side by the stride alone: the kernel and the padding change the side too":
        lambda n, k, s, p: n // s,
}

TRANSPOSED_MISTAKES = {
    "forgets output_padding: it adds rows and columns on one side of the output":
        lambda n, k, s, p, op: (n - 1) * s - 2 * p + k,
    "multiplies the whole side by the stride: the stride spreads the n inputs over n - 1 gaps":
        lambda n, k, s, p, op: n * s - 2 * p + k + op,
    "removes the padding once: a transposed convolution trims it from both sides (2 x padding)":
        lambda n, k, s, p, op: (n - 1) * s - p + k + op,
    "adds the padding: a transposed convolution trims it, where a convolution adds it":
        lambda n, k, s, p, op: (n - 1) * s + 2 * p + k + op,
    "uses the convolution's formula: a transposed convolution runs it backwards, from its output to its input":
        lambda n, k, s, p, op: (n + 2 * p - k) // s + 1,
}


def _verdict(fn, cases, measured, mistakes: dict, names: str, layer: str) -> str:
    """What passes, or a Fail naming the mistake whose formula gives every answer fn gives."""
    got = _answers(fn, cases)
    right = [measured(*case) for case in cases]
    if got == right:
        return f"the side {layer} gives in all {len(cases)} cases tried"
    known = [message for message, wrong in mistakes.items() if got == [wrong(*case) for case in cases]]
    i = next(i for i, (g, r) in enumerate(zip(got, right)) if g != r)
    raise Fail(f"{known[0] if known else 'wrong, and not a mistake this check knows'}: for {names} = {cases[i]} "
               f"it returns {got[i]}, and {layer} gives {right[i]}")


def check_conv_side(fn) -> CheckResult:
    """fn(side, kernel, stride, padding) -> the side of nn.Conv2d's square output, for square inputs."""
    return report(fn, lambda fn: _verdict(fn, CONV_CASES, measured_conv, CONV_MISTAKES,
                                          "side, kernel, stride, padding", "nn.Conv2d"), conv_out)


def check_transposed_side(fn) -> CheckResult:
    """fn(side, kernel, stride, padding, output_padding) -> the side of nn.ConvTranspose2d's square output."""
    return report(fn, lambda fn: _verdict(fn, TRANSPOSED_CASES, measured_transposed, TRANSPOSED_MISTAKES,
                                          "side, kernel, stride, padding, output_padding", "nn.ConvTranspose2d"),
                  conv_transpose_out)
