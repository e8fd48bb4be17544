"""vaelib.exercises: correct answers pass, each common mistake gets the message that names it, stubs fail clearly.

The wrong answers below are written the way a student would write them, not taken from the checker.
"""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from vaelib.exercises import (check_bernoulli_entropy, check_collapsed_dims, check_interpolate, check_iwae,
                              check_kl_normal, check_planar_log_det, check_rsample_tril, check_warmup_loss)


def entropy(logits):
    p = torch.sigmoid(logits)
    return (F.softplus(logits) - p * logits).sum(-1)  # -p log p - (1 - p) log(1 - p), from the logits


def kl_normal(mu_q, logvar_q, mu_p, logvar_p):
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1).sum(-1)


def rsample_tril(mu, scale_tril, eps):
    return mu + torch.einsum("bij,bj->bi", scale_tril, eps)


def warmup_loss(log_px_z, kl, step, warmup_steps):
    return -(log_px_z - min(1.0, step / warmup_steps) * kl).mean()


def kl_per_dim(mu, logvar):
    return 0.5 * (logvar.exp() + mu**2 - 1 - logvar)


def collapsed_dims(mu, logvar, threshold):
    return kl_per_dim(mu, logvar).mean(0) < threshold


def iwae(log_w):
    top = log_w.amax(0)
    return top + torch.log(torch.exp(log_w - top).sum(0)) - math.log(log_w.shape[0])


def interpolate(z_a, z_b, n):
    return torch.stack([z_a + i / (n - 1) * (z_b - z_a) for i in range(n)])


def planar_log_det(z, u, w, b):
    psi = (1 - torch.tanh((z * w).sum(-1) + b) ** 2)[:, None] * w
    return torch.log((1 + (psi * u).sum(-1)).abs())


def stub(*args):
    raise NotImplementedError("Hint: look at the derivation above.")


CHECKS = [check_bernoulli_entropy, check_kl_normal, check_rsample_tril, check_warmup_loss, check_iwae,
          check_interpolate, check_collapsed_dims, check_planar_log_det]
CORRECT = [(check_bernoulli_entropy, entropy), (check_kl_normal, kl_normal), (check_rsample_tril, rsample_tril),
           (check_warmup_loss, warmup_loss), (check_iwae, iwae), (check_interpolate, interpolate),
           (check_collapsed_dims, collapsed_dims), (check_planar_log_det, planar_log_det),
           (check_planar_log_det, lambda z, u, w, b: torch.linalg.slogdet(  # det(I + u psi^T) as a matrix
               torch.eye(z.shape[1]) + u[:, :, None] * ((1 - torch.tanh((z * w).sum(-1) + b) ** 2)[:, None] * w)[:, None, :]
           ).logabsdet),
           (check_collapsed_dims, lambda mu, lv, t: kl_divergence(Normal(mu, (0.5 * lv).exp()), Normal(0.0, 1.0)).mean(0) < t),
           # other correct ways to write the same thing
           (check_bernoulli_entropy, lambda l: torch.distributions.Bernoulli(logits=l).entropy().sum(-1)),
           (check_bernoulli_entropy, lambda l: -(torch.sigmoid(l) * F.logsigmoid(l)
                                                 + torch.sigmoid(-l) * F.logsigmoid(-l)).sum(-1)),
           (check_kl_normal, lambda mq, lq, mp, lp: kl_divergence(Normal(mq, (lq / 2).exp()),
                                                                  Normal(mp, (lp / 2).exp())).sum(-1)),
           (check_rsample_tril, lambda mu, tril, eps: mu + (tril @ eps[..., None])[..., 0]),
           (check_warmup_loss, lambda lp, kl, s, w: (kl * min(s / w, 1) - lp).sum() / len(lp)),
           (check_interpolate, lambda z_a, z_b, n: torch.lerp(z_a, z_b, torch.linspace(0, 1, n)[:, None]))]


@pytest.mark.parametrize("check, answer", CORRECT)
def test_a_correct_answer_passes(check, answer, capsys):
    result = check(answer)
    assert result and result.passed, result.message
    assert capsys.readouterr().out.startswith("✓ ")


def test_the_references_agree_with_independent_ones():
    """The full-covariance draw has the covariance L L^T (MultivariateNormal's), by Monte Carlo."""
    g = torch.Generator().manual_seed(0)
    tril = torch.tensor([[1.0, 0.0], [0.8, 0.5]])
    eps = torch.randn(200_000, 2, generator=g)
    z = rsample_tril(torch.zeros(200_000, 2), tril.expand(200_000, 2, 2), eps)
    torch.testing.assert_close(z.T.cov(), MultivariateNormal(torch.zeros(2), scale_tril=tril).covariance_matrix,
                               atol=0.01, rtol=0)


