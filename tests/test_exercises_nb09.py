"""Notebook 9's Adam checker: right answers pass, each usual mistake is rejected with the message that names
it, a stub says it is not implemented yet, and a skipped exercise falls back to the reference.

The wrong answers are written the way a student would write them, not taken from the checker.
"""

import math

import pytest
import torch

from vaelib.exercises import check_adam_step
from vaelib.exercises.nb09 import adam_step as reference


def adam(param, grad, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    return param - lr * m_hat / (torch.sqrt(v_hat) + eps), m, v


def adam_pytorch_form(param, grad, m, v, t, lr, beta1, beta2, eps):
    """As torch.optim.Adam writes it: the corrections folded into the step size and the denominator."""
    m = torch.lerp(m, grad, 1 - beta1)
    v = v * beta2 + (1 - beta2) * grad.square()
    denom = v.sqrt() / math.sqrt(1 - beta2**t) + eps
    return param.addcdiv(m, denom, value=-lr / (1 - beta1**t)), m, v


def adam_in_place(param, grad, m, v, t, lr, beta1, beta2, eps):
    """A loop-style answer that updates its state tensors in place and returns them."""
    m.mul_(beta1).add_(grad, alpha=1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    param -= lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps)
    return param, m, v


@pytest.mark.parametrize("answer", [adam, adam_pytorch_form, reference])
def test_a_correct_answer_passes_in_any_of_its_forms(answer, capsys):
    result = check_adam_step(answer)
    assert result, result.message
    assert result.use() is answer and "→" not in capsys.readouterr().out


def test_the_reference_takes_torch_optim_adams_steps_on_a_model_sized_tensor():
    g = torch.Generator().manual_seed(0)
    start = torch.randn(50, 20, generator=g)
    p = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([p], lr=3e-3, betas=(0.85, 0.995), eps=1e-7)
    param, m, v = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    for t in range(1, 11):
        grad = torch.randn(50, 20, generator=g) * 10.0 ** -(t % 4)
        p.grad = grad.clone()
        optimizer.step()
        param, m, v = reference(param, grad, m, v, t, 3e-3, 0.85, 0.995, 1e-7)
    torch.testing.assert_close(param, p.detach())


def with_m(update_m):
    """Adam with m updated as the student wrote it; the rest right."""
    def answer(param, grad, m, v, t, lr, beta1, beta2, eps):
        m = update_m(m, grad, beta1, t)
        v = beta2 * v + (1 - beta2) * grad**2
        return param - lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps), m, v
    return answer


def with_v(update_v):
    def answer(param, grad, m, v, t, lr, beta1, beta2, eps):
        m = beta1 * m + (1 - beta1) * grad
        v = update_v(v, grad, beta2, t)
        return param - lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps), m, v
    return answer


def with_step(step):
    """Adam with m and v right and the step as the student wrote it, from the new m and v."""
    def answer(param, grad, m, v, t, lr, beta1, beta2, eps):
        m_new = beta1 * m + (1 - beta1) * grad
        v_new = beta2 * v + (1 - beta2) * grad**2
        return step(param, m_new, v_new, m, v, t, lr, beta1, beta2, eps), m_new, v_new
    return answer


