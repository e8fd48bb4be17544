"""Checkers for Notebook 8, closing the gap."""

from __future__ import annotations

import math

import torch

from .core import CheckResult, B, L, Fail, answer, compare, report


def planar_log_det(z: torch.Tensor, u: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The reference: log |1 + u . psi(z)|, psi(z) = tanh'(w . z + b) w. Shapes: (B, L) x 3, (B,) -> (B,)."""
    psi = (1 - torch.tanh((z * w).sum(-1) + b).pow(2)).unsqueeze(-1) * w
    return torch.log((1 + (psi * u).sum(-1)).abs())


def planar_inputs(seed: int = 8):
    """z, u, w (B, L) and b (B,) for one planar layer per row, with w . u > -1 (u through vaelib's constraint).

    Wide enough to tell the usual mistakes apart: w . z + b runs from about -2 to 2, so tanh' (0.07 to 1) is
    neither tanh nor 1; b is not small, so leaving it out shows; and row 0 has w . u = -0.95, a determinant
    near 0.05, where a missing 1 or a wrong sign is far off.
    """
    from ..flows import constrained_u

    g = torch.Generator().manual_seed(seed)
    z, w = torch.randn(B, L, generator=g), torch.randn(B, L, generator=g)
    b = torch.linspace(-1.5, 1.5, B) + 0.1 * torch.randn(B, generator=g)
    raw = 2 * torch.randn(B, L, generator=g)
    raw[0] = math.log(math.expm1(0.05)) * w[0] / w[0].pow(2).sum()  # w . u_hat = softplus(w . raw) - 1 = -0.95
    return z, constrained_u(raw, w), w, b


def name_nan_mistake(got, mistakes: dict) -> None:
    """A mistake written without abs() takes the log of a negative number, nan: name it where the rest agrees."""
    if not isinstance(got, torch.Tensor) or got.shape != (B,) or torch.isfinite(got).all():
        return
    got = got.detach().double()
    for label, wrong in mistakes.items():
        finite = torch.isfinite(got)
        if finite.any() and torch.allclose(got[finite], wrong.double()[finite], rtol=1e-4, atol=1e-4):
            raise Fail(label + " (and where that quantity is negative its log is nan)")


def check_planar_log_det(fn) -> CheckResult:
    """fn(z, u, w, b) -> log |det df/dz| of one planar layer f(z) = z + u tanh(w . z + b), per row, with u
    already such that w . u > -1. Shapes: (B, L), (B, L), (B, L), (B,) -> (B,).

    The reference is the determinant of the Jacobian that autograd computes, row by row, not the formula.
    """
    def run(fn):
        z, u, w, b = planar_inputs()

        def f(zn, un, wn, bn):
            return zn + un * torch.tanh(zn @ wn + bn)

        jac = torch.stack([torch.autograd.functional.jacobian(lambda zn: f(zn, u[n], w[n], b[n]), z[n])
                           for n in range(B)])  # (B, L, L)
        ref = torch.linalg.slogdet(jac.double()).logabsdet
        a, uw = (z * w).sum(-1) + b, (u * w).sum(-1)  # (B,), (B,)
        slope = 1 - torch.tanh(a) ** 2  # tanh'(a)
        got = answer(fn, z, u, w, b)
        mistakes = {
            "the 1 + is missing: the Jacobian is I + u psi^T, and det(I + u psi^T) = 1 + psi . u":
                torch.log((uw * slope).abs()),
            "uses tanh(w . z + b) where its derivative, 1 - tanh^2, belongs: psi(z) = tanh'(w . z + b) w":
                torch.log((1 + uw * torch.tanh(a)).abs()),
            "uses 1 - tanh(w . z + b) as tanh's derivative; it is 1 - tanh^2": torch.log((1 + uw * (1 - torch.tanh(a))).abs()),
            "leaves tanh' out: psi(z) = tanh'(w . z + b) w, the chain rule's factor from the inner w . z + b":
                torch.log((1 + uw).abs()),
            "leaves b out of tanh's argument: the layer is tanh(w . z + b)":
                torch.log((1 + uw * (1 - torch.tanh((z * w).sum(-1)) ** 2)).abs()),
            "multiplies the diagonal of the Jacobian, which is not diagonal: det(I + u psi^T) = 1 + psi . u "
            "(the matrix determinant lemma)": torch.log((1 + u * w * slope[:, None]).abs()).sum(-1),
            "uses the trace of the Jacobian, L + psi . u, where its determinant, 1 + psi . u, belongs":
                torch.log((L + uw * slope).abs()),
            "takes psi . w where psi . u belongs: det(I + u psi^T) = 1 + psi . u, with the u of the layer":
                torch.log((1 + (w * w).sum(-1) * slope).abs()),
            "returns the determinant, not its log": (1 + uw * slope).abs(),
            "has the wrong sign: that is log |det| of the inverse map": -torch.log((1 + uw * slope).abs()),
        }
        name_nan_mistake(got, mistakes)
        compare(got, ref, {B: "batch", L: "latent"}, mistakes,
                "the determinant is positive when w . u > -1, so its log is finite")
        return "log |det| of the planar layer, equal to autograd's Jacobian determinant"
    return report(fn, run, planar_log_det)