@pytest.mark.parametrize("check", CHECKS)
def test_a_stub_fails_and_says_it_is_not_implemented_with_its_hint(check, capsys):
    result = check(stub)
    printed = capsys.readouterr().out
    assert not result
    assert printed.strip() == result.message == "✗ stub: not implemented yet. Hint: look at the derivation above."


def eps_at_old_T(mu, scale_tril, eps):
    """The row-vector form with `.T`, as a student may write it. On a batch of matrices PyTorch warns that `.T`
    is deprecated there (the student sees that warning); the test wants the checker's message, not the warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The use of `x.T` on tensors of dimension other than 2")
        return mu + eps @ scale_tril.T


MISTAKES = {
    check_bernoulli_entropy: [
        (lambda l: -entropy(l), "wrong sign"),
        (lambda l: entropy(l) / 6, "averages over the pixels"),
        (lambda l: (F.softplus(l) - torch.sigmoid(l) * l).sum(0), "it reduced over the batch axis"),
        (lambda l: -(torch.sigmoid(l) * F.logsigmoid(l)).sum(-1), "only the p log p part"),
        (lambda l: -(torch.sigmoid(l) * torch.log(torch.sigmoid(l))
                     + (1 - torch.sigmoid(l)) * torch.log(1 - torch.sigmoid(l))).sum(-1), "0 * log 0 is nan"),
        (lambda l: -(l * torch.log(l) + (1 - l) * torch.log(1 - l)).sum(-1), "do not take their log"),
        (lambda l: entropy(l) / math.log(2), "use the natural log"),
        (lambda l: (torch.sigmoid(l) * F.softplus(l) + (1 - torch.sigmoid(l)) * F.softplus(-l)).sum(-1),
         "swaps the two softplus terms"),
        (lambda logits: entropy(logits.clamp_(-100, 100)), "changed its input logits in place"),
    ],
    check_kl_normal: [
        (lambda mq, lq, mp, lp: kl_normal(mp, lp, mq, lq), "that is KL(p || q)"),
        (lambda mq, lq, mp, lp: -kl_normal(mq, lq, mp, lp), "wrong sign"),
        (lambda mq, lq, mp, lp: 2 * kl_normal(mq, lq, mp, lp), "the factor 0.5 is missing"),
        (lambda mq, lq, mp, lp: 0.5 * (lp - lq + (lq.exp() + (mq - mp) ** 2) / lp.exp() - 1).mean(-1),
         "averages over the latent dims"),
        (lambda mq, lq, mp, lp: 0.5 * (lp - lq + lq.exp() / lp.exp() + (mq - mp) ** 2 - 1).sum(-1),
         "divided by p's variance too"),
        (lambda mq, lq, mp, lp: 0.5 * (lq.exp() + mq**2 - 1 - lq).sum(-1), "mu_p and logvar_p are not used"),
        (lambda mq, lq, mp, lp: 0.5 * (lp - lq + (lq.exp() + (mq - mp) ** 2) / lp.exp() - 1),
         "it did not reduce over the latent axis"),
        (lambda mq, lq, mp, lp: 0.5 * (torch.log(lp) - torch.log(lq)).sum(-1), "returned nan"),
        # the five commonest slips in the general KL
        (lambda mq, lq, mp, lp: (lp - lq + (lq.exp() + (mq - mp) ** 2) / (2 * lp.exp()) - 0.5).sum(-1),
         "the log of the variance ratio misses its factor 1/2"),
        (lambda mq, lq, mp, lp: 0.5 * (lq - lp + (lq.exp() + (mq - mp) ** 2) / lp.exp() - 1).sum(-1),
         "the log of the variance ratio is upside down"),
        (lambda mq, lq, mp, lp: 0.5 * (lp - lq + (lq.exp() + (mq - mp) ** 2) / lp.exp()).sum(-1),
         "the - 1 is missing"),
        (lambda mq, lq, mp, lp: 0.5 * (lp - lq + (lq.exp() + (mq - mp) ** 2) / (lp / 2).exp() - 1).sum(-1),
         "divides by p's standard deviation where its variance belongs"),
        (lambda mq, lq, mp, lp: 0.5 * (lp - lq + ((lq / 2).exp() + (mq - mp) ** 2) / (lp / 2).exp() - 1).sum(-1),
         "uses the standard deviations where the variances belong"),
        (lambda mq, lq, mp, lp: 0.5 * (lp - lq + lp.exp() / lq.exp() + (mq - mp) ** 2 / lp.exp() - 1).sum(-1),
         "the variance ratio is upside down"),
        (lambda mq, lq, mp, lp: 0.5 * (lp - lq + (lp.exp() + (mq - mp) ** 2) / lq.exp() - 1).sum(-1),
         "divides by q's variance where p's belongs"),
        (lambda mu_q, logvar_q, mu_p, logvar_p: kl_normal(mu_q, logvar_q.sub_(logvar_p).add_(logvar_p), mu_p,
                                                          logvar_p) + 0 * logvar_q.mul_(2).sum(-1),
         "changed its input logvar_q in place"),
    ],
    check_rsample_tril: [
        (lambda mu, t, eps: mu + eps @ t[0], "wrong values"),  # one matrix for every example: not recognised
        (lambda mu, t, eps: mu + torch.einsum("bji,bj->bi", t, eps), "the transpose of scale_tril"),
        (lambda mu, t, eps: mu + torch.einsum("bij,bj->bi", t @ t.transpose(1, 2), eps), "the covariance"),
        (lambda mu, t, eps: mu + t.diagonal(dim1=1, dim2=2) * eps, "only the diagonal"),
        (lambda mu, t, eps: torch.einsum("bij,bj->bi", t, eps), "mu is missing"),
        (lambda mu, t, eps: mu + torch.einsum("bij,bj->bi", t, torch.randn_like(eps)), "draws its own noise"),
        (lambda mu, t, eps: rsample_tril(mu, t, eps).detach(), "z carries no gradient"),
        (lambda mu, t, eps: rsample_tril(mu, t.detach(), eps), "the gradient does not reach mu and scale_tril"),
        (lambda mu, t, eps: rsample_tril(mu, t, eps).sum(-1), "shape (5,), expected (5, 3)"),
        # the row-vector form of one draw, copied to a batch: a helpful message, not a bare shape or RuntimeError
        (lambda mu, scale_tril, eps: mu + eps @ scale_tril.mT, "right for one draw"),
        (eps_at_old_T, "right for one draw"),
        (lambda mu, scale_tril, eps: mu + scale_tril @ eps, "right for one draw"),
        (lambda mu, scale_tril, eps: mu + eps @ scale_tril, "for one draw it multiplies by the transpose"),
        (lambda mu, scale_tril, eps: mu + (eps.unsqueeze(-2) @ scale_tril).squeeze(-2),
         "multiplies by the transpose of scale_tril (scale_tril.mT @ eps, or eps as a row times scale_tril)"),
        (lambda mu, scale_tril, eps: mu + torch.einsum("bij,bj->bi", scale_tril, eps.mul_(1.5)),
         "changed its input eps in place"),
    ],
    check_warmup_loss: [
        (lambda lp, kl, s, w: -(lp - s / w * kl).mean(), "not capped at 1"),
        (lambda lp, kl, s, w: -(min(1, s / w) * lp - kl).mean(), "weights the reconstruction term"),
        (lambda lp, kl, s, w: (lp - min(1, s / w) * kl).mean(), "the sign"),
        (lambda lp, kl, s, w: -(lp - min(1, s / w) * kl).sum(), "sums over the batch"),
        (lambda lp, kl, s, w: -(lp - max(0, 1 - s / w) * kl).mean(), "the weight falls instead of rising"),
        (lambda lp, kl, s, w: -(lp - min(1, s / w) * kl), "did not reduce over the batch axis"),
        (lambda lp, kl, s, w: -(lp - min(1, s / w) * kl).mean() + (0.5 if s == 25 else 0),
         "(at step = 25, warmup_steps = 100)"),
        (lambda log_px_z, kl, s, w: -(log_px_z - kl.mul_(min(1, s / w))).mean(), "changed its input kl in place"),
    ],
    check_collapsed_dims: [
        (lambda mu, lv, t: kl_per_dim(mu, lv).sum(0) < t, "sums the KL over the batch"),
        (lambda mu, lv, t: mu.var(0) < t, "uses the variance of mu over the batch"),
        (lambda mu, lv, t: kl_per_dim(mu, lv).mean(0) > t, "returns the dimensions above the threshold"),
        (lambda mu, lv, t: kl_per_dim(mu, lv).mean(1) < t, "it reduced over the latent axis"),
        (lambda mu, lv, t: torch.where(kl_per_dim(mu, lv).mean(0) < t)[0], "returned the indices"),
        (lambda mu, lv, t: (kl_per_dim(mu, lv).mean(0) < t).float(), "as a torch.float32 tensor"),
        (lambda mu, lv, t: (2 * kl_per_dim(mu, lv)).mean(0) < t, "the factor 0.5 of the KL is missing"),
        (lambda mu, logvar, t: (0.5 * (logvar.exp_() + mu**2 - 1 - logvar.log())).mean(0) < t,
         "changed its input logvar in place"),
    ],
    check_iwae: [
        (lambda lw: torch.logsumexp(lw, 0), "the - log K is missing"),
        (lambda lw: lw.mean(0), "averages the log weights"),
        (lambda lw: torch.log(lw.exp().mean(0)), "returned -inf where the answer is finite: exp(log_w) underflows"),
        (lambda log_w: iwae(log_w.sub_(0.0).mul_(1.0)) + 0 * log_w.zero_().sum(0), "changed its input log_w in place"),
        (lambda lw: torch.logsumexp(lw, 1) - math.log(lw.shape[1]),
         "shape (7,), expected (5,): it reduced over the batch axis"),
    ],
    check_planar_log_det: [
        (lambda z, u, w, b: torch.log(((1 - torch.tanh((z * w).sum(-1) + b) ** 2) * (u * w).sum(-1)).abs()),
         "the 1 + is missing"),
        (lambda z, u, w, b: torch.log((1 + torch.tanh((z * w).sum(-1) + b) * (u * w).sum(-1)).abs()),
         "uses tanh(w . z + b) where its derivative"),
        (lambda z, u, w, b: planar_log_det(z, u, w, b).exp(), "returns the determinant, not its log"),
        (lambda z, u, w, b: -planar_log_det(z, u, w, b), "has the wrong sign"),
        (lambda z, u, w, b: planar_log_det(z, u, w, b.abs_()), "changed its input b in place"),
        (lambda z, u, w, b: planar_log_det(z, u, w, b)[:, None].expand(-1, 3), "shape (5, 3), expected (5,)"),
    ],
    check_interpolate: [
        (lambda a, b, n: interpolate(b, a, n), "runs from z_b to z_a"),
        (lambda a, b, n: torch.stack([a + i / n * (b - a) for i in range(n)]), "leaves out z_b"),
        (lambda a, b, n: torch.stack([a + i / (n + 1) * (b - a) for i in range(1, n + 1)]),
         "leaves out both end points"),
        (lambda a, b, n: torch.stack([a + i / (n - 1) * b for i in range(n)]), "returns z_a + t * z_b"),
        (lambda a, b, n: interpolate(a, b, n).T, "one column per point"),
        (lambda a, b, n: interpolate(a, b, n).mean(0), "returned shape (3,), expected (7, 3)"),
        (lambda z_a, z_b, n: torch.stack([z_a + i / (n - 1) * z_b.sub_(z_a) for i in range(n)]),
         "changed its input z_b in place"),
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
    result = check_kl_normal(lambda *args: kl_normal(*args) + 0.123)
    assert not result and "not a mistake this check knows" in result.message and "expected" in result.message


def test_an_error_inside_the_answer_is_reported_not_raised():
    result = check_kl_normal(lambda mu_q, logvar_q, mu_p, logvar_p: mu_q @ logvar_q)
    assert not result and "raised RuntimeError" in result.message


def test_a_result_shows_nothing_more_in_a_notebook_than_the_printed_line():
    result = check_kl_normal(kl_normal)
    assert result._ipython_display_() is None and "✓" in result.message


@pytest.mark.parametrize("check", CHECKS)
def test_a_skipped_exercise_falls_back_to_the_reference_and_says_so(check, capsys):
    """A stub's result hands the notebook the reference, which passes its own check, with one line saying so."""
    fallback = check(stub).use()
    said = capsys.readouterr().out.strip().splitlines()[-1]
    assert fallback is not stub and said.startswith("→ ") and fallback.__module__ in said
    assert check(fallback), capsys.readouterr().out


