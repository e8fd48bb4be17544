"""Notebook 13's checkers, check_unlabelled_loss, check_class_posterior and check_one_draw_loss: correct forms pass, a test per known
mistake, stubs fail clearly; and the checkers' references agree with vaelib.m2 and with brute force. The wrong
answers are written the way a student would write them, not taken from the checker.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from vaelib import m2
from vaelib.config import ModelConfig
from vaelib.exercises import check_class_posterior, check_one_draw_loss, check_unlabelled_loss
from vaelib.exercises.nb13 import (expected_gradient, label_gradients, loss_inputs, reference_class_posterior,
                                   reference_one_draw_loss, reference_unlabelled_loss)


def stub(*args):
    raise NotImplementedError("Hint: weight each label's loss by q(y|x).")


def correct_loss(logits, elbos):
    q = F.softmax(logits, -1)
    return -(q * elbos.T).sum(-1) + (q * F.log_softmax(logits, -1)).sum(-1)


LOSS_CORRECT = [
    correct_loss,
    lambda logits, elbos: torch.einsum("bc,cb->b", logits.softmax(-1), -elbos)
    - torch.distributions.Categorical(logits=logits).entropy(),
    lambda logits, elbos: sum(F.softmax(logits, -1)[:, y] * (-elbos[y]) for y in range(10))  # a loop over labels
    + (F.softmax(logits, -1) * F.log_softmax(logits, -1)).sum(-1),
]
q_ = lambda logits: F.softmax(logits, -1)  # noqa: E731
h_ = lambda logits: -(q_(logits) * F.log_softmax(logits, -1)).sum(-1)  # noqa: E731
LOSS_MISTAKES = [
    (lambda l, e: (q_(l) * e.T).sum(-1) + h_(l), "returns the bound -U(x)"),
    (lambda l, e: -(q_(l) * e.T).sum(-1), "forgets the entropy"),
    (lambda l, e: -(q_(l) * e.T).sum(-1) + h_(l), "adds the entropy"),
    (lambda l, e: -e.mean(0) - h_(l), "weights the labels equally"),
    (lambda l, e: -(l * e.T).sum(-1) - h_(l), "weights by the logits"),
    (lambda l, e: -e.T[torch.arange(len(l)), l.argmax(-1)] - h_(l), "keeps only the most probable label"),
    (lambda l, e: -(F.softmax(l, 0) * e.T).sum(-1) - h_(l), "normalises over the batch"),
    (lambda l, e: -(q_(l) * e.T).sum(-1) + (q_(l) * l).sum(-1), "takes the logits for log-probabilities"),
    (lambda l, e: -(q_(l) * e.T).sum() - h_(l).sum(), "expected (6,): it reduced over the batch"),
    (lambda l, e: -(q_(l) * e.T).sum(-1) + (q_(l) * q_(l).log()).sum(-1),  # right in exact arithmetic
     "take log q(y|x) from log_softmax"),
    (lambda l, e: -(q_(l) * e.T).sum(-1) - h_(l) + 1.0, "not a mistake this check knows"),
]


def correct_posterior(log_px_given_y):
    return torch.softmax(log_px_given_y, 0).T


POSTERIOR_CORRECT = [
    correct_posterior,
    lambda lp: torch.softmax(lp.T + math.log(0.1), -1),  # with the prior written out
    lambda lp: (lp - torch.logsumexp(lp, 0)).exp().T,
    lambda lp: ((lp - lp.max(0).values).exp() / (lp - lp.max(0).values).exp().sum(0)).T,
]
POSTERIOR_MISTAKES = [
    (lambda lp: (lp.exp() / lp.exp().sum(0)).T, "underflows to 0"),
    (lambda lp: torch.softmax(lp, 1).T, "normalises over the images"),
    (lambda lp: (lp / lp.sum(0)).T, "normalises the log-likelihoods themselves"),
    (lambda lp: torch.log_softmax(lp, 0).T, "returns log p(y|x)"),
    (lambda lp: torch.softmax(lp, 0), "expected (7, 10)"),
    (lambda lp: torch.softmax(2 * lp, 0).T, "not a mistake this check knows"),
]


@pytest.mark.parametrize("fn", LOSS_CORRECT)
def test_unlabelled_loss_correct_forms_pass(fn, capsys):
    assert check_unlabelled_loss(fn)
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("fn, says", LOSS_MISTAKES)
def test_unlabelled_loss_mistakes_are_named(fn, says, capsys):
    result = check_unlabelled_loss(fn)
    assert not result
    assert says in result.message
    assert capsys.readouterr().out.startswith("✗")


@pytest.mark.parametrize("fn", POSTERIOR_CORRECT)
def test_class_posterior_correct_forms_pass(fn, capsys):
    assert check_class_posterior(fn)
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("fn, says", POSTERIOR_MISTAKES)
def test_class_posterior_mistakes_are_named(fn, says):
    result = check_class_posterior(fn)
    assert not result
    assert says in result.message


@pytest.mark.parametrize("check", [check_unlabelled_loss, check_class_posterior, check_one_draw_loss])
def test_stubs_fail_and_fall_back_to_the_reference(check, capsys):
    result = check(stub)
    assert not result and "not implemented yet" in result.message
    assert result.use() is result.reference
    assert "reference implementation" in capsys.readouterr().out


def test_in_place_edits_are_refused():
    def edits(logits, elbos):
        elbos.neg_()
        return correct_loss(logits, -elbos)
    result = check_unlabelled_loss(edits)
    assert not result and "in place" in result.message


def test_unlabelled_reference_is_vaelib_m2s_loss():
    """The checker's reference, fed a real M2's logits and its ELBO under every label, gives vaelib.m2's U(x) for
    the same draws of z."""
    torch.manual_seed(0)
    model = m2.M2(ModelConfig(kind="m2", hidden=[16], z_dim=3))
    x = torch.bernoulli(torch.rand(5, 784))
    elbos = m2.labelled_elbo(model, x, m2.all_labels(x), torch.Generator().manual_seed(1)).elbo
    expected = m2.unlabelled_loss(model, x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(reference_unlabelled_loss(model.classify(x), elbos), expected)


def test_the_references_work_where_their_input_lies():
    """The fallbacks `.use()` hands the notebook build nothing on the CPU themselves (a CUDA or MPS input works)."""
    logs = torch.randn(10, 3, device="meta")
    assert reference_class_posterior(logs).device.type == "meta"
    assert reference_unlabelled_loss(torch.randn(3, 10, device="meta"), logs).device.type == "meta"


def test_class_posterior_reference_is_bayes_rule_by_brute_force():
    """Against p(x|y) p(y) / sum_y' p(x|y') p(y') in exact fractions, for log-likelihoods whose exp is
    representable."""
    g = torch.Generator().manual_seed(0)
    logs = -5 * torch.rand(10, 4, generator=g, dtype=torch.float64)
    joint = logs.exp() * 0.1
    torch.testing.assert_close(reference_class_posterior(logs), (joint / joint.sum(0)).T)


def log_q_at(logits, y):
    return F.log_softmax(logits, -1).gather(-1, y[:, None])[:, 0]


def correct_one_draw(logits, elbo, y):
    f = -elbo + log_q_at(logits, y)
    return f + f.detach() * log_q_at(logits, y)


def dice_one_draw(logits, elbo, y):  # the same gradient, and the value f(y) itself
    log_q = torch.distributions.Categorical(logits=logits).log_prob(y)
    f = -elbo + log_q
    return f + f.detach() * (log_q - log_q.detach())


def entropy_(logits):
    return -(F.softmax(logits, -1) * F.log_softmax(logits, -1)).sum(-1)


ONE_DRAW_CORRECT = [
    correct_one_draw,
    dice_one_draw,
    # the entropy exactly, the score term weighted by -ELBO alone: unbiased too (a reviewer's form)
    lambda l, e, y: -e - entropy_(l) + (-e).detach() * log_q_at(l, y),
    # all of f in the score term, none of log q(y|x) in the pathwise term: unbiased, as E[grad log q] = 0
    lambda l, e, y: -e + (-e + log_q_at(l, y)).detach() * log_q_at(l, y),
    # with a baseline that does not depend on y: 100 nats off f
    lambda l, e, y: (-e + log_q_at(l, y)) + (-e + log_q_at(l, y) - 100.0).detach() * log_q_at(l, y),
]
lq = log_q_at
ONE_DRAW_MISTAKES = [
    (lambda l, e, y: -e + lq(l, y), "the naive estimate"),
    (lambda l, e, y: -e - entropy_(l), "the naive estimate"),  # the failure study's: only the entropy's gradient
    (lambda l, e, y: (-e + lq(l, y)) + (-e + lq(l, y)) * lq(l, y), "must not carry a gradient"),
    (lambda l, e, y: (-e + lq(l, y)) - (-e + lq(l, y)).detach() * lq(l, y), "added, not subtracted"),
    (lambda l, e, y: (-e + lq(l, y)) - e.detach() * lq(l, y), "misses U's entropy term"),
    (lambda l, e, y: -e - e.detach() * lq(l, y), "misses U's entropy term"),
    (lambda l, e, y: (-e + l[torch.arange(len(y)), y]) + (-e + l[torch.arange(len(y)), y]).detach()
     * l[torch.arange(len(y)), y], "not the logit itself"),
    (lambda l, e, y: (-e + lq(l, y)) + (-e + lq(l, y)).detach() * F.softmax(l, -1)[torch.arange(len(y)), y],
     "not by q(y|x)"),
    (lambda l, e, y: (e + lq(l, y)) + (e + lq(l, y)).detach() * lq(l, y), "flip the ELBO's sign"),
    (lambda l, e, y: correct_one_draw(l, e.detach(), y), "must be -1"),
    (lambda l, e, y: correct_one_draw(l, e, y).detach(), "carries no gradient"),
    (lambda l, e, y: correct_one_draw(l, e, y).mean(), "reduced over the batch"),
    (lambda l, e, y: -e - entropy_(l) + (-e + lq(l, y)).detach() * lq(l, y), "counts the entropy twice"),
    (lambda l, e, y: -correct_one_draw(l, e, y), "is +1"),
    (lambda l, e, y: (-e + F.log_softmax(l, -1)[:, y]) + (-e + F.log_softmax(l, -1)[:, y]).detach()
     * F.log_softmax(l, -1)[:, y], "each image's own"),
    # one image's label read for the whole batch, and the labels sorted: right only when every image has the same
    (lambda l, e, y: correct_one_draw(l, e, y[:1].expand(len(y))), "not a mistake this check knows"),
    (lambda l, e, y: correct_one_draw(l, e, y.sort().values), "not a mistake this check knows"),
    (lambda l, e, y: 2 * correct_one_draw(l, e, y), "not a mistake this check knows"),
]


@pytest.mark.parametrize("fn", ONE_DRAW_CORRECT)
def test_one_draw_loss_correct_forms_pass(fn, capsys):
    assert check_one_draw_loss(fn)
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("fn, says", ONE_DRAW_MISTAKES)
def test_one_draw_loss_mistakes_are_named(fn, says):
    result = check_one_draw_loss(fn)
    assert not result
    assert says in result.message


def test_one_draw_reference_is_unbiased_for_the_sum_and_the_naive_estimate_is_not():
    """Against closed forms: with f(y) = -ELBO(x, y) + log q(y|x), the gradient of U(x) with respect to the logits
    is q * (f - sum_y q f), and the reference surrogate's, for label y, is (onehot(y) - q) (1 + f(y)), whose average
    over y ~ q is the former. The checker's enumeration (mixed labels per call) gives the same; the naive f(y)
    alone averages to zero, far from it for these classifiers."""
    logits, elbos = loss_inputs(0)
    q, f = F.softmax(logits, -1), -elbos.T + F.log_softmax(logits, -1)  # (B, C) each
    exact = q * (f - (q * f).sum(-1, keepdim=True))
    lg = logits.clone().requires_grad_()
    torch.testing.assert_close(torch.autograd.grad(reference_unlabelled_loss(lg, elbos).sum(), lg)[0], exact)
    eye = torch.eye(10, dtype=logits.dtype)
    per_label = (eye[:, None, :] - q) * (1 + f.T[:, :, None])  # (C, B, C): label y's gradient for each image
    torch.testing.assert_close((q.T[:, :, None] * per_label).sum(0), exact)
    by_logits, by_elbo = label_gradients(reference_one_draw_loss, logits, elbos)
    torch.testing.assert_close(by_logits, per_label)
    torch.testing.assert_close(by_elbo, -torch.ones_like(elbos))
    torch.testing.assert_close(expected_gradient(reference_one_draw_loss, logits, elbos), exact)
    naive = expected_gradient(lambda l, e, y: -e + lq(l, y), logits, elbos)
    assert (naive - exact).abs().max() > 1.0
