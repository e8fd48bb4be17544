"""Notebook 8's exercise, one planar layer's log-determinant: correct answers pass (several forms), each usual
mistake gets the message that names it, a stub says it is not implemented, .use() falls back to the reference.

The wrong answers are written the way a student would write them, not taken from the checker.
"""

import pytest
import torch

from vaelib.exercises import check_planar_log_det
from vaelib.exercises.nb08 import planar_inputs, planar_log_det


def log_det(z, u, w, b):
    psi = (1 - torch.tanh((z * w).sum(-1) + b) ** 2)[:, None] * w  # tanh'(w . z + b) w
    return torch.log(torch.abs(1 + (u * psi).sum(-1)))


def slope(z, w, b):
    return 1 - torch.tanh((z * w).sum(-1) + b) ** 2


CORRECT = [
    log_det,
    lambda z, u, w, b: torch.log1p(torch.einsum("bl,bl->b", u, w) / torch.cosh(torch.einsum("bl,bl->b", z, w) + b) ** 2),
    lambda z, u, w, b: torch.linalg.slogdet(  # det(I + u psi^T) as a matrix, without the lemma
        torch.eye(z.shape[1]) + u[:, :, None] * (slope(z, w, b)[:, None] * w)[:, None, :]).logabsdet,
    lambda z, u, w, b: torch.log(1 + slope(z, w, b) * (u * w).sum(-1)),  # no abs: positive when w . u > -1
]


@pytest.mark.parametrize("answer", CORRECT)
def test_a_correct_answer_passes(answer, capsys):
    result = check_planar_log_det(answer)
    assert result, result.message
    assert capsys.readouterr().out.startswith("✓ ")


def psi_into_w(z, u, w, b):
    """Builds psi in w's own storage: the layer's w is then wrong for every later call."""
    psi = w.mul_((1 - torch.tanh((z * w).sum(-1) + b) ** 2)[:, None])
    return torch.log(torch.abs(1 + (psi * u).sum(-1)))


MISTAKES = [
    (lambda z, u, w, b: torch.log(torch.abs((u * w).sum(-1) * slope(z, w, b))), "the 1 + is missing"),
    (lambda z, u, w, b: torch.log(1 + (u * w).sum(-1) * torch.tanh((z * w).sum(-1) + b)),
     "uses tanh(w . z + b) where its derivative"),
    (lambda z, u, w, b: torch.log(1 + (u * w).sum(-1) * (1 - torch.tanh((z * w).sum(-1) + b))),
     "uses 1 - tanh(w . z + b) as tanh's derivative"),
    (lambda z, u, w, b: torch.log(1 + (u * w).sum(-1)), "leaves tanh' out"),
    (lambda z, u, w, b: torch.log(1 + (u * w).sum(-1) * (1 - torch.tanh((z * w).sum(-1)) ** 2)),
     "leaves b out of tanh's argument"),
    (lambda z, u, w, b: torch.log(torch.abs(1 + u * w * slope(z, w, b)[:, None])).sum(-1),
     "multiplies the diagonal of the Jacobian"),
    (lambda z, u, w, b: torch.log(z.shape[1] + (u * w).sum(-1) * slope(z, w, b)), "uses the trace of the Jacobian"),
    (lambda z, u, w, b: 1 + (u * w).sum(-1) * slope(z, w, b), "returns the determinant, not its log"),
    (lambda z, u, w, b: -log_det(z, u, w, b), "has the wrong sign"),
    (lambda z, u, w, b: torch.log(torch.abs(1 + (w * w).sum(-1) * slope(z, w, b))), "takes psi . w where psi . u"),
    (psi_into_w, "changed its input w in place"),
    (lambda z, u, w, b: log_det(z, u, w, b).sum(), "it reduced over the batch"),
    (lambda z, u, w, b: torch.log(1 + u * w * slope(z, w, b)[:, None]), "did not reduce over the latent axis"),
    (lambda z, u, w, b: log_det(z, u, w, b) + 0.1, "wrong values, and not a mistake this check knows"),
]


@pytest.mark.parametrize("answer, words", MISTAKES, ids=[w[:40] for _, w in MISTAKES])
def test_a_common_mistake_gets_the_message_that_names_it(answer, words, capsys):
    result = check_planar_log_det(answer)
    assert not result
    assert words in result.message, result.message
    assert capsys.readouterr().out.strip() == result.message


def test_the_inputs_tell_the_mistakes_apart():
    """w . z + b spans tanh's curve (tanh' from about 0.07 to 1), so tanh' is neither tanh nor 1 on every row."""
    z, u, w, b = planar_inputs()
    a = (z * w).sum(-1) + b
    assert a.min() < -1.5 and a.max() > 1.5
    assert ((u * w).sum(-1) > -1).all()


def test_the_reference_passes_its_own_check(capsys):
    assert check_planar_log_det(planar_log_det)


def test_a_stub_says_not_implemented_with_its_hint(capsys):
    def my_planar_log_det(z, u, w, b):
        raise NotImplementedError("Hint: the matrix determinant lemma.")

    assert not check_planar_log_det(my_planar_log_det)
    assert capsys.readouterr().out.strip() == "✗ my_planar_log_det: not implemented yet. Hint: the matrix determinant lemma."


def test_use_gives_the_students_function_once_it_passes_else_the_reference_saying_so(capsys):
    assert check_planar_log_det(log_det).use() is log_det
    assert check_planar_log_det(lambda z, u, w, b: -log_det(z, u, w, b)).use() is planar_log_det
    assert capsys.readouterr().out.splitlines()[-1].endswith("(vaelib.exercises.nb08.planar_log_det)")
