"""The exact log p(x) and the true posterior p(z|x) of a VAE with a 2-D latent space, by quadrature.

With L = 2 the integral p(x) = int p(x|z) p(z) dz can be summed on a square grid of points
z_g = (i h, j h), |i|, |j| <= a / h, of spacing h over [-a, a]^2 (the rectangle rule):

    log p(x) ~= logsumexp_g [log p(x|z_g) + log p(z_g)] + 2 log h

For a smooth integrand that vanishes at the edges of the grid the error falls faster than any power
of h, so a few hundred points per axis give log p(x) to a thousandth of a nat. For Bernoulli pixels
log p(x|z) = x . logits(z) - sum_d softplus(logits_d(z)): decoding the G grid points once and one
(N, D) @ (D, G) matrix product give log p(x|z_g) for every image at every grid point.

The exact value is the yardstick for the bounds: log p(x) - ELBO = KL(q(z|x) || p(z|x))
[Kingma & Welling 2014, eq. 1], and IWAE_K rises towards log p(x) [Burda et al. 2016].
Every function takes a 2-D VAE or, in its place, any function log_px_z(x, z) -> (N, G), such as a
Gaussian decoder whose log p(x) the tests know in closed form.
"""

from __future__ import annotations

import math
import time
import warnings
from functools import reduce

import torch
import torch.nn.functional as F
from torch import nn

from .elbo import log_normal
from .model import require_2d

IMAGE_BLOCK = 2048  # images per matrix product: memory is IMAGE_BLOCK * chunk floats
GRID_CHUNK = 4096  # grid points decoded at a time


