"""Checkers for the notebooks' exercises: a student's function against vaelib's reference.

`check_kl(my_kl)` runs `my_kl` on random inputs, compares it with vaelib's implementation and
prints one line: a tick when it agrees, otherwise a cross and what is wrong: not implemented yet,
an error, the shape (a reduction over the wrong axis), or a known mistake recognised by comparing
with a deliberately wrong variant (the sign, a missing term or factor, std where logvar is meant).
A checker never raises, so a student notebook runs top to bottom; it returns a `CheckResult`,
true when the function passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .elbo import bernoulli_log_likelihood, kl_standard_normal
from .model import reparameterize

B, L, D, K = 5, 3, 6, 7  # distinct sizes, so that a wrong shape tells which axis was reduced


@dataclass
class CheckResult:
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self):
        """The checker has printed the message already; a notebook shows nothing more."""


class _Fail(Exception):
    """What is wrong, as the sentence the student reads."""


def _report(fn, run) -> CheckResult:
    name = getattr(fn, "__name__", repr(fn))
    try:
        result = CheckResult(True, f"✓ {name} is correct: {run(fn)}")
    except _Fail as wrong:
        result = CheckResult(False, f"✗ {name}: {wrong}")
    except Exception as err:  # whatever the answer does, the notebook goes on
        result = CheckResult(False, f"✗ {name}: its result broke the check ({type(err).__name__}: {err})")
    print(result.message)
    return result


def _call(fn, *args):
    try:
        return fn(*args)
    except NotImplementedError as err:
        raise _Fail(f"not implemented yet. {err}".strip()) from None
    except Exception as err:  # the student's bug, reported rather than raised
        raise _Fail(f"raised {type(err).__name__}: {err}") from None


def _answer(fn, *args):
    """fn's result on copies of args, without autograd: an answer that edits its inputs in place
    cannot change the reference computed from them."""
    with torch.no_grad():
        return _call(fn, *(a.clone() if isinstance(a, torch.Tensor) else a for a in args))


def _shape(shape) -> str:
    return f"({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''})"


def _axes(names: list[str]) -> str:
    return f"{', '.join(names[:-1])} and {names[-1]} axes" if len(names) > 1 else f"{names[0]} axis"


def _compare(got, expected: torch.Tensor, axes: dict[int, str], mistakes: dict[str, torch.Tensor],
             nonfinite: str) -> None:
    """Raise _Fail with the diagnosis unless got equals expected. axes names the input's dims."""
    if not isinstance(got, torch.Tensor):
        raise _Fail(f"returned a value of type {type(got).__name__}, "
                    f"expected a tensor of shape {_shape(expected.shape)}")
    if got.shape != expected.shape:
        reduced = [axes[n] for n in axes if n not in got.shape]
        kept = [axes[n] for n in axes if n in got.shape and n not in expected.shape]
        why = [f"it {verb} over the {_axes(dims)}"
               for verb, dims in (("reduced", reduced), ("did not reduce", kept)) if dims]
        raise _Fail(f"returned shape {_shape(got.shape)}, expected {_shape(expected.shape)}"
                    + (": " + "; ".join(why) if why else ""))
    got = got.detach().double()
    if not torch.isfinite(got).all():
        raise _Fail(f"returned {got.flatten()[~torch.isfinite(got.flatten())][0].item()} where the answer is finite: "
                    f"{nonfinite}")
    if torch.allclose(got, expected.double(), rtol=1e-4, atol=1e-4):
        return
    for label, wrong in mistakes.items():
        if torch.allclose(got, wrong.double(), rtol=1e-4, atol=1e-4):
            raise _Fail(label)
    i = (got - expected).abs().argmax().item()
    raise _Fail(f"wrong values, and not a mistake this check knows: at element {i} expected "
                f"{expected.flatten()[i].item():.4f}, got {got.flatten()[i].item():.4f}")


def _normal_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mu = 1.5 * torch.randn(B, L, generator=g)
    logvar = torch.empty(B, L).uniform_(-3, 2, generator=g)  # negative too: logvar is not a variance
    return mu, logvar, torch.randn(B, L, generator=g)