@pytest.mark.parametrize("check, answer", CORRECT[:8])
def test_a_passed_exercise_hands_on_the_students_own_function(check, answer, capsys):
    assert check(answer).use() is answer
    assert "→" not in capsys.readouterr().out


def test_a_wrong_scalar_names_no_element():
    result = check_warmup_loss(lambda lp, kl, s, w: -(lp - min(1, s / w) * kl).mean() + 0.5)
    assert not result and "element" not in result.message and "expected" in result.message


def test_nb07_messages_do_not_print_the_kl_formula():
    from vaelib.exercises.nb07 import MISTAKES as NB07

    assert not [m for m, _ in NB07 if "exp(logvar) + mu^2 - 1 - logvar" in m]


def test_an_answer_that_works_in_place_on_its_own_copy_passes(capsys):
    def iwae_on_a_copy(log_w):
        top = log_w.max(0).values
        shifted = log_w.clone()
        shifted -= top  # in place, but on its own tensor
        return top + torch.log(torch.exp(shifted).mean(0))

    result = check_iwae(iwae_on_a_copy)
    assert result, result.message


def test_an_in_place_message_says_what_to_do_instead():
    def my_iwae(log_w):
        top = log_w.max(0).values
        log_w -= top
        return top + torch.log(torch.exp(log_w).mean(0))

    message = check_iwae(my_iwae).message
    assert "changed its input log_w in place" in message and "log_w.clone()" in message