def bernoulli_log_px_z(model: nn.Module):
    """The function (x, z) -> log p(x|z) of a 2-D VAE, for every image at every grid point.

    log p(x_n|z_g) = sum_d x_nd l_gd - softplus(l_gd), l = model.decode(z): one matrix product.
    Shapes of the function: (N, D), (G, 2) -> (N, G).
    """
    require_2d(model, "exact log p(x) by quadrature",
               ", or estimate log p(x) with the importance-weighted bound (vaelib.train.per_image_iwae)")

    def log_px_z(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        logits = model.decode(z)  # (G, D)
        return x @ logits.T - F.softplus(logits).sum(-1)

    return log_px_z


def likelihood(model):
    """log p(x|z) as a function of (x, z-grid): the VAE's Bernoulli one, or `model` itself."""
    return bernoulli_log_px_z(model) if isinstance(model, nn.Module) else model


def grid_axis(half_width: float, spacing: float, like: torch.Tensor) -> torch.Tensor:
    """The points i * h, |i| <= a / h, of one axis, with the dtype and device of `like`. Shape: (G,)."""
    n = int(half_width / spacing + 1e-6)  # 7.5 / 0.025 is 299.99999999999994 in floating point
    return torch.arange(-n, n + 1, dtype=like.dtype, device=like.device) * spacing


def grid_points(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """All points (z1[j], z2[i]), i over rows: row-major in (z2, z1). Shapes: (G1,), (G2,) -> (G2 * G1, 2)."""
    Z2, Z1 = torch.meshgrid(z2, z1, indexing="ij")
    return torch.stack([Z1, Z2], -1).reshape(-1, 2)


def log_joint_chunks(log_px_z, x: torch.Tensor, z: torch.Tensor, chunk: int | None):
    """log p(x, z_g) = log p(x|z_g) + log p(z_g), `chunk` grid points at a time. Yields (N, chunk)."""
    chunk = chunk or GRID_CHUNK
    for start in range(0, len(z), chunk):
        z_chunk = z[start:start + chunk]
        yield log_px_z(x, z_chunk) + log_normal(z_chunk)


def logsumexp_joint(log_px_z, x: torch.Tensor, z: torch.Tensor, chunk: int | None) -> torch.Tensor:
    """logsumexp_g log p(x, z_g) over the points z, one chunk at a time. Shapes: (N, D), (G, 2) -> (N,)."""
    return reduce(torch.logaddexp, (torch.logsumexp(part, 1) for part in log_joint_chunks(log_px_z, x, z, chunk)))


@torch.no_grad()
def quadrature_log_px(log_px_z, x: torch.Tensor, half_width: float, spacing: float,
                      chunk: int | None = None) -> torch.Tensor:
    """logsumexp_g log p(x, z_g) + 2 log h over the grid on [-a, a]^2, blockwise in images and points.

    A running logsumexp keeps memory at IMAGE_BLOCK * chunk floats for any grid. Shapes: (N, D) -> (N,).
    """
    axis = grid_axis(half_width, spacing, x)
    z = grid_points(axis, axis)
    blocks = [logsumexp_joint(log_px_z, x[i:i + IMAGE_BLOCK], z, chunk) for i in range(0, len(x), IMAGE_BLOCK)]
    return torch.cat(blocks) + 2 * math.log(spacing)


def log_px_grid(model, x: torch.Tensor, half_width: float = 6.0, spacing: float = 0.025,
                chunk: int | None = None) -> torch.Tensor:
    """Exact log p(x) in nats of every image by quadrature on a grid of spacing h over [-a, a]^2.

    model: a VAE with z_dim = 2, or a function log_px_z(x, z) -> (N, G). chunk: grid points per
    block (memory is at most IMAGE_BLOCK * chunk floats). Shapes: (N, D) -> (N,).
    """
    return quadrature_log_px(likelihood(model), x, half_width, spacing, chunk)


def converged_log_px(model, x: torch.Tensor, tol: float = 0.01, half_width: float = 6.0,
                     spacing: float = 0.05, max_refinements: int = 4, widen: float = 1.25):
    """log p(x) on grids made finer and wider until the mean over images moves by less than `tol` nats.

    Each refinement halves the spacing h and multiplies the half-width a by `widen` (about 5 times the
    grid points); the estimates of the last grid are returned with a JSON-serialisable report:
    half_width, spacing, grid_points, refinements, mean_change (|change of the mean|, nats),
    max_image_change, converged, mean_log_px, seconds. Shapes: (N, D) -> (N,), dict.
    """
    if max_refinements < 1:
        raise ValueError(f"max_refinements must be at least 1 to check convergence, got {max_refinements}")
    started, log_px_z = time.perf_counter(), likelihood(model)
    log_px = quadrature_log_px(log_px_z, x, half_width, spacing)
    for refinement in range(1, max_refinements + 1):
        previous, half_width, spacing = log_px, half_width * widen, spacing / 2
        log_px = quadrature_log_px(log_px_z, x, half_width, spacing)
        change = (log_px.mean() - previous.mean()).abs().item()
        if change < tol:
            break
    if change >= tol:
        warnings.warn(f"log p(x) by quadrature did not converge to {tol} nats in {max_refinements} "
                      f"refinements (last change {change:.4f} nats)")
    report = dict(half_width=half_width, spacing=spacing, grid_points=len(grid_axis(half_width, spacing, x)) ** 2,
                  refinements=refinement, mean_change=change, max_image_change=(log_px - previous).abs().max().item(),
                  converged=change < tol, mean_log_px=log_px.mean().item(), seconds=time.perf_counter() - started)
    return log_px, report


@torch.no_grad()
def posterior_grid(model, x: torch.Tensor, half_width: float = 4.0, spacing: float = 0.05,
                   chunk: int | None = None):
    """The true posterior density log p(z|x) = log p(x, z) - log p(x) on a grid over [-a, a]^2.

    Normalised on the grid: sum_ij exp(log_post[n, i, j]) h^2 = 1. Entry [n, i, j] is at the point
    z = (z1[j], z2[i]): rows follow the second latent coordinate, as plt.contour(z1, z2, log_post[n])
    expects. Shapes: (N, D) -> log_post (N, G, G), z1 (G,), z2 (G,).
    """
    z1 = z2 = grid_axis(half_width, spacing, x)
    log_joint = torch.cat(list(log_joint_chunks(likelihood(model), x, grid_points(z1, z2), chunk)), 1)
    log_post = log_joint - torch.logsumexp(log_joint, 1, keepdim=True) - 2 * math.log(spacing)
    return log_post.reshape(len(x), len(z2), len(z1)), z1, z2
