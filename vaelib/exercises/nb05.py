"""Checkers for Notebook 5, the latent space drawn."""

from __future__ import annotations

import torch

from .core import CheckResult, K, L, Fail, answer, compare, report, shape_text


def interpolate(z_a: torch.Tensor, z_b: torch.Tensor, n: int) -> torch.Tensor:
    """The reference: n evenly spaced points from z_a to z_b, both ends included. Shapes: (L,), (L,) -> (n, L)."""
    return torch.lerp(z_a, z_b, torch.linspace(0, 1, n, dtype=z_a.dtype, device=z_a.device).unsqueeze(1))


def check_interpolate(fn) -> CheckResult:
    """fn(z_a, z_b, n) -> n points evenly spaced on the segment from z_a to z_b, both ends included.

    Shapes: (L,), (L,), n -> (n, L): one row per point, the first z_a, the last z_b.
    """
    def run(fn):
        g = torch.Generator().manual_seed(7)
        z_a, z_b = torch.randn(L, generator=g), torch.randn(L, generator=g)
        t = torch.linspace(0, 1, K).unsqueeze(1)
        ref = (1 - t) * z_a + t * z_b
        got = answer(fn, z_a, z_b, K)
        if isinstance(got, torch.Tensor) and got.shape == ref.T.shape != ref.shape:
            raise Fail(f"returned shape {shape_text(got.shape)}, one column per point; expected {shape_text(ref.shape)}, "
                        f"one row per point: stack the points along dim 0, or transpose")
        inner = torch.linspace(0, 1, K + 2)[1:-1].unsqueeze(1)
        compare(got, ref, {K: "point", L: "latent"}, {
            "runs from z_b to z_a; the first point must be z_a": ref.flip(0),
            "leaves out z_b: torch.arange(n) / n stops short of 1, torch.linspace(0, 1, n) includes both ends":
                z_a + torch.arange(K).unsqueeze(1) / K * (z_b - z_a),
            "leaves out both end points: torch.linspace(0, 1, n) includes them":
                (1 - inner) * z_a + inner * z_b,
            "returns z_a + t * z_b; the point at t is (1 - t) * z_a + t * z_b": z_a + t * z_b,
        }, "every point between two finite codes is finite")
        return f"{K} evenly spaced points from z_a to z_b, both ends included"
    return report(fn, run, interpolate)
