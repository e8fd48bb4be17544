"""Notebook 2's new exercise, the KL of the encoder's diagonal Gaussian to N(0, I): correct answers pass (several
forms), each usual mistake gets the message that names it, a stub says it is not implemented, .use() falls back.

The wrong answers are written the way a student would write them, not taken from the checker.
"""

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from vaelib.exercises import check_kl_standard_normal
from vaelib.exercises.nb02 import kl_standard_normal


def kl(mu, logvar):
    return 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(-1)


CORRECT = [
    kl,
    lambda mu, lv: -0.5 * torch.sum(1 + lv - mu.pow(2) - lv.exp(), dim=1),  # Kingma & Welling's App. B
    lambda mu, lv: kl_divergence(Normal(mu, (0.5 * lv).exp()), Normal(0.0, 1.0)).sum(-1),
    lambda mu, lv: (0.5 * (torch.exp(lv) + mu * mu) - 0.5 - 0.5 * lv).sum(-1),
    lambda mu, lv: kl_divergence(MultivariateNormal(mu, torch.diag_embed(lv.exp())),
                                 MultivariateNormal(torch.zeros_like(mu), torch.eye(mu.shape[-1]))),
]


@pytest.mark.parametrize("answer", CORRECT)
def test_a_correct_answer_passes(answer, capsys):
    result = check_kl_standard_normal(answer)
    assert result, result.message
    assert capsys.readouterr().out.startswith("✓ ")


MISTAKES = [
    (lambda mu, lv: 0.5 * (mu**2).sum(-1), "only the 0.5 mu^2 term"),
    (lambda mu, lv: 0.5 * (lv.exp() - 1 - lv).sum(-1), "only the variance terms"),
    (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - lv).sum(-1), "the - 1 is missing"),
    (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1).sum(-1), "the - log sigma^2 term (- logvar) is missing"),
    (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 + lv).sum(-1), "+ logvar where - logvar belongs"),
    (lambda mu, lv: 0.5 * (lv.exp() + mu - 1 - lv).sum(-1), "mu where mu^2 belongs"),
    (lambda mu, lv: 0.5 * (lv + mu**2 - 1 - torch.log(lv)).sum(-1), "returned nan"),  # logvar taken for the variance
    (lambda mu, lv: 0.5 * (lv + mu**2 - 1 - lv).sum(-1), "uses logvar as the variance"),
    (lambda mu, lv: 0.5 * (lv**2 + mu**2 - 1 - torch.log(lv**2)).sum(-1), "uses logvar as the standard deviation"),
    (lambda mu, lv: 0.5 * ((2 * lv).exp() + mu**2 - 1 - 2 * lv).sum(-1), "uses logvar as log sigma"),
    (lambda mu, lv: 0.5 * ((lv / 2).exp() + mu**2 - 1 - lv).sum(-1), "uses the standard deviation exp(logvar / 2)"),
    (lambda mu, lv: (lv.exp() + mu**2 - 1 - lv).sum(-1), "the factor 0.5 is missing"),
    (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv).mean(-1), "averages over the latent dims"),
    (lambda mu, lv: 0.5 * (1 + lv - mu**2 - lv.exp()).sum(-1), "wrong sign"),
    (lambda mu, lv: kl_divergence(Normal(0.0, 1.0), Normal(mu, (0.5 * lv).exp())).sum(-1), "that is KL(p || q)"),
    (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv).sum(0), "it reduced over the batch axis"),
    (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv).sum(), "it reduced over the batch and latent axes"),
    (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv), "it did not reduce over the latent axis"),
    (lambda mu, lv: kl(mu, lv).detach(), "carry no gradient"),
    (lambda mu, lv: kl(mu.detach(), lv), "does not reach mu"),
    (lambda mu, lv: kl(mu, lv.detach()), "does not reach logvar"),
    (lambda mu, lv: kl(mu, lv) + 0.01, "wrong values, and not a mistake this check knows"),
    (lambda mu, logvar: 0.5 * (logvar.exp() + mu.pow_(2) - 1 - logvar).sum(-1), "changed its input mu in place"),
]


@pytest.mark.parametrize("answer, words", MISTAKES, ids=[w[:40] for _, w in MISTAKES])
def test_a_common_mistake_gets_the_message_that_names_it(answer, words, capsys):
    result = check_kl_standard_normal(answer)
    assert not result
    assert words in result.message, result.message
    assert capsys.readouterr().out.strip() == result.message


def test_each_known_mistake_has_a_message_of_its_own():
    from vaelib.exercises.nb02 import _kl_standard_normal_mistakes

    messages = [r.message for r in map(check_kl_standard_normal, [a for a, _ in MISTAKES])]
    assert len(set(messages)) == len(messages)
    assert len(set(_kl_standard_normal_mistakes(torch.zeros(1, 3), torch.zeros(1, 3)))) == 14


def test_a_stub_says_not_implemented_with_its_hint(capsys):
    def my_kl(mu, logvar):
        raise NotImplementedError("Hint: sigma^2 = exp(logvar).")

    assert not check_kl_standard_normal(my_kl)
    assert capsys.readouterr().out.strip() == "✗ my_kl: not implemented yet. Hint: sigma^2 = exp(logvar)."


def test_use_gives_the_students_function_once_it_passes_else_the_reference_saying_so(capsys):
    assert check_kl_standard_normal(kl).use() is kl
    assert check_kl_standard_normal(lambda mu, lv: 0.5 * (mu**2).sum(-1)).use() is kl_standard_normal
    assert capsys.readouterr().out.splitlines()[-1].endswith("(vaelib.exercises.nb02.kl_standard_normal)")


def test_the_reference_is_the_closed_form_and_works_in_float64():
    mu, logvar = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(kl_standard_normal(mu, logvar), kl(mu, logvar))
