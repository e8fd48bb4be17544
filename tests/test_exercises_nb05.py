"""Notebook 5's interpolation checker: right answers pass, each usual mistake is rejected with the message
that names it, a stub says it is not implemented yet, and a skipped exercise falls back to the reference.

The wrong answers are written the way a student would write them, not taken from the checker.
"""

import pytest
import torch

from vaelib.exercises import check_interpolate
from vaelib.exercises.nb05 import interpolate as reference


def by_loop(z_a, z_b, n):
    return torch.stack([z_a + i / (n - 1) * (z_b - z_a) for i in range(n)])


def by_weights(z_a, z_b, n):
    t = torch.linspace(0, 1, n).unsqueeze(1)  # (n, 1)
    return (1 - t) * z_a + t * z_b


def by_coordinate(z_a, z_b, n):
    return torch.stack([torch.linspace(a, b, n) for a, b in zip(z_a, z_b)], 1)


@pytest.mark.parametrize("answer", [by_loop, by_weights, by_coordinate, reference,
                                    lambda z_a, z_b, n: torch.lerp(z_a, z_b, torch.linspace(0, 1, n)[:, None]),
                                    lambda z_a, z_b, n: z_a + torch.linspace(0, 1, n)[:, None] * (z_b - z_a)])
def test_a_correct_answer_passes_in_any_of_its_forms(answer, capsys):
    result = check_interpolate(answer)
    assert result, result.message
    assert result.use() is answer and "→" not in capsys.readouterr().out


def test_the_reference_is_the_straight_line_with_both_ends():
    z_a, z_b = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 4.0])
    torch.testing.assert_close(reference(z_a, z_b, 3), torch.tensor([[1.0, -2.0], [2.0, 1.0], [3.0, 4.0]]))


MISTAKES = [
    (lambda a, b, n: by_weights(b, a, n), "runs from z_b to z_a"),
    (lambda a, b, n: torch.stack([a + i / n * (b - a) for i in range(n)]), "leaves out z_b"),
    (lambda a, b, n: torch.stack([a + i / n * (b - a) for i in range(1, n + 1)]), "leaves out z_a"),
    (lambda a, b, n: torch.stack([a + i / (n + 1) * (b - a) for i in range(1, n + 1)]), "leaves out both end points"),
    (lambda a, b, n: torch.stack([a + i / (n - 1) * b for i in range(n)]), "returns z_a + t * z_b"),
    (lambda a, b, n: torch.stack([(1 - i / (n - 1)) * a + i / (n - 1) * (b - a) for i in range(n)]),
     "returns (1 - t) * z_a + t * (z_b - z_a)"),
    (lambda a, b, n: by_loop(a, b, n).T, "one column per point"),
    (lambda a, b, n: by_loop(a, b, n).mean(0), "returned shape (3,), expected (7, 3)"),
    (lambda a, b, n: [a + i / (n - 1) * (b - a) for i in range(n)], "torch.stack(points)"),
    (lambda a, b, n: torch.stack([torch.linspace(a[0], b[0], n), torch.linspace(a[1], b[1], n)], 1),
     "2 coordinates per point for codes of 3"),  # written for the notebook's L = 2
    (lambda a, b, n: by_loop(a, b, 10), "returned 10 points for n = 7"),  # the notebook's n written in
    (lambda a, b, n: (1 - torch.linspace(0, 1, n)) * a + torch.linspace(0, 1, n) * b, "give t a trailing axis"),
    (lambda a, b, n: torch.linspace(a, b, n), "torch.linspace takes numbers, not vectors"),
]


@pytest.mark.parametrize("answer, words", MISTAKES, ids=[w[:40] for _, w in MISTAKES])
def test_each_usual_mistake_is_rejected_with_the_message_that_names_it(answer, words, capsys):
    result = check_interpolate(answer)
    assert not result
    assert words in result.message, result.message
    assert capsys.readouterr().out.strip() == result.message


def test_a_formula_right_only_where_z_a_is_0_is_rejected():
    """A wrong formula that agrees with the right one at z_a = 0 or z_b = 0 meets codes far from 0."""
    result = check_interpolate(lambda a, b, n: torch.stack([i / (n - 1) * (b - a) for i in range(n)]))
    assert not result and "not a mistake this check knows" in result.message


def test_an_answer_that_edits_its_inputs_in_place_fails_saying_so():
    """Right values, but the notebook's z_b would be changed by the call: the check names it."""
    def in_place(z_a, z_b, n):
        z_b -= z_a  # the student's own variable, reused
        return torch.stack([z_a + i / (n - 1) * z_b for i in range(n)])
    result = check_interpolate(in_place)
    assert not result and "changed its input z_b in place" in result.message, result.message


def test_a_stub_says_not_implemented_yet_with_its_hint_and_the_notebook_uses_the_reference(capsys):
    def my_interpolate(z_a, z_b, n):
        raise NotImplementedError("Hint: each point is a weighted average of the two ends.")
    result = check_interpolate(my_interpolate)
    assert result.message == ("✗ my_interpolate: not implemented yet. "
                              "Hint: each point is a weighted average of the two ends.")
    fallback = result.use()
    assert fallback is reference
    assert capsys.readouterr().out.splitlines()[-1] == (
        "→ until it passes, the rest of this notebook uses the reference implementation "
        "(vaelib.exercises.nb05.interpolate)")


def test_an_error_inside_the_answer_is_reported_not_raised():
    result = check_interpolate(lambda a, b, n: a @ torch.ones(4))
    assert not result and "raised RuntimeError" in result.message
