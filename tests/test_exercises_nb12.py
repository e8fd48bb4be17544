"""Notebook 12's checkers, check_conv_side and check_transposed_side: correct forms pass, a test per known mistake,
stubs fail clearly. The wrong answers are written the way a student would write them, not taken from the checker.
"""

import math

import numpy as np
import pytest
import torch

from vaelib.exercises import check_conv_side, check_transposed_side


def conv(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def transposed(n, k, s, p, op):
    return (n - 1) * s - 2 * p + k + op


def stub(*args):
    raise NotImplementedError("Hint: count where the kernel can sit.")


CONV_CORRECT = [
    conv,
    lambda n, k, s, p: math.floor((n + 2 * p - k) / s) + 1,
    lambda n, k, s, p: int((n + 2 * p - k) / s) + 1,  # int() floors the non-negative numbers asked about
    lambda n, k, s, p: torch.tensor((n + 2 * p - k) // s + 1),
    lambda n, k, s, p: len(range(0, n + 2 * p - k + 1, s)),  # the kernel's positions, counted
    lambda n, k, s, p: np.int64((n + 2 * p - k) // s + 1),  # NumPy's integers
]
CONV_MISTAKES = [
    (lambda n, k, s, p: (n + 2 * p - k) // s, "forgets the +1"),
    (lambda n, k, s, p: (n + p - k) // s + 1, "pads one side only"),
    (lambda n, k, s, p: (n - k) // s + 1, "forgets the padding"),
    (lambda n, k, s, p: math.ceil((n + 2 * p - k) / s) + 1, "rounds up"),
    (lambda n, k, s, p: n // s, "divides the side by the stride alone"),
    (lambda n, k, s, p: (n + 2 * p - k) / s + 1, "a side is a whole number of pixels"),
    (lambda n, k, s, p: str(conv(n, k, s, p)), "return the side as an int"),
    (lambda n, k, s, p: conv(n, k, s, p) + (k == 5), "not a mistake this check knows"),
]
TRANSPOSED_CORRECT = [
    transposed,
    lambda n, k, s, p, op: s * (n - 1) + k - 2 * p + op,
    lambda n, k, s, p, op: float((n - 1) * s - 2 * p + k + op),
]
TRANSPOSED_MISTAKES = [
    (lambda n, k, s, p, op: (n - 1) * s - 2 * p + k, "forgets output_padding"),
    (lambda n, k, s, p, op: n * s - 2 * p + k + op, "multiplies the whole side by the stride"),
    (lambda n, k, s, p, op: (n - 1) * s - p + k + op, "removes the padding once"),
    (lambda n, k, s, p, op: (n - 1) * s + 2 * p + k + op, "adds the padding"),
    (lambda n, k, s, p, op: (n + 2 * p - k) // s + 1, "uses the convolution's formula"),
    (lambda n, k, s, p, op: n * s, "not a mistake this check knows"),
]


@pytest.mark.parametrize("fn", CONV_CORRECT)
def test_conv_side_correct_forms_pass(fn, capsys):
    assert check_conv_side(fn)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("fn,message", CONV_MISTAKES)
def test_conv_side_names_each_mistake(fn, message, capsys):
    result = check_conv_side(fn)
    assert not result and message in result.message
    assert result.use()(28, 3, 2, 1) == 14  # the reference runs on


@pytest.mark.parametrize("fn", TRANSPOSED_CORRECT)
def test_transposed_side_correct_forms_pass(fn):
    assert check_transposed_side(fn)


@pytest.mark.parametrize("fn,message", TRANSPOSED_MISTAKES)
def test_transposed_side_names_each_mistake(fn, message):
    result = check_transposed_side(fn)
    assert not result and message in result.message
    assert result.use()(7, 3, 2, 1, 1) == 14


@pytest.mark.parametrize("check", [check_conv_side, check_transposed_side])
def test_a_stub_says_not_implemented_with_its_hint(check):
    result = check(stub)
    assert not result and "not implemented yet" in result.message and "Hint" in result.message


def test_no_message_gives_the_formula_away():
    for check, mistakes in ((check_conv_side, CONV_MISTAKES), (check_transposed_side, TRANSPOSED_MISTAKES)):
        for fn, _ in mistakes:
            message = check(fn).message
            assert "2 * padding" not in message and "// stride" not in message and "(side - 1)" not in message


def test_the_checks_leave_the_global_random_generator_alone():
    """Later cells draw from it: whether the exercise was done must not change what they draw."""
    draws = []
    for fn in (conv, stub):
        torch.manual_seed(0)
        check_conv_side(fn), check_transposed_side(transposed if fn is conv else stub)
        draws.append(torch.rand(3))
    assert torch.equal(*draws)
