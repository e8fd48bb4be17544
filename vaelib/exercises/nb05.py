"""Checkers for Notebook 5, the latent space drawn."""

from __future__ import annotations

import torch

from .core import CheckResult, K, L, Fail, answer, compare, report, shape_text


def interpolate(z_a: torch.Tensor, z_b: torch.Tensor, n: int) -> torch.Tensor:
    """The reference: n evenly spaced points from z_a to z_b, both ends included. Shapes: (L,), (L,) -> (n, L)."""
    return torch.lerp(z_a, z_b, torch.linspace(0, 1, n, dtype=z_a.dtype, device=z_a.device).unsqueeze(1))


def interpolation_mistakes(z_a: torch.Tensor, z_b: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
    """The usual wrong answers, written out independently of the reference, each with what to change."""
    t = torch.linspace(0, 1, n, dtype=torch.float64).unsqueeze(1)  # (n, 1)
    z_a, z_b = z_a.double(), z_b.double()
    inner = torch.linspace(0, 1, n + 2, dtype=torch.float64)[1:-1].unsqueeze(1)
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    return {
        "runs from z_b to z_a; the first point must be z_a": (1 - t) * z_b + t * z_a,
        "leaves out z_b: torch.arange(n) / n stops short of 1, torch.linspace(0, 1, n) includes both ends":
            z_a + k / n * (z_b - z_a),
        "leaves out z_a: the weights start at 1 / n, not at 0; torch.linspace(0, 1, n) includes both ends":
            z_a + (k + 1) / n * (z_b - z_a),
        "leaves out both end points: torch.linspace(0, 1, n) includes them": (1 - inner) * z_a + inner * z_b,
        "returns z_a + t * z_b; the point at t is (1 - t) * z_a + t * z_b": z_a + t * z_b,
        "returns (1 - t) * z_a + t * (z_b - z_a): z_b - z_a is the step, so add it to z_a alone, "
        "z_a + t * (z_b - z_a)": (1 - t) * z_a + t * (z_b - z_a),
    }


def check_points(got, z_a: torch.Tensor, z_b: torch.Tensor, n: int) -> None:
    """Fail with the diagnosis unless got is the n points from z_a to z_b."""
    if isinstance(got, (list, tuple)):
        raise Fail(f"returned a {type(got).__name__} of points; make it one tensor of shape "
                   f"{shape_text((n, len(z_a)))} with torch.stack(points)")
    ref = interpolate(z_a.double(), z_b.double(), n)
    if isinstance(got, torch.Tensor) and got.dim() == 2 and got.shape == ref.T.shape != ref.shape:
        raise Fail(f"returned shape {shape_text(got.shape)}, one column per point; expected {shape_text(ref.shape)}, "
                   f"one row per point: stack the points along dim 0, or transpose")
    if isinstance(got, torch.Tensor) and got.dim() == 2 and got.shape[0] == n and got.shape[1] != len(z_a):
        raise Fail(f"returned {got.shape[1]} coordinates per point for codes of {len(z_a)}: combine the whole "
                   f"vectors z_a and z_b, not a fixed number of their coordinates")
    if isinstance(got, torch.Tensor) and got.dim() == 2 and got.shape[0] != n and got.shape[1] == len(z_a):
        raise Fail(f"returned {got.shape[0]} points for n = {n}: the number of points is the argument n")
    compare(got, ref, {n: "point", len(z_a): "latent"}, interpolation_mistakes(z_a, z_b, n),
            "every point between two finite codes is finite", rtol=1e-5, atol=1e-5)


def check_interpolate(fn) -> CheckResult:
    """fn(z_a, z_b, n) -> n points evenly spaced on the segment from z_a to z_b, both ends included.

    Shapes: (L,), (L,), n -> (n, L): one row per point, the first z_a, the last z_b. It runs twice: with
    L = 3 and n = 7, and with the notebook's L = 2 and n = 10, on codes far apart and far from 0 (a wrong
    formula that agrees with the right one where z_a = 0 is caught), so that a size written into the answer
    fails one of the two.
    """
    def run(fn):
        g = torch.Generator().manual_seed(7)
        for size, n in ((L, K), (2, 10)):
            z_a = 3 * torch.randn(size, generator=g) + 2  # no coordinate near 0
            z_b = 3 * torch.randn(size, generator=g) - 2
            try:
                got = answer(fn, z_a, z_b, n)
            except Fail as wrong:
                raise Fail(f"{wrong}{explain(str(wrong))}") from None
            check_points(got, z_a, z_b, n)
        return f"n evenly spaced points from z_a to z_b, both ends included (n = {K} and 10, L = {L} and 2)"
    return report(fn, run, interpolate)


def explain(error: str) -> str:
    """A hint for the errors a first answer usually raises."""
    if "linspace" in error:
        return " (torch.linspace takes numbers, not vectors: make the n weights t with it, then combine z_a and z_b)"
    if "must match the size" in error:
        return (" (t has shape (n,) and z_a (L,): give t a trailing axis, t[:, None] or t.unsqueeze(1), so that "
                "each row is one point)")
    return ""
