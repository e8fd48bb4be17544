"""Notebook 10's checker, check_paired_difference: correct forms pass, a test per known mistake, stubs fail clearly.

The wrong answers are written the way a student would write them, not taken from the checker.
"""

import math

import pytest
import torch

from vaelib.exercises import check_paired_difference
from vaelib.exercises.nb10 import paired_inputs


def paired(a, b):
    d = b - a
    return d.mean().item(), d.std().item() / math.sqrt(len(d))


def stub(a, b):
    raise NotImplementedError("Hint: the two models were scored on the same images.")


CORRECT = [
    paired,
    lambda a, b: ((b - a).mean(), (b - a).std() / len(a) ** 0.5),  # tensors, not floats
    lambda a, b: ((b.mean() - a.mean()).item(), (b - a).std(unbiased=False).item() / math.sqrt(len(a))),  # 1/N
    lambda a, b: [float((b - a).sum() / len(a)), float(torch.sqrt((b - a).var() / len(a)))],
]

MISTAKES = [
    (lambda a, b: paired(b, a), "returns the mean of a - b"),
    (lambda a, b: ((b - a).mean().item(), math.sqrt(a.var().item() / len(a) + b.var().item() / len(b))),
     "treats the two scores as independent"),
    (lambda a, b: ((b - a).mean().item(), math.sqrt((a.std() ** 2 + b.std() ** 2).item() / len(a))),
     "treats the two scores as independent"),
    (lambda a, b: ((b - a).mean().item(), (b - a).std().item()), "returns the standard deviation of the differences"),
    (lambda a, b: ((b - a).mean().item(), (b - a).std().item() / len(a)), "divides the standard deviation by N"),
    (lambda a, b: ((b - a).mean().item(), (b - a).var().item() / len(a)), "returns the variance of the mean"),
    (lambda a, b: ((b - a).mean().item(), 0.1234), "wrong standard error, and not a mistake this check knows"),
    (lambda a, b: ((b - a).mean().item() + 1, paired(a, b)[1]), "the mean difference should be"),
    (lambda a, b: (b - a, (b - a).std() / len(a) ** 0.5), "returned a tensor of shape (8,) as the mean difference"),
    (lambda a, b: (b - a).mean(), "return two numbers"),
    (lambda a, b: ((b - a).mean(), float("nan")), "returned nan as the standard error"),
    (lambda a, b: paired(a, b)[::-1], "the other way round"),
    (lambda a, b: (b.sub_(a).mean().item(), (b.std() / math.sqrt(len(b))).item()), "changed its input b in place"),
]


def test_an_unknown_standard_error_does_not_give_the_formula_away():
    result = check_paired_difference(lambda a, b: ((b - a).mean().item(), 0.1234))
    assert not result and "sqrt" not in result.message and "std" not in result.message, result.message


@pytest.mark.parametrize("answer", CORRECT)
def test_a_correct_answer_passes_and_is_the_one_the_notebook_uses(answer, capsys):
    result = check_paired_difference(answer)
    assert result and result.use() is answer, result.message
    assert capsys.readouterr().out.startswith("✓ ")


@pytest.mark.parametrize("answer, words", MISTAKES, ids=[w[:40] for _, w in MISTAKES])
def test_each_known_mistake_gets_the_message_that_names_it(answer, words, capsys):
    result = check_paired_difference(answer)
    assert not result and words in result.message, result.message
    assert capsys.readouterr().out.strip() == result.message


def test_the_inputs_make_pairing_matter():
    """The unpaired standard error is many times the paired one, as for two models on the same test images."""
    a, b = paired_inputs()
    unpaired = math.sqrt((a.var() + b.var()).item() / len(a))
    assert unpaired > 20 * paired(a, b)[1]


def test_a_stub_says_not_implemented_with_its_hint_and_falls_back_to_the_reference(capsys):
    result = check_paired_difference(stub)
    assert not result and result.message.startswith("✗ stub: not implemented yet. Hint: the two models")
    fallback = result.use()
    assert fallback is not stub and "reference implementation" in capsys.readouterr().out
    assert check_paired_difference(fallback)


def test_an_error_in_the_answer_is_reported_not_raised():
    result = check_paired_difference(lambda a, b: a @ torch.ones(3))
    assert not result and "raised RuntimeError" in result.message
