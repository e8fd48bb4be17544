"""Notebook 7's checker, check_collapsed_dims: a test per known mistake, each with its own message.

The wrong answers are written the way a student would write them, not taken from the checker; the last
tests try every partial or sign-flipped KL and check that none passes.
"""

import itertools

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vaelib.exercises import check_collapsed_dims
from vaelib.exercises.nb07 import MISTAKES, THRESHOLDS, wide_inputs


def kl_per_dim(mu, logvar):
    return 0.5 * (logvar.exp() + mu**2 - 1 - logvar)


def collapsed_dims(mu, logvar, threshold):
    return kl_per_dim(mu, logvar).mean(0) < threshold


def stub(mu, logvar, threshold):
    raise NotImplementedError("Hint: the closed-form KL of notebook 2 is a sum over the latent dimensions.")


CORRECT = [
    collapsed_dims,
    lambda mu, lv, t: kl_divergence(Normal(mu, (0.5 * lv).exp()), Normal(0.0, 1.0)).mean(0) < t,
    lambda mu, lv, t: (0.5 * (lv.exp() + mu * mu - 1 - lv)).sum(0) / mu.shape[0] < t,  # the mean, written out
    lambda mu, lv, t: torch.tensor([kl_per_dim(mu[:, j], lv[:, j]).mean() < t for j in range(mu.shape[1])]),
]

MISTAKES_AS_WRITTEN = [
    (lambda mu, lv, t: (lv.exp() + mu**2 - 1 - lv).mean(0) < t, "the factor 0.5 of the KL is missing"),
    (lambda mu, lv, t: kl_per_dim(mu, lv).sum(0) < t, "sums the KL over the batch"),
    (lambda mu, lv, t: mu.var(0) < t, "uses the variance of mu over the batch"),
    (lambda mu, lv, t: mu.var(0, unbiased=False) < t, "uses the variance of mu over the batch"),
    (lambda mu, lv, t: kl_per_dim(mu, lv).mean(0) > t, "returns the dimensions above the threshold"),
    (lambda mu, lv, t: (0.5 * mu**2).mean(0) < t, "keeps only the mean's term 0.5 * mu^2"),
    (lambda mu, lv, t: (0.5 * (lv.exp() - 1 - lv)).mean(0) < t, "the mu^2 term is missing"),
    (lambda mu, lv, t: (0.5 * (lv.exp() + mu**2 - 1 + lv)).mean(0) < t, "adds logvar where the KL subtracts it"),
    (lambda mu, lv, t: (0.5 * (lv.exp() + mu**2 - lv)).mean(0) < t, "the - 1 is missing"),
    (lambda mu, lv, t: (0.5 * (lv.exp() + mu**2 - 1)).mean(0) < t, "the - logvar term is missing"),
    (lambda mu, lv, t: (0.5 * (torch.exp(lv / 2) + mu**2 - 1 - lv)).mean(0) < t,
     "uses the standard deviation exp(logvar / 2)"),
    (lambda mu, lv, t: (0.5 * (lv + mu**2 - 1 - torch.log(lv))).mean(0) < t, "treats logvar as the variance"),
    (lambda mu, lv, t: (0.5 * (lv + (1 + mu**2) / lv.exp() - 1)).mean(0) < t, "computes KL(p || q)"),
    (lambda mu, lv, t: kl_per_dim(mu.mean(0), lv.mean(0)) < t, "averages mu and logvar over the batch before"),
    (lambda mu, lv, t: (kl_per_dim(mu, lv) < t).all(0), "below it for every image"),
    (lambda mu, lv, t: (kl_per_dim(mu, lv) < t).any(0), "below it for any one image"),
    (lambda mu, lv, t: kl_per_dim(mu, lv).mean(1) < t, "it reduced over the latent axis"),
    (lambda mu, lv, t: kl_per_dim(mu, lv).sum(1) < t, "it reduced over the latent axis"),
    (lambda mu, lv, t: kl_per_dim(mu, lv) < t, "it did not reduce over the batch axis"),
    (lambda mu, lv, t: torch.where(kl_per_dim(mu, lv).mean(0) < t)[0], "returned the indices"),
    (lambda mu, lv, t: (kl_per_dim(mu, lv).mean(0) < t).float(), "as a torch.float32 tensor"),
    (lambda mu, lv, t: kl_per_dim(mu, lv).mean(0), "returned each dimension's mean KL"),
]


