"""Notebook 1's new exercise, the Bernoulli log-likelihood from logits: correct answers pass (several forms), each
usual mistake gets the message that names it, a stub says it is not implemented, and .use() falls back.

The wrong answers are written the way a student would write them, not taken from the checker.
"""

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli

from vaelib.exercises import check_bernoulli_log_likelihood
from vaelib.exercises.nb01 import bernoulli_log_likelihood


def log_likelihood(logits, x):
    return (x * logits - F.softplus(logits)).sum(-1)  # x l - log(1 + e^l), per pixel, summed


def naive(logits, x):
    p = torch.sigmoid(logits)
    return x * torch.log(p) + (1 - x) * torch.log(1 - p)  # per pixel


CORRECT = [
    log_likelihood,
    lambda l, x: Bernoulli(logits=l).log_prob(x).sum(-1),
    lambda l, x: -F.binary_cross_entropy_with_logits(l, x, reduction="none").sum(-1),
    lambda l, x: (x * F.logsigmoid(l) + (1 - x) * F.logsigmoid(-l)).sum(-1),
    lambda l, x: (-x * F.softplus(-l) - (1 - x) * F.softplus(l)).sum(-1),
    lambda l, x: torch.where(x == 1, F.logsigmoid(l), F.logsigmoid(-l)).sum(dim=1),
]


@pytest.mark.parametrize("answer", CORRECT)
def test_a_correct_answer_passes(answer, capsys):
    result = check_bernoulli_log_likelihood(answer)
    assert result, result.message
    assert capsys.readouterr().out.startswith("✓ ")


MISTAKES = [
    (lambda l, x: naive(l, x).sum(-1), "returned nan at |logit| > 100"),  # sigmoid, then log, without care
    (lambda l, x: (x * l - torch.log(1 + torch.exp(l))).sum(-1), "returned -inf at |logit| > 100"),
    (lambda l, x: (x * torch.log(torch.sigmoid(l) + 1e-8) + (1 - x) * torch.log(1 - torch.sigmoid(l) + 1e-8)).sum(-1),
     "a small constant inside a log"),
    (lambda l, x: (x * torch.log(torch.sigmoid(l).clamp(1e-6, 1 - 1e-6))
                   + (1 - x) * torch.log((1 - torch.sigmoid(l)).clamp(1e-6, 1))).sum(-1), "a clamp"),
    (lambda l, x: -F.binary_cross_entropy(torch.sigmoid(l), x, reduction="none").sum(-1), "stops at -100"),
    (lambda l, x: log_likelihood(l.clamp(-100, 100), x), "stops at -100"),
    (lambda l, x: log_likelihood(l, x).mean() * torch.ones(len(l)), "wrong values"),  # not a known mistake
    (lambda l, x: (x * l - F.softplus(l)).mean(-1), "averages over the pixels"),
    (lambda l, x: F.binary_cross_entropy_with_logits(l, x, reduction="none").sum(-1), "wrong sign"),
    (lambda l, x: (x * F.logsigmoid(l)).sum(-1), "only the x_d = 1 term"),
    (lambda l, x: ((1 - x) * F.logsigmoid(-l)).sum(-1), "only the x_d = 0 term"),
    (lambda l, x: (x * F.logsigmoid(l) + F.logsigmoid(-l)).sum(-1), "needs its weight (1 - x_d)"),
    (lambda l, x: log_likelihood(torch.sigmoid(l), x), "applies sigmoid to probabilities"),
    (lambda l, x: -F.binary_cross_entropy_with_logits(x, l, reduction="none").sum(-1), "swaps the arguments"),
    (lambda l, x: (x * l - F.softplus(l)).sum(0), "it reduced over the batch axis"),
    (lambda l, x: (x * l - F.softplus(l)).sum(), "expected (5,): it reduced over the batch and pixel axes"),
    (lambda l, x: x * l - F.softplus(l), "it did not reduce over the pixel axis"),
    (lambda l, x: (x * torch.log(l) + (1 - x) * torch.log(1 - l)).sum(-1), "do not take their log"),
    (lambda l, x: log_likelihood(l, x).detach(), "carry no gradient"),
    (lambda l, x: log_likelihood(l, x).tolist(), "returned a value of type list"),
    (lambda l, x: (x * l - F.softplus(l)).sum(-1) + torch.where(l.abs() > 100, l - l.detach(), 0 * l).sum(-1),
     "the gradient with respect to the logits"),
]


@pytest.mark.parametrize("answer, words", MISTAKES, ids=[w[:40] for _, w in MISTAKES])
def test_a_common_mistake_gets_the_message_that_names_it(answer, words, capsys):
    result = check_bernoulli_log_likelihood(answer)
    assert not result
    assert words in result.message, result.message
    assert capsys.readouterr().out.strip() == result.message


def test_a_stub_says_not_implemented_with_its_hint(capsys):
    def my_log_likelihood(logits, x):
        raise NotImplementedError("Hint: use the softplus identities.")

    result = check_bernoulli_log_likelihood(my_log_likelihood)
    assert not result
    printed = capsys.readouterr().out.strip()
    assert printed == "✗ my_log_likelihood: not implemented yet. Hint: use the softplus identities."


def test_use_gives_the_students_function_once_it_passes_else_the_reference_saying_so(capsys):
    assert check_bernoulli_log_likelihood(log_likelihood).use() is log_likelihood
    assert "reference" not in capsys.readouterr().out
    fallback = check_bernoulli_log_likelihood(lambda l, x: naive(l, x).sum(-1)).use()
    assert fallback is bernoulli_log_likelihood
    assert capsys.readouterr().out.splitlines()[-1] == (
        "→ until it passes, the rest of this notebook uses the reference implementation "
        "(vaelib.exercises.nb01.bernoulli_log_likelihood)")


def test_the_reference_is_exact_where_sigmoid_saturates():
    """Against float64 logs of the float64 sigmoid, where that is exact enough; finite at |logit| = 1000."""
    g = torch.Generator().manual_seed(0)
    logits = torch.empty(4, 50, dtype=torch.float64).uniform_(-15, 15, generator=g)
    x = torch.bernoulli(torch.full_like(logits, 0.5), generator=g)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), naive(logits, x).sum(-1))
    far = torch.tensor([[1000.0, -1000.0]])
    torch.testing.assert_close(bernoulli_log_likelihood(far, torch.tensor([[0.0, 1.0]])), torch.tensor([-2000.0]))
