"""Checkers for Notebook 8, closing the gap."""

from __future__ import annotations

import math

import torch

from .core import CheckResult, B, L, answer, compare, report


def planar_log_det(z: torch.Tensor, u: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The reference: log |1 + u . psi(z)|, psi(z) = tanh'(w . z + b) w. Shapes: (B, L) x 3, (B,) -> (B,)."""
    psi = (1 - torch.tanh((z * w).sum(-1) + b).pow(2)).unsqueeze(-1) * w
    return torch.log((1 + (psi * u).sum(-1)).abs())


def check_planar_log_det(fn) -> CheckResult:
    """fn(z, u, w, b) -> log |det df/dz| of one planar layer f(z) = z + u tanh(w . z + b), per row, with u
    already such that w . u > -1. Shapes: (B, L), (B, L), (B, L), (B,) -> (B,).

    The reference is the determinant of the Jacobian that autograd computes, row by row, not the formula.
    """
    def run(fn):
        from ..flows import constrained_u

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
        got = answer(fn, z, u, w, b)
        compare(got, ref, {B: "batch", L: "latent"}, {
            "the 1 + is missing: the Jacobian is I + u psi^T, and det(I + u psi^T) = 1 + psi . u":
                torch.log((uw * (1 - torch.tanh(a) ** 2)).abs()),
            "uses tanh(w . z + b) where its derivative, 1 - tanh^2, belongs: psi(z) = tanh'(w . z + b) w":
                torch.log((1 + uw * torch.tanh(a)).abs()),
            "returns the determinant, not its log": (1 + uw * (1 - torch.tanh(a) ** 2)).abs(),
            "has the wrong sign: that is log |det| of the inverse map": -torch.log((1 + uw * (1 - torch.tanh(a) ** 2)).abs()),
        }, "the determinant is positive when w . u > -1, so its log is finite")
        return "log |det| of the planar layer, equal to autograd's Jacobian determinant"
    return report(fn, run, planar_log_det)
