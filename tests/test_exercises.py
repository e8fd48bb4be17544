"""vaelib.exercises: correct answers pass, each common mistake gets the message that names it, stubs fail clearly.

The wrong answers below are written the way a student would write them, not taken from the checker.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from vaelib.exercises import (check_elbo, check_interpolate, check_iwae, check_kl, check_log_likelihood,
                              check_reparameterize)


def kl(mu, logvar):
    return 0.5 * (logvar.exp() + mu.pow(2) - 1 - logvar).sum(-1)


def log_likelihood(logits, x):
    return (x * logits - F.softplus(logits)).sum(-1)


def reparameterize(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


def elbo(logits, x, mu, logvar):
    return log_likelihood(logits, x) - kl(mu, logvar)


def iwae(log_w):
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def interpolate(z_a, z_b, n):
    return torch.stack([z_a + i / (n - 1) * (z_b - z_a) for i in range(n)])


def stub(*args):
    raise NotImplementedError("Hint: look at the derivation above.")


CORRECT = [(check_kl, kl), (check_log_likelihood, log_likelihood), (check_reparameterize, reparameterize),
           (check_elbo, elbo), (check_iwae, iwae), (check_interpolate, interpolate),
           # other correct ways to write the same thing
           (check_kl, lambda mu, logvar: torch.distributions.kl_divergence(
               torch.distributions.Normal(mu, (0.5 * logvar).exp()), torch.distributions.Normal(0.0, 1.0)).sum(-1)),
           (check_log_likelihood,
            lambda logits, x: -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)),
           (check_log_likelihood, lambda logits, x: torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(-1)),
           (check_reparameterize, lambda mu, logvar, eps: mu + logvar.exp().sqrt() * eps),
           (check_interpolate, lambda z_a, z_b, n: torch.lerp(z_a, z_b, torch.linspace(0, 1, n)[:, None]))]


@pytest.mark.parametrize("check, answer", CORRECT)
def test_a_correct_answer_passes(check, answer, capsys):
    result = check(answer)
    assert result and result.passed
    assert capsys.readouterr().out.startswith("✓ ")


@pytest.mark.parametrize("check", [check_kl, check_log_likelihood, check_reparameterize, check_elbo, check_iwae,
                                   check_interpolate])
def test_a_stub_fails_and_says_it_is_not_implemented_with_its_hint(check, capsys):
    result = check(stub)
    printed = capsys.readouterr().out
    assert not result
    assert printed.strip() == result.message == "✗ stub: not implemented yet. Hint: look at the derivation above."


MISTAKES = {
    check_kl: [
        (lambda mu, lv: -0.5 * (lv.exp() + mu**2 - 1 - lv).sum(-1), "wrong sign"),
        (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv).sum(0),
         "shape (3,), expected (5,): it reduced over the batch axis"),
        (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv).sum(),
         "shape (), expected (5,): it reduced over the batch and latent axes"),
        (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv), "it did not reduce over the latent axis"),
        (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv).mean(-1), "averages over the latent dims"),
        (lambda mu, lv: (lv.exp() + mu**2 - 1 - lv).sum(-1), "the factor 0.5 is missing"),
        (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - lv).sum(-1), "the -1 term is missing"),
        (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1).sum(-1), "the -logvar term is missing"),
        (lambda mu, lv: 0.5 * (lv.exp() - 1 - lv).sum(-1), "the mu^2 term is missing"),
        (lambda mu, lv: 0.5 * (lv**2 + mu**2 - 1 - torch.log(lv**2)).sum(-1), "uses logvar as if it were std"),
        (lambda mu, lv: 0.5 * (lv.exp() ** 2 + mu**2 - 1 - 2 * lv).sum(-1), "uses exp(logvar) as std"),
        (lambda mu, lv: 0.5 * (lv + mu**2 - 1 - torch.log(lv)).sum(-1),
         "returned nan where the answer is finite: logvar is negative"),
    ],
    check_log_likelihood: [
        (lambda l, x: F.binary_cross_entropy_with_logits(l, x, reduction="none").sum(-1), "wrong sign"),
        (lambda l, x: (x * l - F.softplus(l)).mean(-1), "averages over the pixels"),
        (lambda l, x: (x * l - F.softplus(l)).sum(0), "shape (6,), expected (5,): it reduced over the batch axis"),
        (lambda l, x: -F.binary_cross_entropy_with_logits(l, x), "shape (), expected (5,)"),
        (lambda l, x: (x * l).sum(-1), "the -softplus(logits) term"),
        (lambda l, x: -(x * F.softplus(-l)).sum(-1), "the (1 - x) log(1 - sigmoid(logits)) term is missing"),
        (lambda l, x: -F.binary_cross_entropy_with_logits(torch.sigmoid(l), x, reduction="none").sum(-1),
         "treats logits as probabilities"),
        (lambda l, x: (x * torch.log(l) + (1 - x) * torch.log(1 - l)).sum(-1),
         "logits are log-odds, any real number, not probabilities"),
        (lambda l, x: (x * torch.log(torch.sigmoid(l)) + (1 - x) * torch.log(1 - torch.sigmoid(l))).sum(-1),
         "overflow at |l| = 150"),
        (lambda l, x: -F.binary_cross_entropy(torch.sigmoid(l), x, reduction="none").sum(-1), "clamps at log 0 = -100"),
    ],
    check_reparameterize: [
        (lambda mu, lv, eps: mu + lv.exp() * eps, "uses exp(logvar) as std"),
        (lambda mu, lv, eps: mu + lv * eps, "uses logvar as std"),
        (lambda mu, lv, eps: mu + lv.sqrt() * eps, "returned nan where the answer is finite: logvar is negative"),
        (lambda mu, lv, eps: mu - (0.5 * lv).exp() * eps, "subtracts the noise"),
        (lambda mu, lv, eps: (0.5 * lv).exp() * eps, "mu is missing"),
        (lambda mu, lv, eps: mu + (0.5 * lv).exp() * torch.randn_like(mu), "draws its own noise"),
        (lambda mu, lv, eps: mu.detach() + (0.5 * lv).exp() * eps, "the gradient does not reach mu"),
        (lambda mu, lv, eps: mu + (0.5 * lv.detach()).exp() * eps, "the gradient does not reach logvar"),
        (lambda mu, lv, eps: (mu + (0.5 * lv).exp() * eps).detach(), "z carries no gradient"),
        (lambda mu, lv, eps: (mu + (0.5 * lv).exp() * eps).sum(-1), "shape (5,), expected (5, 3)"),
        (lambda mu, lv, eps: (mu + (0.5 * lv).exp() * eps).tolist(), "returned a value of type list"),
    ],
    check_elbo: [
        (lambda l, x, mu, lv: kl(mu, lv) - log_likelihood(l, x), "returns the loss -ELBO"),
        (lambda l, x, mu, lv: log_likelihood(l, x) + kl(mu, lv), "adds the KL"),
        (lambda l, x, mu, lv: log_likelihood(l, x), "the KL term is missing"),
        (lambda l, x, mu, lv: elbo(l, x, mu, lv).mean(), "shape (), expected (5,)"),
    ],
    check_iwae: [
        (lambda lw: torch.logsumexp(lw, 0), "the - log K is missing"),
        (lambda lw: lw.mean(0), "averages the log weights"),
        (lambda lw: torch.log(lw.exp().mean(0)), "returned -inf where the answer is finite: exp(log_w) underflows"),
        (lambda lw: torch.logsumexp(lw, 1) - math.log(lw.shape[1]),
         "shape (7,), expected (5,): it reduced over the batch axis"),
    ],
    check_interpolate: [
        (lambda a, b, n: interpolate(b, a, n), "runs from z_b to z_a"),
        (lambda a, b, n: torch.stack([a + i / n * (b - a) for i in range(n)]), "leaves out z_b"),
        (lambda a, b, n: torch.stack([a + i / (n + 1) * (b - a) for i in range(1, n + 1)]),
         "leaves out both end points"),
        (lambda a, b, n: torch.stack([a + i / (n - 1) * b for i in range(n)]), "returns z_a + t * z_b"),
        (lambda a, b, n: interpolate(a, b, n).T, "one column per point"),
        (lambda a, b, n: interpolate(a, b, n).mean(0), "returned shape (3,), expected (7, 3)"),
    ],
}
CASES = [(check, answer, words) for check, cases in MISTAKES.items() for answer, words in cases]


@pytest.mark.parametrize("check, answer, words", CASES, ids=[f"{c.__name__}-{w[:30]}" for c, _, w in CASES])
def test_a_common_mistake_gets_the_message_that_names_it(check, answer, words, capsys):
    result = check(answer)
    assert not result
    assert words in result.message, result.message
    assert capsys.readouterr().out.strip() == result.message


def test_an_unrecognised_wrong_answer_shows_the_first_difference():
    result = check_kl(lambda mu, logvar: kl(mu, logvar) + 0.123)
    assert not result and "not a mistake this check knows" in result.message and "expected" in result.message


def test_an_error_inside_the_answer_is_reported_not_raised():
    result = check_kl(lambda mu, logvar: mu @ logvar)
    assert not result and "raised RuntimeError" in result.message


def test_a_result_shows_nothing_more_in_a_notebook_than_the_printed_line():
    result = check_kl(kl)
    assert result._ipython_display_() is None and "✓" in result.message