@pytest.mark.parametrize("answer", CORRECT)
def test_a_correct_answer_passes(answer, capsys):
    result = check_collapsed_dims(answer)
    assert result and result.use() is answer, result.message
    assert capsys.readouterr().out.startswith("✓ my_collapsed_dims" if answer.__name__ == "my_collapsed_dims"
                                              else "✓ ")


@pytest.mark.parametrize("answer, words", MISTAKES_AS_WRITTEN, ids=[w[:40] for _, w in MISTAKES_AS_WRITTEN])
def test_each_known_mistake_gets_the_message_that_names_it(answer, words, capsys):
    result = check_collapsed_dims(answer)
    assert not result and words in result.message, result.message
    assert capsys.readouterr().out.strip() == result.message


def test_each_known_mistake_has_its_own_pattern_on_the_checks_inputs():
    """No two mistakes with different messages give the same masks, so no message names the wrong mistake."""
    mu, logvar = wide_inputs()
    patterns = {}
    for message, wrong in MISTAKES:
        pattern = tuple(torch.cat([wrong(mu, logvar, t) for t in THRESHOLDS]).tolist())
        assert patterns.setdefault(pattern, message) == message, (message, patterns[pattern])
    right = tuple(torch.cat([collapsed_dims(mu, logvar, t) for t in THRESHOLDS]).tolist())
    assert right not in patterns
    for message, wrong in MISTAKES:  # and float32 rounding moves no dimension across a threshold
        in_float64 = [wrong(mu.double(), logvar.double(), t) for t in THRESHOLDS]
        assert all(torch.equal(a, wrong(mu, logvar, t)) for a, t in zip(in_float64, THRESHOLDS)), message


def test_every_partial_or_sign_flipped_kl_fails():
    """Each of the four terms exp(logvar), mu^2, -1, -logvar kept, dropped or sign-flipped, with the 0.5 or
    without, averaged or summed over the batch: only the KL itself passes."""
    passed = []
    for signs, factor, reduce in itertools.product(itertools.product((-1, 0, 1), repeat=4), (0.5, 1.0),
                                                   ("mean", "sum")):
        def answer(mu, lv, t, signs=signs, factor=factor, reduce=reduce):
            terms = (lv.exp(), mu**2, torch.ones_like(mu), lv)
            kl = factor * sum(s * term for s, term in zip(signs, terms))
            return getattr(kl, reduce)(0) < t
        if check_collapsed_dims(answer):
            passed.append((signs, factor, reduce))
    assert passed == [((1, 1, -1, -1), 0.5, "mean")]


def test_the_thresholds_are_not_at_the_edge_of_any_dimensions_kl():
    """float32 rounding cannot move a dimension across a threshold, for the answer or a mistake."""
    mu, logvar = wide_inputs()
    kl = kl_per_dim(mu.double(), logvar.double()).mean(0)
    assert all((kl - t).abs().min() > 0.005 for t in THRESHOLDS)


def test_an_unknown_wrong_answer_names_a_dimension_and_its_kl():
    result = check_collapsed_dims(lambda mu, lv, t: kl_per_dim(mu, lv).mean(0) < t / 3)
    assert not result and "not a mistake this check knows" in result.message
    assert "mean KL" in result.message and "collapsed" in result.message


def test_a_stub_says_not_implemented_with_its_hint_and_falls_back_to_the_reference(capsys):
    result = check_collapsed_dims(stub)
    assert not result and result.message.startswith("✗ stub: not implemented yet. Hint: the closed-form KL")
    fallback = result.use()
    assert fallback is not stub and "reference implementation" in capsys.readouterr().out
    assert check_collapsed_dims(fallback)


def test_an_error_in_the_answer_is_reported_not_raised():
    result = check_collapsed_dims(lambda mu, lv, t: mu @ lv)
    assert not result and "raised RuntimeError" in result.message
