"""Checkers for appendix Notebook 9, plain gradient descent against Adam."""

from __future__ import annotations

import itertools

import torch

from .core import CheckResult, B, L, Fail, answer, compare, report

STEPS = 5  # Adam steps checked, t = 1 .. STEPS: the bias corrections still matter there
HYPER = {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6}  # not Adam's defaults, so none can be written in
DEFAULTS = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


def adam_step(param: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: int, lr: float,
              beta1: float, beta2: float, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reference: one Adam step [Kingma & Ba 2015, Algorithm 1], as torch.optim.Adam takes it.

    m = beta1 m + (1 - beta1) grad; v = beta2 v + (1 - beta2) grad^2; then
    param - lr * m_hat / (sqrt(v_hat) + eps), with m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t), t >= 1.
    Shapes: every tensor the shape of param; returns the new (param, m, v).
    """
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v


def gradients(g: torch.Generator) -> torch.Tensor:
    """STEPS gradients of a (B, L) parameter whose rows differ in size by up to 10^7, as layers do, with
    one coordinate whose gradient is 0 at every step. Shape: (STEPS, B, L), float64."""
    scale = torch.logspace(1, -6, B, dtype=torch.float64)[:, None]  # 10 down to 1e-6, one size per row
    grads = torch.randn(STEPS, B, L, generator=g, dtype=torch.float64) * scale
    grads[:, 0, 0] = 0
    return grads


def torch_adam(param: torch.Tensor, grads: torch.Tensor, h: dict) -> list[tuple[torch.Tensor, ...]]:
    """torch.optim.Adam's (param, m, v) before every step and after the last: an independent reference."""
    p = param.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([p], lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"], foreach=False)
    states = [(param.clone(), torch.zeros_like(param), torch.zeros_like(param))]
    for grad in grads:
        p.grad = grad.clone()
        optimizer.step()
        state = optimizer.state[p]
        states.append((p.detach().clone(), state["exp_avg"].clone(), state["exp_avg_sq"].clone()))
    return states


def mistakes(param, grad, m, v, t, h):
    """The usual wrong answers for (m, v, param), each with what to change; written out on their own."""
    b1, b2, lr, eps = h["beta1"], h["beta2"], h["lr"], h["eps"]
    m1, v1 = b1 * m + (1 - b1) * grad, b2 * v + (1 - b2) * grad**2
    c1, c2 = 1 - b1**t, 1 - b2**t
    d = DEFAULTS
    return {
        "m": {
            "m's weights are swapped: m keeps beta1 of the old m and adds (1 - beta1) of the gradient":
                b1 * grad + (1 - b1) * m,
            "returns the bias-corrected m as the new m: keep m itself for the next step, and correct a copy for "
            "the update": m1 / c1,
            "m adds the whole gradient; it adds (1 - beta1) * grad": b1 * m + grad,
            "uses beta1 = 0.9, Adam's default, instead of the argument beta1":
                d["beta1"] * m + (1 - d["beta1"]) * grad,
        },
        "v": {
            "v's weights are swapped: v keeps beta2 of the old v and adds (1 - beta2) of the squared gradient":
                b2 * grad**2 + (1 - b2) * v,
            "returns the bias-corrected v as the new v: keep v itself for the next step, and correct a copy for "
            "the update": v1 / c2,
            "v averages the gradient; it averages the squared gradient, grad ** 2": b2 * v + (1 - b2) * grad,
            "v averages |grad|; it averages the squared gradient, grad ** 2": b2 * v + (1 - b2) * grad.abs(),
            "uses beta2 = 0.999, Adam's default, instead of the argument beta2":
                d["beta2"] * v + (1 - d["beta2"]) * grad**2,
        },
        "param": {
            "no bias correction: divide m by 1 - beta1 ** t and v by 1 - beta2 ** t before the step":
                param - lr * m1 / (v1.sqrt() + eps),
            "corrects m but not v: divide v by 1 - beta2 ** t too": param - lr * (m1 / c1) / (v1.sqrt() + eps),
            "corrects v but not m: divide m by 1 - beta1 ** t too": param - lr * m1 / ((v1 / c2).sqrt() + eps),
            "eps is inside the square root; it is added after it, sqrt(v_hat) + eps (the two differ where "
            "gradients are small)": param - lr * (m1 / c1) / (v1 / c2 + eps).sqrt(),
            "steps up the gradient: subtract the step": param + lr * (m1 / c1) / ((v1 / c2).sqrt() + eps),
            "the bias correction uses t + 1; t counts the steps from 1 here":
                param - lr * (m1 / (1 - b1**(t + 1))) / ((v1 / (1 - b2**(t + 1))).sqrt() + eps),
            "the bias correction uses t - 1; t counts the steps from 1 here":
                param - lr * (m1 / (1 - b1**(t - 1))) / ((v1 / (1 - b2**(t - 1))).sqrt() + eps),
            "steps with the old m and v: update them first, then take the step with the new ones":
                param - lr * (m / c1) / ((v / c2).sqrt() + eps),
            "uses lr = 1e-3, Adam's default, instead of the argument lr":
                param - d["lr"] * (m1 / c1) / ((v1 / c2).sqrt() + eps),
            "uses eps = 1e-8, Adam's default, instead of the argument eps":
                param - lr * (m1 / c1) / ((v1 / c2).sqrt() + d["eps"]),
        },
    }


def in_another_order(got, expected) -> bool:
    """Whether got holds the three expected tensors, but not as (param, m, v)."""
    def same(a, b):
        return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.double(), b, rtol=1e-7, atol=1e-12)
    return any(all(same(got[i], expected[j]) for i, j in enumerate(order))
               for order in itertools.permutations(range(3)) if order != (0, 1, 2))


