"""Checkers for Notebook 3, the reparametrisation trick."""

from __future__ import annotations

import warnings

import torch

from .core import CheckResult, B, L, Fail, answer, call, compare, normal_inputs, report, shape_text


def rsample_tril(mu: torch.Tensor, scale_tril: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The reference: z = mu + scale_tril @ eps per example. Shapes: (B, L), (B, L, L), (B, L) -> (B, L)."""
    return mu + (scale_tril @ eps.unsqueeze(-1)).squeeze(-1)


def check_rsample_tril(fn) -> CheckResult:
    """fn(mu, scale_tril, eps) -> z = mu + scale_tril @ eps per example: a reparametrised draw of
    N(mu, scale_tril scale_tril^T), with gradients reaching mu and scale_tril.

    Shapes: (B, L), (B, L, L), (B, L) -> (B, L).
    """
    def run(fn):
        mu, _, eps = normal_inputs(2)
        g = torch.Generator().manual_seed(8)
        tril = torch.randn(B, L, L, generator=g).tril()
        tril.diagonal(dim1=-2, dim2=-1).copy_(torch.rand(B, L, generator=g) + 0.5)  # a Cholesky factor
        ref = mu + (tril @ eps.unsqueeze(-1)).squeeze(-1)
        try:
            got, again = (answer(fn, mu, tril, eps) for _ in range(2))
        except Fail as err:
            one_draw_at_a_time(fn, mu, tril, eps, f"it raised an error on the batch ({err})")
            raise
        if isinstance(got, torch.Tensor) and got.shape != ref.shape:
            one_draw_at_a_time(fn, mu, tril, eps, f"on the batch it returned shape {shape_text(got.shape)}, "
                                                  f"expected {shape_text(ref.shape)}")
        if isinstance(got, torch.Tensor) and isinstance(again, torch.Tensor) and got.shape == again.shape \
                and not torch.allclose(got, again, equal_nan=True):
            raise Fail("gives a different z for the same inputs: it draws its own noise; use the eps given")
        compare(got, ref, {B: "batch", L: "latent"}, {
            "multiplies by the transpose of scale_tril (scale_tril.mT @ eps, or eps as a row times scale_tril): "
            "z = mu + scale_tril @ eps, with eps as a column":
                mu + (tril.transpose(-1, -2) @ eps.unsqueeze(-1)).squeeze(-1),
            "uses the covariance C C^T where its square root C = scale_tril belongs: z = mu + C eps":
                mu + (tril @ tril.transpose(-1, -2) @ eps.unsqueeze(-1)).squeeze(-1),
            "uses only the diagonal of scale_tril: the off-diagonal entries correlate the dimensions":
                mu + tril.diagonal(dim1=-2, dim2=-1) * eps,
            "mu is missing": (tril @ eps.unsqueeze(-1)).squeeze(-1),
        }, "every entry is finite here")
        mu, tril = mu.clone().requires_grad_(), tril.clone().requires_grad_()
        z = call(fn, mu, tril, eps.clone())
        if not z.requires_grad:
            raise Fail("z carries no gradient: do not use .detach(), .data, .item() or torch.no_grad() inside")
        weights = torch.randn(B, L, generator=g)
        (z * weights).sum().backward()
        expected = weights.unsqueeze(-1) * eps.unsqueeze(-2)  # dz_i / dL_ij = eps_j
        if mu.grad is None or not torch.allclose(mu.grad, weights, atol=1e-5) or tril.grad is None or \
                not torch.allclose(tril.grad.tril(), expected.tril(), atol=1e-5):
            raise Fail("the gradient does not reach mu and scale_tril correctly: build z from them with no "
                        ".detach() and no sampling inside")
        return "z = mu + scale_tril @ eps, and autograd reaches mu and scale_tril"
    return report(fn, run, rsample_tril)


def one_draw_at_a_time(fn, mu, tril, eps, what: str) -> None:
    """Where fn fails on the batch, try it on one draw at a time (mu (L,), scale_tril (L, L), eps (L,)): an answer
    right there is right for one draw and wrong only in how it batches, the usual trouble of eps @ scale_tril.mT
    (a row vector's form) or .T; say so. Return quietly otherwise."""
    single, transposed = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # .T on a batch of matrices warns
        for i in range(B):
            try:
                z = answer(fn, mu[i], tril[i], eps[i])
            except Fail:
                return
            if not isinstance(z, torch.Tensor) or z.shape != mu[i].shape:
                return
            z = z.detach().double()
            single.append(torch.allclose(z, (mu[i] + tril[i] @ eps[i]).double(), rtol=1e-4, atol=1e-4))
            transposed.append(torch.allclose(z, (mu[i] + tril[i].T @ eps[i]).double(), rtol=1e-4, atol=1e-4))
    batching = ("with a batch, `@` takes eps (B, L) as one matrix, not as B vectors, and .T on the (B, L, L) "
                "scale_tril reverses all three axes. Make each eps a column, eps.unsqueeze(-1) of shape (B, L, 1), "
                "multiply scale_tril by it, and drop that last axis again (.squeeze(-1)); to transpose a batch of "
                "matrices use .mT, not .T")
    if all(single):
        raise Fail(f"right for one draw (mu (L,), scale_tril (L, L), eps (L,)), but {what}: {batching}")
    if all(transposed):
        raise Fail(f"for one draw it multiplies by the transpose of scale_tril (eps @ scale_tril is scale_tril^T "
                   f"eps; z = mu + scale_tril @ eps), and {what}: {batching}")


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The reference: z = mu + exp(logvar / 2) * eps, a draw of N(mu, diag(exp(logvar))) that gradients flow
    through. Shapes: (B, L), (B, L), (B, L) -> (B, L)."""
    return mu + (0.5 * logvar).exp() * eps


def check_reparameterize(fn) -> CheckResult:
    """fn(mu, logvar, eps) -> z = mu + sigma * eps with sigma = exp(logvar / 2): a reparametrised draw of
    N(mu, diag(sigma^2)) from the given eps ~ N(0, I), with gradients reaching mu and logvar.

    Shapes: (B, L), (B, L), (B, L) -> (B, L). [Kingma & Welling 2014, Sec. 2.4]
    """
    def run(fn):
        mu, logvar, eps = normal_inputs(6)  # logvar from -3 to 2: sigma from 0.22 to 2.7, so no power of it is 1
        std = (0.5 * logvar).exp()
        got, again = (answer(fn, mu, logvar, eps) for _ in range(2))
        if isinstance(got, torch.Tensor) and isinstance(again, torch.Tensor) and got.shape == again.shape \
                and not torch.allclose(got, again, equal_nan=True):
            raise Fail("gives a different z for the same inputs: it draws its own noise; use the eps given, so that "
                       "the draw is reproducible and the same noise can be compared across estimators")
        compare(got, mu + std * eps, {B: "batch", L: "latent"}, {
            "multiplies eps by the variance exp(logvar); the standard deviation is its square root, exp(logvar / 2)":
                mu + logvar.exp() * eps,
            "uses logvar as the standard deviation: logvar is log sigma^2, so sigma = exp(logvar / 2)":
                mu + logvar * eps,
            "multiplies by 1 / sigma = exp(-logvar / 2): sigma = exp(+logvar / 2)": mu + (-0.5 * logvar).exp() * eps,
            "mu is missing: z = mu + sigma * eps": std * eps,
            "sigma is missing: eps ~ N(0, I) must be scaled by sigma = exp(logvar / 2)": mu + eps,
            "adds sigma instead of multiplying eps by it: z = mu + sigma * eps": mu + std + eps,
            "scales mu by sigma too: only eps is scaled, z = mu + sigma * eps": std * (mu + eps),
        }, "logvar is negative for some inputs (it is log sigma^2, any real number): its square root or log is nan; "
           "sigma = exp(logvar / 2)")
        mu_g, logvar_g = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
        z = call(fn, mu_g, logvar_g, eps.clone())
        if not z.requires_grad:
            raise Fail("z carries no gradient: do not use .detach(), .data, .item(), .sample() or torch.no_grad() "
                       "inside")
        weights = torch.randn(B, L, generator=torch.Generator().manual_seed(7))
        (z * weights).sum().backward()
        for name, grad, expected in (("mu", mu_g.grad, weights), ("logvar", logvar_g.grad, weights * 0.5 * std * eps)):
            if grad is None or not torch.allclose(grad, expected, rtol=1e-4, atol=1e-5):
                raise Fail(f"z is right but the gradient does not reach {name}: build z from mu and logvar "
                           f"themselves, with no .detach() inside (dz/dmu = 1, dz/dlogvar = sigma * eps / 2)")
        return "z = mu + exp(logvar / 2) * eps, and autograd reaches mu and logvar"
    return report(fn, run, reparameterize)
