"""Notebook 6's checker, check_iwae: correct forms pass, and every known wrong form fails with the message that
names it. The wrong answers are written the way a student would write them, not taken from the checker."""

import math

import pytest
import torch

from vaelib.exercises import check_iwae
from vaelib.exercises.nb06 import log_mean_exp, wide_log_weights


def shifted_by_image_max(log_w):
    top = log_w.max(0).values  # (B,)
    return top + torch.log(torch.exp(log_w - top).mean(0))


CORRECT = [  # by hand: torch.logsumexp gives the right numbers but is refused (the exercise is its trick)
    shifted_by_image_max,
    lambda log_w: log_w.amax(0) + torch.exp(log_w - log_w.amax(0, keepdim=True)).sum(0).log() - math.log(len(log_w)),
]


@pytest.mark.parametrize("answer", CORRECT)
def test_a_correct_answer_passes(answer, capsys):
    result = check_iwae(answer)
    assert result, result.message
    assert capsys.readouterr().out.startswith("✓ ")
    assert result.use() is answer


def naive(log_w):
    return torch.log(torch.exp(log_w).mean(0))


def naive_float64(log_w):
    return torch.log(torch.exp(log_w.double()).mean(0))


def shifted_by_global_max(log_w):
    top = log_w.max()  # one number for the whole batch
    return top + torch.log(torch.exp(log_w - top).mean(0))


def shifted_by_image_min(log_w):
    low = log_w.min(0).values
    return low + torch.log(torch.exp(log_w - low).mean(0))


def shifted_by_image_mean(log_w):
    centre = log_w.mean(0)
    return centre + torch.log(torch.exp(log_w - centre).mean(0))


def max_not_added_back(log_w):
    top = log_w.max(0).values
    return torch.log(torch.exp(log_w - top).mean(0))


def max_without_values(log_w):
    top = log_w.max(0)
    return top + torch.log(torch.exp(log_w - top).mean(0))


def keepdim_returned(log_w):
    top = log_w.max(0, keepdim=True).values
    return top + torch.log(torch.exp(log_w - top).mean(0))


def shifted_in_place(log_w):
    top = log_w.max(0).values
    log_w -= top  # writes into the notebook's tensor, of which log_w[:k] is a view
    return top + torch.log(torch.exp(log_w).mean(0))


MISTAKES = [
    (shifted_in_place, "changed its input log_w in place"),
    (naive, "returned -inf where the answer is finite: exp(log_w) underflows to 0 in float32"),
    (naive_float64, "underflows even in float64"),
    (shifted_by_global_max, "one maximum over all images (log_w.max())"),
    (shifted_by_image_min, "returned +inf where the answer is finite: it takes out each image's smallest"),
    (shifted_by_image_mean, "returned +inf where the answer is finite: it takes out each image's mean"),
    (max_not_added_back, "the maximum taken out of the sum is not added back"),
    (max_without_values, "take .values"),
    (keepdim_returned, "keepdim=True kept the reduced sample axis"),
    (lambda log_w: torch.logsumexp(log_w, 0), "the - log K is missing"),
    (lambda log_w: shifted_by_image_max(log_w) + math.log(len(log_w)), "the - log K is missing"),
    (lambda log_w: log_w.mean(0), "that is the ELBO estimate"),
    (lambda log_w: log_w.max(0).values, "takes the largest log weight only"),
    (lambda log_w: torch.logsumexp(log_w, 0) - math.log(log_w.shape[1]), "subtracts log B"),
    (lambda log_w: torch.logsumexp(log_w, 0) / log_w.shape[0], "divides the log of the sum by K"),
    (lambda log_w: torch.logsumexp(log_w, 0) - log_w.shape[0], "subtracts K, not log K"),
    (lambda log_w: torch.logsumexp(log_w, 1) - math.log(log_w.shape[1]),
     "shape (7,), expected (5,): it reduced over the batch axis"),
]


@pytest.mark.parametrize("answer, words", MISTAKES, ids=[w[:40] for _, w in MISTAKES])
def test_a_known_mistake_fails_with_the_message_that_names_it(answer, words, capsys):
    result = check_iwae(answer)
    assert not result
    assert words in result.message, result.message
    assert capsys.readouterr().out.strip() == result.message
    assert result.use() is log_mean_exp


def test_an_unknown_wrong_answer_shows_where_it_differs():
    result = check_iwae(lambda log_w: shifted_by_image_max(log_w) + 0.01)
    assert not result and "not a mistake this check knows" in result.message


def test_a_stub_says_not_implemented_with_its_hint(capsys):
    def my_iwae(log_w):
        raise NotImplementedError("Hint: which factor keeps every term between 0 and 1?")
    result = check_iwae(my_iwae)
    assert not result
    assert result.message == "✗ my_iwae: not implemented yet. Hint: which factor keeps every term between 0 and 1?"
    fallback = result.use()
    assert fallback is log_mean_exp and "uses the reference implementation" in capsys.readouterr().out


def test_the_inputs_are_as_wide_as_the_checker_says_and_the_reference_is_right():
    """Images hundreds of nats apart, draws within an image hundreds apart, all below float32's exp range; the
    reference agrees with a log-mean-exp in Python's floats, image by image."""
    log_w = wide_log_weights()
    top = log_w.max(0).values
    assert log_w.max() < -103 and top.max() - top.min() > 600
    assert (top - log_w.min(0).values).max() > 250
    by_hand = [max(col) + math.log(sum(math.exp(v - max(col)) for v in col) / len(col)) for col in log_w.T.tolist()]
    torch.testing.assert_close(log_mean_exp(log_w.double()), torch.tensor(by_hand, dtype=torch.float64),
                               rtol=0, atol=1e-9)


def test_torch_logsumexp_is_refused_with_a_message_that_says_why():
    import torch as t

    def with_function(log_w):
        return t.logsumexp(log_w, 0) - math.log(log_w.shape[0])

    def with_method(log_w):
        return log_w.logsumexp(0) - math.log(log_w.shape[0])

    def in_float64(log_w):
        return torch.logsumexp(log_w.double(), 0).float() - torch.tensor(float(log_w.shape[0])).log()

    def from_special(log_w):
        return torch.special.logsumexp(log_w, 0) - math.log(log_w.shape[0])

    for fn in (with_function, with_method, in_float64, from_special):
        result = check_iwae(fn)
        assert not result.passed and "uses logsumexp" in result.message, result.message
    assert torch.logsumexp(torch.zeros(2), 0).item() == pytest.approx(math.log(2))  # put back afterwards
