"""Notebook 3's new exercise, the diagonal reparametrised draw: correct answers pass (several forms), each usual
mistake gets the message that names it, a stub says it is not implemented, .use() falls back.

The wrong answers are written the way a student would write them, not taken from the checker.
"""

import pytest
import torch

from vaelib.exercises import check_reparameterize
from vaelib.exercises.nb03 import reparameterize


def draw(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


CORRECT = [
    draw,
    lambda mu, lv, eps: mu + lv.exp().sqrt() * eps,
    lambda mu, lv, eps: eps.mul(lv.div(2).exp()).add(mu),
    lambda mu, lv, eps: torch.addcmul(mu, torch.exp(lv / 2), eps),
]


@pytest.mark.parametrize("answer", CORRECT)
def test_a_correct_answer_passes(answer, capsys):
    result = check_reparameterize(answer)
    assert result, result.message
    assert capsys.readouterr().out.startswith("✓ ")


MISTAKES = [
    (lambda mu, lv, eps: mu + torch.exp(lv) * eps, "multiplies eps by the variance"),
    (lambda mu, lv, eps: mu + lv * eps, "uses logvar as the standard deviation"),
    (lambda mu, lv, eps: mu + torch.sqrt(lv) * eps, "returned nan"),
    (lambda mu, lv, eps: mu + torch.exp(-0.5 * lv) * eps, "multiplies by 1 / sigma"),
    (lambda mu, lv, eps: torch.exp(0.5 * lv) * eps, "mu is missing"),
    (lambda mu, lv, eps: mu + eps, "sigma is missing"),
    (lambda mu, lv, eps: mu + torch.exp(0.5 * lv) + eps, "adds sigma instead of multiplying"),
    (lambda mu, lv, eps: torch.exp(0.5 * lv) * (mu + eps), "scales mu by sigma too"),
    (lambda mu, lv, eps: mu + torch.exp(0.5 * lv) * torch.randn_like(mu), "draws its own noise"),
    (lambda mu, lv, eps: torch.distributions.Normal(mu, torch.exp(0.5 * lv)).rsample(), "draws its own noise"),
    (lambda mu, lv, eps: draw(mu, lv, eps).detach(), "z carries no gradient"),
    (lambda mu, lv, eps: draw(mu.detach(), lv, eps), "does not reach mu"),
    (lambda mu, lv, eps: mu + torch.exp(0.5 * lv.detach()) * eps, "does not reach logvar"),
    (lambda mu, lv, eps: draw(mu, lv, eps).sum(-1), "returned shape (5,), expected (5, 3)"),
    (lambda mu, lv, eps: (mu, torch.exp(0.5 * lv)), "returned a value of type tuple"),
    (lambda mu, lv, eps: draw(mu, lv, eps) + 0.1, "wrong values, and not a mistake this check knows"),
    (lambda mu, logvar, eps: eps.mul_(torch.exp(0.5 * logvar)).add_(mu), "changed its input eps in place"),
    (lambda mu, logvar, eps: mu.add_(torch.exp(0.5 * logvar) * eps), "changed its input mu in place"),
]


@pytest.mark.parametrize("answer, words", MISTAKES, ids=[w[:40] for _, w in MISTAKES])
def test_a_common_mistake_gets_the_message_that_names_it(answer, words, capsys):
    result = check_reparameterize(answer)
    assert not result
    assert words in result.message, result.message
    assert capsys.readouterr().out.strip() == result.message


def test_a_stub_says_not_implemented_with_its_hint(capsys):
    def my_draw(mu, logvar, eps):
        raise NotImplementedError("Hint: sigma = exp(logvar / 2).")

    assert not check_reparameterize(my_draw)
    assert capsys.readouterr().out.strip() == "✗ my_draw: not implemented yet. Hint: sigma = exp(logvar / 2)."


def test_use_gives_the_students_function_once_it_passes_else_the_reference_saying_so(capsys):
    assert check_reparameterize(draw).use() is draw
    assert check_reparameterize(lambda mu, lv, eps: mu + lv * eps).use() is reparameterize
    assert capsys.readouterr().out.splitlines()[-1].endswith("(vaelib.exercises.nb03.reparameterize)")


def test_the_reference_draws_from_the_right_gaussian():
    """Mean mu and variance exp(logvar), by Monte Carlo, as torch.distributions.Normal has them."""
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.tensor([1.0, -2.0]), torch.tensor([-1.0, 1.5])
    z = reparameterize(mu, logvar, torch.randn(200_000, 2, generator=g, dtype=torch.float64))
    torch.testing.assert_close(z.mean(0), mu.double(), atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), torch.distributions.Normal(mu, (0.5 * logvar).exp()).variance.double(),
                               rtol=0.02, atol=0)