def check_adam_step(fn) -> CheckResult:
    """fn(param, grad, m, v, t, lr, beta1, beta2, eps) -> the new (param, m, v) after one Adam step, t >= 1.

    Checked against torch.optim.Adam over steps t = 1 .. 5 from m = v = 0, each step from torch's own state, on
    gradients whose sizes range from 10 to 1e-6 (where eps matters) with one that is always 0, and with
    hyperparameters that are not Adam's defaults. Shapes: every tensor (B, L), float64.
    """
    def run(fn):
        g = torch.Generator().manual_seed(9)
        param, grads = torch.randn(B, L, generator=g, dtype=torch.float64), gradients(g)
        states = torch_adam(param, grads, HYPER)
        axes = {B: "row", L: "column"}
        # the later steps first: at t = 1, with m = v = 0, several mistakes give the same numbers
        for t in [*range(3, STEPS + 1), 1, 2]:
            grad, before, after = grads[t - 1], states[t - 1], states[t]
            got = answer(fn, before[0], grad, before[1], before[2], t, *HYPER.values())
            if not isinstance(got, (tuple, list)) or len(got) != 3:
                raise Fail(f"returned {type(got).__name__}; return the three new tensors (param, m, v), in that order")
            if in_another_order(got, after):
                raise Fail("returns the new param, m and v in another order; return them as (param, m, v)")
            wrong = mistakes(*before[:1], grad, *before[1:], t, HYPER)
            at = f" (at step t = {t})"
            for name, i, nonfinite in (("m", 1, "m is an average of finite gradients"),
                                       ("v", 2, "v is an average of finite squared gradients"),
                                       ("param", 0, "a finite gradient gives a finite step: eps goes in the "
                                        "denominator, sqrt(v_hat) + eps, so a gradient of 0 takes no step; the "
                                        "corrections divide by 1 - beta ** t with t from 1")):
                try:
                    compare(got[i], after[i], axes, wrong[name], nonfinite, rtol=1e-7, atol=1e-12)
                except Fail as err:
                    raise Fail(f"the new {name}: {err}{at}") from None
        return (f"the same (param, m, v) as torch.optim.Adam at steps t = 1 to {STEPS}, on gradients from 10 "
                f"down to 1e-6 and one always 0")
    return report(fn, run, adam_step)