def returns_corrected(param, grad, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m = m / (1 - beta1**t)  # corrected in place of the state
    v = v / (1 - beta2**t)
    return param - lr * m / (v.sqrt() + eps), m, v


def param_in_place(param, grad, m, v, t, lr, beta1, beta2, eps):
    """Updates the parameter in place and returns it: the notebook's `new` is then its `p`, every step 0."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    param -= lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps)
    return param, m, v


MISTAKES = [
    (with_m(lambda m, g, b1, t: b1 * g + (1 - b1) * m), "m's weights are swapped"),
    (with_m(lambda m, g, b1, t: b1 * m + g), "m adds the whole gradient"),
    (with_m(lambda m, g, b1, t: 0.9 * m + 0.1 * g), "uses beta1 = 0.9"),
    (returns_corrected, "returns the bias-corrected m as the new m"),
    (with_v(lambda v, g, b2, t: b2 * g**2 + (1 - b2) * v), "v's weights are swapped"),
    (with_v(lambda v, g, b2, t: b2 * v + (1 - b2) * g), "v averages the gradient"),
    (with_v(lambda v, g, b2, t: b2 * v + (1 - b2) * g.abs()), "v averages |grad|"),
    (with_v(lambda v, g, b2, t: 0.999 * v + 0.001 * g**2), "uses beta2 = 0.999"),
    (with_step(lambda p, m, v, m0, v0, t, lr, b1, b2, eps: p - lr * m / (v.sqrt() + eps)), "no bias correction"),
    (with_step(lambda p, m, v, m0, v0, t, lr, b1, b2, eps: p - lr * m / (1 - b1**t) / (v.sqrt() + eps)),
     "corrects m but not v"),
    (with_step(lambda p, m, v, m0, v0, t, lr, b1, b2, eps: p - lr * m / ((v / (1 - b2**t)).sqrt() + eps)),
     "corrects v but not m"),
    (with_step(lambda p, m, v, m0, v0, t, lr, b1, b2, eps:
               p - lr * (m / (1 - b1**t)) / torch.sqrt(v / (1 - b2**t) + eps)), "eps is inside the square root"),
    (with_step(lambda p, m, v, m0, v0, t, lr, b1, b2, eps:
               p + lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)), "steps up the gradient"),
    (with_step(lambda p, m, v, m0, v0, t, lr, b1, b2, eps:  # t counted from 0, then + 1 once too often
               p - lr * (m / (1 - b1**(t + 1))) / ((v / (1 - b2**(t + 1))).sqrt() + eps)), "uses t + 1"),
    (with_step(lambda p, m, v, m0, v0, t, lr, b1, b2, eps:
               p - lr * (m / (1 - b1**(t - 1))) / ((v / (1 - b2**(t - 1))).sqrt() + eps)), "uses t - 1"),
    (with_step(lambda p, m, v, m0, v0, t, lr, b1, b2, eps:
               p - lr * (m0 / (1 - b1**t)) / ((v0 / (1 - b2**t)).sqrt() + eps)), "steps with the old m and v"),
    (with_step(lambda p, m, v, m0, v0, t, lr, b1, b2, eps:
               p - 1e-3 * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)), "uses lr = 1e-3"),
    (with_step(lambda p, m, v, m0, v0, t, lr, b1, b2, eps:
               p - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + 1e-8)), "uses eps = 1e-8"),
    (with_step(lambda p, m, v, m0, v0, t, lr, b1, b2, eps: p - lr * (m / (1 - b1**t)) / (v / (1 - b2**t)).sqrt()),
     "eps goes in the denominator"),  # no eps: 0 / 0 where the gradient is 0
    (lambda p, g, m, v, t, lr, b1, b2, eps: adam(p, g, m, v, t, lr, b1, b2, eps)[0], "return the three new tensors"),
    (lambda p, g, m, v, t, lr, b1, b2, eps: adam(p, g, m, v, t, lr, b1, b2, eps)[::-1], "another order"),
    (adam_in_place, "changed its input param in place"),  # the notebook's state would be its own output
    (param_in_place, "changed its input param in place"),
]


@pytest.mark.parametrize("answer, words", MISTAKES, ids=[w[:40] for _, w in MISTAKES])
def test_each_usual_mistake_is_rejected_with_the_message_that_names_it(answer, words, capsys):
    result = check_adam_step(answer)
    assert not result
    assert words in result.message, result.message
    assert capsys.readouterr().out.strip() == result.message


def test_a_stub_says_not_implemented_yet_with_its_hint_and_the_notebook_uses_the_reference(capsys):
    def my_adam_step(param, grad, m, v, t, lr, beta1, beta2, eps):
        raise NotImplementedError("Hint: two running averages, two corrections, one step.")
    result = check_adam_step(my_adam_step)
    assert result.message == ("✗ my_adam_step: not implemented yet. "
                              "Hint: two running averages, two corrections, one step.")
    assert result.use() is reference
    assert capsys.readouterr().out.splitlines()[-1] == (
        "→ until it passes, the rest of this notebook uses the reference implementation "
        "(vaelib.exercises.nb09.adam_step)")