def check_kl(fn) -> CheckResult:
    """fn(mu, logvar) -> KL(N(mu, exp(logvar)) || N(0, I)) per example. Shapes: (B, L), (B, L) -> (B,)."""
    def run(fn):
        mu, logvar, _ = _normal_inputs()
        ref = kl_standard_normal(mu, logvar)
        per_dim = 0.5 * (logvar.exp() + mu**2 - 1 - logvar)
        got = _answer(fn, mu, logvar)
        _compare(got, ref, {B: "batch", L: "latent"}, {
            "wrong sign: the KL is >= 0; it is E_q[log q(z) - log p(z)], not log p - log q": -ref,
            "twice the KL: the factor 0.5 is missing": 2 * ref,
            "averages over the latent dims (.mean(-1)); the KL sums over them (.sum(-1))": per_dim.mean(-1),
            "the -1 term is missing (without it the KL of q = p is not 0)": ref + 0.5 * L,
            "the -logvar term is missing": ref + 0.5 * logvar.sum(-1),
            "the mu^2 term is missing": ref - 0.5 * (mu**2).sum(-1),
            "the sigma^2 = exp(logvar) term is missing": ref - 0.5 * logvar.exp().sum(-1),
            "uses logvar as if it were std: logvar is log sigma^2, so sigma^2 = exp(logvar)":
                0.5 * (logvar**2 + mu**2 - 1 - torch.log(logvar**2)).sum(-1),
            "uses exp(logvar) as std and squares it: exp(logvar) is already the variance sigma^2":
                0.5 * (torch.exp(2 * logvar) + mu**2 - 1 - 2 * logvar).sum(-1),
        }, "logvar is negative for some inputs, so do not take its log or square root: sigma^2 = exp(logvar)")
        return "matches vaelib.kl_standard_normal on random (mu, logvar), logvar < 0 included"
    return _report(fn, run)


def check_log_likelihood(fn) -> CheckResult:
    """fn(logits, x) -> log p(x|z) = sum_d log Bernoulli(x_d; sigmoid(logits_d)). Shapes: (B, D), (B, D) -> (B,)."""
    def run(fn):
        g = torch.Generator().manual_seed(1)
        x = torch.bernoulli(torch.full((B, D), 0.5), generator=g)
        for logits, nonfinite in (
            (3 * torch.randn(B, D, generator=g), "logits are log-odds, any real number, not probabilities: "
             "log(logits) or log(1 - logits) is NaN; use log sigmoid(l) = -softplus(-l), "
             "log(1 - sigmoid(l)) = -softplus(l)"),
            (150 * torch.randn(B, D, generator=g).sign(), "log(sigmoid(l)) and log(1 - sigmoid(l)) overflow at "
             "|l| = 150; use log sigmoid(l) = -softplus(-l) and log(1 - sigmoid(l)) = -softplus(l)"),
        ):
            ref = bernoulli_log_likelihood(logits, x)
            got = _answer(fn, logits, x)
            _compare(got, ref, {B: "batch", D: "pixel"}, {
                "wrong sign: this is the binary cross-entropy (a loss); return log p(x|z), which is <= 0": -ref,
                "averages over the pixels (.mean(-1)); log p(x|z) sums over them (.sum(-1))": ref / D,
                "the -softplus(logits) term (log(1 - sigmoid), the normaliser) is missing": (x * logits).sum(-1),
                "the (1 - x) log(1 - sigmoid(logits)) term is missing: pixels equal to 0 count too":
                    -(x * F.softplus(-logits)).sum(-1),
                "treats logits as probabilities (sigmoid applied twice); logits are log-odds, pass them as they are":
                    bernoulli_log_likelihood(torch.sigmoid(logits), x),
                "clamps at log 0 = -100 (the BCE of sigmoid probabilities); compute from the logits, "
                "log sigmoid(l) = -softplus(-l)":
                    -F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").sum(-1),
            }, nonfinite)
        return "matches vaelib.bernoulli_log_likelihood, saturated logits (|l| = 150) included"
    return _report(fn, run)


def check_reparameterize(fn) -> CheckResult:
    """fn(mu, logvar, eps) -> z = mu + exp(logvar / 2) * eps, with gradients reaching mu and logvar.

    Shapes: (B, L), (B, L), (B, L) -> (B, L).
    """
    def run(fn):
        mu, logvar, eps = _normal_inputs(2)
        ref = reparameterize(mu, logvar, eps)
        got, again = (_answer(fn, mu, logvar, eps) for _ in range(2))
        if isinstance(got, torch.Tensor) and isinstance(again, torch.Tensor) and got.shape == again.shape \
                and not torch.allclose(got, again, equal_nan=True):
            raise _Fail("gives a different z for the same inputs: it draws its own noise; use the eps given")
        _compare(got, ref, {B: "batch", L: "latent"}, {
            "uses exp(logvar) as std; logvar is log sigma^2, so sigma = exp(0.5 * logvar)": mu + logvar.exp() * eps,
            "uses logvar as std; sigma = exp(0.5 * logvar)": mu + logvar * eps,
            "subtracts the noise; z = mu + sigma * eps": mu - torch.exp(0.5 * logvar) * eps,
            "mu is missing: z = mu + sigma * eps": torch.exp(0.5 * logvar) * eps,
            "eps is missing, or replaced by fresh noise: use the eps given": mu + torch.exp(0.5 * logvar),
        }, "logvar is negative for some inputs, so do not take its log or square root: sigma = exp(0.5 * logvar)")
        weights = torch.randn(B, L, generator=torch.Generator().manual_seed(3))
        expected_grads = {"mu": weights, "logvar": weights * 0.5 * (ref - mu)}  # dz/dlogvar = sigma * eps / 2
        mu, logvar = mu.requires_grad_(), logvar.requires_grad_()
        z = _call(fn, mu, logvar, eps)
        if not z.requires_grad:
            raise _Fail("z carries no gradient: do not use .detach(), .data, .item() or torch.no_grad() inside")
        (z * weights).sum().backward()
        for name, grad in (("mu", mu.grad), ("logvar", logvar.grad)):
            expected = expected_grads[name]
            if grad is None or not torch.allclose(grad, expected, rtol=1e-4, atol=1e-5):
                raise _Fail(f"the gradient does not reach {name} correctly: build z from mu and logvar themselves, "
                            f"with no .detach() and no sampling inside")
        return "z = mu + exp(logvar / 2) * eps, and autograd reaches mu and logvar"
    return _report(fn, run)


