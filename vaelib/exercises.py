"""Checkers for the notebooks' exercises: a student's function against vaelib's reference.

`check_kl_normal(my_kl_normal)` runs `my_kl_normal` on random inputs, compares it with a reference and
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

from torch.distributions import Bernoulli, Normal, kl_divergence

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
    got = got.detach().to("cpu", torch.float64)  # on the CPU: Apple's MPS has no float64
    if not torch.isfinite(got).all():
        raise _Fail(f"returned {got.flatten()[~torch.isfinite(got.flatten())][0].item()} where the answer is finite: "
                    f"{nonfinite}")
    if torch.allclose(got, expected.to("cpu", torch.float64), rtol=1e-4, atol=1e-4):
        return
    for label, wrong in mistakes.items():
        if torch.allclose(got, wrong.to("cpu", torch.float64), rtol=1e-4, atol=1e-4):
            raise _Fail(label)
    i = (got - expected.to("cpu", torch.float64)).abs().argmax().item()
    raise _Fail(f"wrong values, and not a mistake this check knows: at element {i} expected "
                f"{expected.flatten()[i].item():.4f}, got {got.flatten()[i].item():.4f}")


def _normal_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mu = 1.5 * torch.randn(B, L, generator=g)
    logvar = torch.empty(B, L).uniform_(-3, 2, generator=g)  # negative too: logvar is not a variance
    return mu, logvar, torch.randn(B, L, generator=g)


def check_bernoulli_entropy(fn) -> CheckResult:
    """fn(logits) -> H = -sum_d [p_d log p_d + (1 - p_d) log(1 - p_d)], p = sigmoid(logits), per image.

    The entropy of p(x|z), minus the expected log-likelihood of the decoder's own samples. Shapes: (B, D) -> (B,).
    """
    def run(fn):
        g = torch.Generator().manual_seed(1)
        for logits, nonfinite in (
            (3 * torch.randn(B, D, generator=g), "logits are log-odds, any real number: do not take their log"),
            (150 * torch.randn(B, D, generator=g).sign(), "at |logit| = 150, sigmoid is exactly 0 or 1 and "
             "0 * log 0 is nan: write log p and log(1 - p) with softplus, from the logits"),
        ):
            ref = Bernoulli(logits=logits).entropy().sum(-1)
            p = torch.sigmoid(logits)
            got = _answer(fn, logits)
            _compare(got, ref, {B: "batch", D: "pixel"}, {
                "wrong sign: an entropy is >= 0; it is minus the expected log-probability": -ref,
                "averages over the pixels; the pixels are independent, so their entropies add up": ref / D,
                "only the p log p part: the outcome x = 0 has probability 1 - p and counts too":
                    -(p * F.logsigmoid(logits)).sum(-1),
                "applies sigmoid twice: p = sigmoid(logits), once":
                    Bernoulli(probs=torch.sigmoid(p)).entropy().sum(-1),
                "uses log 2 (a bit) where the answer is in nats: use the natural log": ref / math.log(2),
            }, nonfinite)
        return "matches torch.distributions.Bernoulli(logits).entropy(), saturated logits (|l| = 150) included"
    return _report(fn, run)


def check_kl_normal(fn) -> CheckResult:
    """fn(mu_q, logvar_q, mu_p, logvar_p) -> KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))) per example,
    summed over latent dims. Shapes: 4 x (B, L) -> (B,)."""
    def run(fn):
        mu_q, logvar_q, _ = _normal_inputs(0)
        mu_p, logvar_p, _ = _normal_inputs(9)
        q, p = (Normal(m, (0.5 * lv).exp()) for m, lv in ((mu_q, logvar_q), (mu_p, logvar_p)))
        ref = kl_divergence(q, p).sum(-1)
        per_dim = kl_divergence(q, p)
        got = _answer(fn, mu_q, logvar_q, mu_p, logvar_p)
        _compare(got, ref, {B: "batch", L: "latent"}, {
            "that is KL(p || q): the KL is not symmetric; the expectation is under q, the first argument":
                kl_divergence(p, q).sum(-1),
            "wrong sign: a KL is >= 0": -ref,
            "twice the KL: the factor 0.5 is missing": 2 * ref,
            "averages over the latent dims; the KL of independent dims is their sum": per_dim.mean(-1),
            "q's variance and (mu_q - mu_p)^2 must both be divided by p's variance, exp(logvar_p)":
                0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) - 1).sum(-1),
            "(mu_q - mu_p)^2 must be divided by p's variance too":
                0.5 * (logvar_p - logvar_q + logvar_q.exp() / logvar_p.exp() + (mu_q - mu_p) ** 2 - 1).sum(-1),
            "this is the KL to N(0, I): mu_p and logvar_p are not used":
                0.5 * (logvar_q.exp() + mu_q**2 - 1 - logvar_q).sum(-1),
        }, "logvar is negative for some inputs, so do not take its log or square root: sigma^2 = exp(logvar)")
        return "matches torch.distributions.kl_divergence(Normal, Normal), summed over the latent dims"
    return _report(fn, run)


def check_rsample_tril(fn) -> CheckResult:
    """fn(mu, scale_tril, eps) -> z = mu + scale_tril @ eps per example: a reparametrised draw of
    N(mu, scale_tril scale_tril^T), with gradients reaching mu and scale_tril.

    Shapes: (B, L), (B, L, L), (B, L) -> (B, L).
    """
    def run(fn):
        mu, _, eps = _normal_inputs(2)
        g = torch.Generator().manual_seed(8)
        tril = torch.randn(B, L, L, generator=g).tril()
        tril.diagonal(dim1=-2, dim2=-1).copy_(torch.rand(B, L, generator=g) + 0.5)  # a Cholesky factor
        ref = mu + (tril @ eps.unsqueeze(-1)).squeeze(-1)
        got, again = (_answer(fn, mu, tril, eps) for _ in range(2))
        if isinstance(got, torch.Tensor) and isinstance(again, torch.Tensor) and got.shape == again.shape \
                and not torch.allclose(got, again, equal_nan=True):
            raise _Fail("gives a different z for the same inputs: it draws its own noise; use the eps given")
        _compare(got, ref, {B: "batch", L: "latent"}, {
            "multiplies by the transpose of scale_tril (eps @ scale_tril, or scale_tril^T eps): z = mu + scale_tril @ eps":
                mu + (tril.transpose(-1, -2) @ eps.unsqueeze(-1)).squeeze(-1),
            "uses the covariance C C^T where its square root C = scale_tril belongs: z = mu + C eps":
                mu + (tril @ tril.transpose(-1, -2) @ eps.unsqueeze(-1)).squeeze(-1),
            "uses only the diagonal of scale_tril: the off-diagonal entries correlate the dimensions":
                mu + tril.diagonal(dim1=-2, dim2=-1) * eps,
            "mu is missing": (tril @ eps.unsqueeze(-1)).squeeze(-1),
        }, "every entry is finite here")
        mu, tril = mu.clone().requires_grad_(), tril.clone().requires_grad_()
        z = _call(fn, mu, tril, eps)
        if not z.requires_grad:
            raise _Fail("z carries no gradient: do not use .detach(), .data, .item() or torch.no_grad() inside")
        weights = torch.randn(B, L, generator=g)
        (z * weights).sum().backward()
        expected = weights.unsqueeze(-1) * eps.unsqueeze(-2)  # dz_i / dL_ij = eps_j
        if mu.grad is None or not torch.allclose(mu.grad, weights, atol=1e-5) or tril.grad is None or \
                not torch.allclose(tril.grad.tril(), expected.tril(), atol=1e-5):
            raise _Fail("the gradient does not reach mu and scale_tril correctly: build z from them with no "
                        ".detach() and no sampling inside")
        return "z = mu + scale_tril @ eps, and autograd reaches mu and scale_tril"
    return _report(fn, run)


def check_warmup_loss(fn) -> CheckResult:
    """fn(log_px_z, kl, step, warmup_steps) -> the loss with the KL term warmed up: beta = min(1, step /
    warmup_steps), loss = -mean_b(log_px_z - beta * kl). Shapes: (B,), (B,), int, int -> ()."""
    def run(fn):
        g = torch.Generator().manual_seed(10)
        log_px_z, kl = -100 - 50 * torch.rand(B, generator=g), 10 * torch.rand(B, generator=g)
        for step, warmup in ((0, 100), (25, 100), (100, 100), (450, 100)):
            beta = min(1.0, step / warmup)
            ref = -(log_px_z - beta * kl).mean()
            got = _answer(fn, log_px_z, kl, step, warmup)
            _compare(got, ref, {B: "batch"}, {
                "the weight is not capped at 1: after warm-up the loss is -ELBO": -(log_px_z - step / warmup * kl).mean(),
                "weights the reconstruction term instead of the KL": -(beta * log_px_z - kl).mean(),
                "the sign: the loss is minus the (weighted) ELBO": (log_px_z - beta * kl).mean(),
                "sums over the batch; the loss is a mean over the images": -(log_px_z - beta * kl).sum(),
                "the weight falls instead of rising: it goes from 0 at step 0 to 1 at warmup_steps":
                    -(log_px_z - (1 - beta) * kl).mean(),
            }, "every input is finite")
        return "beta = min(1, step / warmup_steps) on the KL term, checked at steps 0, 25, 100 and 450 with warmup_steps = 100"
    return _report(fn, run)


def check_collapsed_dims(fn) -> CheckResult:
    """fn(mu, logvar, threshold) -> the latent dims whose KL, averaged over the batch, is below threshold.

    A KL criterion for posterior collapse: mean_b 0.5 * (exp(logvar_bj) + mu_bj^2 - 1 - logvar_bj) < threshold.
    Shapes: (B, L), (B, L), float -> (L,) bool.
    """
    def run(fn):
        # dim 0: q = N(0, e^0.139) for every image, KL 0.00506: below both thresholds, its sum over the batch
        # (0.025) above both, and twice it (0.0101, without the factor 0.5) between them; dim 1: mu = 1 for
        # every image, no variance but KL 0.5: not collapsed; dim 2: mu spread widely: used by every criterion.
        g = torch.Generator().manual_seed(8)
        mu = torch.stack([torch.zeros(B), torch.ones(B), 3 * torch.randn(B, generator=g)], 1)
        spread = torch.empty(B).uniform_(-3, -1, generator=g)
        logvar = torch.stack([torch.full((B,), 0.139), torch.zeros(B), spread], 1)
        per_dim = 0.5 * (logvar.exp() + mu**2 - 1 - logvar)  # (B, L)
        for threshold in (0.012, 0.008):
            expected = per_dim.mean(0) < threshold
            got = _answer(fn, mu, logvar, threshold)
            if isinstance(got, torch.Tensor) and not (got.dtype == torch.bool or got.is_floating_point()) \
                    and got.shape != expected.shape:
                raise _Fail(f"returned the indices {got.tolist()}; return a boolean mask of shape "
                            f"{_shape(expected.shape)}, one entry per latent dimension (kl < threshold gives one)")
            _compare(got, expected, {B: "batch", L: "latent"}, {
                "the factor 0.5 of the KL is missing": (2 * per_dim).mean(0) < threshold,
                "sums the KL over the batch; average it over the batch (.mean(0)), so that the threshold "
                "does not depend on the batch size": per_dim.sum(0) < threshold,
                "uses the variance of mu over the batch (the active-unit criterion); the exercise asks for the "
                "mean KL: a dimension whose mu is constant but far from 0 is not free": mu.var(0) < threshold,
                "returns the dimensions above the threshold (the used ones); return those below it": ~expected,
            }, "the KL of each dimension is finite for finite mu and logvar")
            if isinstance(got, torch.Tensor) and got.dtype != torch.bool:
                raise _Fail(f"the right dimensions, but as a {got.dtype} tensor; return a boolean mask "
                            f"(kl < threshold)")
        return "one boolean per latent dimension: mean KL over the batch below the threshold"
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


def check_planar_log_det(fn) -> CheckResult:
    """fn(z, u, w, b) -> log |det df/dz| of one planar layer f(z) = z + u tanh(w . z + b), per row, with u
    already such that w . u > -1. Shapes: (B, L), (B, L), (B, L), (B,) -> (B,).

    The reference is the determinant of the Jacobian that autograd computes, row by row, not the formula.
    """
    def run(fn):
        from .flows import constrained_u

        g = torch.Generator().manual_seed(8)
        z, w = 0.4 * torch.randn(B, L, generator=g), torch.randn(B, L, generator=g)  # w . z + b near 0: tanh' near 1
        raw = 2 * torch.randn(B, L, generator=g)
        raw[0] = math.log(math.expm1(0.05)) * w[0] / w[0].pow(2).sum()  # w . u = -0.95: a determinant near 0.05
        u = constrained_u(raw, w)
        b = 0.3 * torch.randn(B, generator=g)

        def f(zn, un, wn, bn):
            return zn + un * torch.tanh(zn @ wn + bn)

        jac = torch.stack([torch.autograd.functional.jacobian(lambda zn: f(zn, u[n], w[n], b[n]), z[n])
                           for n in range(B)])  # (B, L, L)
        ref = torch.linalg.slogdet(jac.double()).logabsdet
        a = (z * w).sum(-1) + b
        uw = (u * w).sum(-1)
        got = _answer(fn, z, u, w, b)
        _compare(got, ref, {B: "batch", L: "latent"}, {
            "the 1 + is missing: the Jacobian is I + u psi^T, and det(I + u psi^T) = 1 + psi . u":
                torch.log((uw * (1 - torch.tanh(a) ** 2)).abs()),
            "uses tanh(w . z + b) where its derivative, 1 - tanh^2, belongs: psi(z) = tanh'(w . z + b) w":
                torch.log((1 + uw * torch.tanh(a)).abs()),
            "returns the determinant, not its log": (1 + uw * (1 - torch.tanh(a) ** 2)).abs(),
            "has the wrong sign: that is log |det| of the inverse map": -torch.log((1 + uw * (1 - torch.tanh(a) ** 2)).abs()),
        }, "the determinant is positive when w . u > -1, so its log is finite")
        return "log |det| of the planar layer, equal to autograd's Jacobian determinant"
    return _report(fn, run)