def check_elbo(fn) -> CheckResult:
    """fn(logits, x, mu, logvar) -> ELBO = log p(x|z) - KL(q(z|x) || p(z)) per example.

    Shapes: (B, D), (B, D), (B, L), (B, L) -> (B,).
    """
    def run(fn):
        g = torch.Generator().manual_seed(4)
        x, logits = torch.bernoulli(torch.full((B, D), 0.5), generator=g), 3 * torch.randn(B, D, generator=g)
        mu, logvar, _ = _normal_inputs(5)
        log_px_z, kl = bernoulli_log_likelihood(logits, x), kl_standard_normal(mu, logvar)
        got = _answer(fn, logits, x, mu, logvar)
        _compare(got, log_px_z - kl, {B: "batch", D: "pixel", L: "latent"}, {
            "returns the loss -ELBO; return the ELBO (the loss is -elbo.mean())": kl - log_px_z,
            "adds the KL; the ELBO subtracts it": log_px_z + kl,
            "the KL term is missing": log_px_z,
            "the log-likelihood term is missing": -kl,
        }, "see check_log_likelihood and check_kl for the two terms")
        return "log p(x|z) - KL, one value per example"
    return _report(fn, run)


def check_iwae(fn) -> CheckResult:
    """fn(log_w) -> log (1/K) sum_k exp(log_w[k]), computed stably. Shapes: (K, B) -> (B,)."""
    def run(fn):
        g = torch.Generator().manual_seed(6)
        for log_w in (torch.randn(K, B, generator=g), torch.randn(K, B, generator=g) - 800):
            ref = torch.logsumexp(log_w, 0) - math.log(K)
            got = _answer(fn, log_w)
            _compare(got, ref, {K: "sample (K)", B: "batch"}, {
                "the - log K is missing: that is the log of the sum of the weights, not of their mean":
                    torch.logsumexp(log_w, 0),
                "averages the log weights: that is the ELBO estimate, below the bound by Jensen's inequality":
                    log_w.mean(0),
                "takes the largest log weight only": log_w.max(0).values,
            }, "exp(log_w) underflows for log weights near -800; use torch.logsumexp(log_w, 0) - log K")
        return "log-mean-exp over the K samples, stable at log weights near -800"
    return _report(fn, run)


def check_interpolate(fn) -> CheckResult:
    """fn(z_a, z_b, n) -> n points evenly spaced on the segment from z_a to z_b, both ends included.

    Shapes: (L,), (L,), n -> (n, L): one row per point, the first z_a, the last z_b.
    """
    def run(fn):
        g = torch.Generator().manual_seed(7)
        z_a, z_b = torch.randn(L, generator=g), torch.randn(L, generator=g)
        t = torch.linspace(0, 1, K).unsqueeze(1)
        ref = (1 - t) * z_a + t * z_b
        got = _answer(fn, z_a, z_b, K)
        if isinstance(got, torch.Tensor) and got.shape == ref.T.shape != ref.shape:
            raise _Fail(f"returned shape {_shape(got.shape)}, one column per point; expected {_shape(ref.shape)}, "
                        f"one row per point: stack the points along dim 0, or transpose")
        inner = torch.linspace(0, 1, K + 2)[1:-1].unsqueeze(1)
        _compare(got, ref, {K: "point", L: "latent"}, {
            "runs from z_b to z_a; the first point must be z_a": ref.flip(0),
            "leaves out z_b: torch.arange(n) / n stops short of 1, torch.linspace(0, 1, n) includes both ends":
                z_a + torch.arange(K).unsqueeze(1) / K * (z_b - z_a),
            "leaves out both end points: torch.linspace(0, 1, n) includes them":
                (1 - inner) * z_a + inner * z_b,
            "returns z_a + t * z_b; the point at t is (1 - t) * z_a + t * z_b": z_a + t * z_b,
        }, "every point between two finite codes is finite")
        return f"{K} evenly spaced points from z_a to z_b, both ends included"
    return _report(fn, run)
