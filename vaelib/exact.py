"""The exact log p(x) and the true posterior p(z|x) of a VAE with a 2-D latent space, by quadrature.

With L = 2, p(x) = int p(x|z) p(z) dz is summed on a square grid z_g = (i h, j h), |i|, |j| <= a / h, over
[-a, a]^2 (the rectangle rule): log p(x) ~= logsumexp_g [log p(x|z_g) + log p(z_g)] + 2 log h. Where the
integrand is smooth and vanishes at the grid's edges the error falls faster than any power of h [Trefethen &
Weideman 2014, SIAM Review 56(3)]; a ReLU decoder's kinks make it O(h^2) at worst; and while h is wider than
the posterior the sum is aliased. So the spacing is not taken on trust: `converged_log_px` halves h, image by
image and only where each image's mass lies, until the grid resolves every posterior and the estimate stops
moving. Decoding G points once and one (N, D) @ (D, G) product give the Bernoulli log p(x|z_g) of every image.

The exact value is the yardstick for the bounds: log p(x) - ELBO = KL(q(z|x) || p(z|x)) [Kingma & Welling
2014, eq. 1], and IWAE_K rises towards log p(x) [Burda et al. 2016]. Every function takes a 2-D model, whose
own prior p(z) it sums with, or a bare function log_px_z(x, z) -> (N, G) with N(0, I) (the tests' Gaussian
decoders, whose log p(x) is known in closed form).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from functools import reduce
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import threads
from .elbo import log_normal
from .model import require_2d

IMAGE_BLOCK = 2048  # images per matrix product: memory is IMAGE_BLOCK * chunk floats
GRID_CHUNK = 4096  # grid points per patch of tiles that `refine` scores at once (decoded DECODE_CHUNK at a time)
DECODE_CHUNK = 2048  # grid points through the decoder at once: a convolutional decoder's activations take
# some 20,000 floats per point (vaelib.conv), 160 MB for 2,048 points; the coarse grid has tens of thousands
TILE_BLOCK = 2**22  # floats of log p(x, z_g) that converged_log_px computes at once (16 MB, a few copies)
DROP_CUT = 10.0  # nats below an image's largest tile beyond which tiles are left out of its drop


def bernoulli_log_px_z(model: nn.Module):
    """The function (x, z) -> log p(x|z) of a 2-D model, for every image at every grid point (decoded_log_px_z of
    model.decode). Shapes of the function: (N, D), (G, 2) -> (N, G).
    """
    require_2d(model, "exact log p(x) by quadrature",
               ", or estimate log p(x) with the importance-weighted bound (vaelib.evaluate.per_image_iwae)")
    return decoded_log_px_z(model.decode)


def decoded_log_px_z(decode: Callable):
    """The function (x, z) -> log p(x|z) for a decoder `decode`: z (G, L) -> logits (G, D), for every image at every
    grid point: log p(x_n|z_g) = sum_d x_nd l_gd - softplus(l_gd), one matrix product, the grid decoded
    DECODE_CHUNK points at a time. Shapes of the function: (N, D), (G, L) -> (N, G).
    """

    def log_px_z(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        logits = torch.cat([decode(part) for part in z.split(DECODE_CHUNK)])  # (G, D)
        return x @ logits.T - F.softplus(logits).sum(-1)

    return log_px_z


class Integrand(NamedTuple):
    """log p(x, z) = log p(x|z) + log p(z), as its two terms."""
    log_px_z: Callable  # (N, D), (G, 2) -> (N, G)
    log_prior: Callable  # (G, 2) -> (G,)


def integrand(model) -> Integrand:
    """A model's Bernoulli log p(x|z) and its own prior; or a bare function log_px_z with the N(0, I) prior."""
    if isinstance(model, nn.Module):
        return Integrand(bernoulli_log_px_z(model), model.prior.log_prob)
    return Integrand(model, log_normal)


def grid_axis(half_width: float, spacing: float, like: torch.Tensor) -> torch.Tensor:
    """The points i * h, |i| <= a / h, of one axis, with the dtype and device of `like`. Shape: (G,)."""
    n = int(half_width / spacing + 1e-6)  # 7.5 / 0.025 is 299.99999999999994 in floating point
    return torch.arange(-n, n + 1, dtype=like.dtype, device=like.device) * spacing


def grid_points(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """All points (z1[j], z2[i]), i over rows: row-major in (z2, z1). Shapes: (G1,), (G2,) -> (G2 * G1, 2)."""
    Z2, Z1 = torch.meshgrid(z2, z1, indexing="ij")
    return torch.stack([Z1, Z2], -1).reshape(-1, 2)


def log_joint_chunks(f: Integrand, x: torch.Tensor, z: torch.Tensor, chunk: int | None):
    """log p(x, z_g) = log p(x|z_g) + log p(z_g), `chunk` grid points at a time. Yields (N, chunk)."""
    chunk = chunk or GRID_CHUNK
    for start in range(0, len(z), chunk):
        z_chunk = z[start:start + chunk]
        yield f.log_px_z(x, z_chunk) + f.log_prior(z_chunk)


@torch.no_grad()
def log_px_grid(model, x: torch.Tensor, half_width: float = 6.0, spacing: float = 0.025,
                chunk: int | None = None) -> torch.Tensor:
    """Exact log p(x) in nats of every image by the plain rectangle rule on a grid of spacing h over [-a, a]^2,
    every image at every grid point: the reference for `converged_log_px`. A running logsumexp, blockwise in
    images and in `chunk` grid points, keeps memory at IMAGE_BLOCK * chunk floats. model: a 2-D model, or a
    function log_px_z(x, z) -> (N, G). Shapes: (N, D) -> (N,).
    """
    f, axis = integrand(model), grid_axis(half_width, spacing, x)
    z = grid_points(axis, axis)
    blocks = [reduce(torch.logaddexp, (part.logsumexp(1) for part in log_joint_chunks(f, xb, z, chunk)))
              for xb in x.split(IMAGE_BLOCK)]
    return torch.cat(blocks) + 2 * math.log(spacing)


@torch.no_grad()
def posterior_grid(model, x: torch.Tensor, half_width: float = 4.0, spacing: float = 0.05,
                   chunk: int | None = None):
    """The true posterior density log p(z|x) = log p(x, z) - log p(x) on a grid over [-a, a]^2.

    Normalised on the grid: sum_ij exp(log_post[n, i, j]) h^2 = 1. Entry [n, i, j] is at the point
    z = (z1[j], z2[i]): rows follow the second latent coordinate, as plt.contour(z1, z2, log_post[n])
    expects. Shapes: (N, D) -> log_post (N, G, G), z1 (G,), z2 (G,).
    """
    z1 = z2 = grid_axis(half_width, spacing, x)
    log_joint = torch.cat(list(log_joint_chunks(integrand(model), x, grid_points(z1, z2), chunk)), 1)
    log_post = log_joint - torch.logsumexp(log_joint, 1, keepdim=True) - 2 * math.log(spacing)
    return log_post.reshape(len(x), len(z2), len(z1)), z1, z2


@dataclass(frozen=True)
class Tiling:
    """Tiles of m x m points on the grids of spacing h0 / 2^k, k = 0, 1, ..., over [-a, a]^2.

    The point (i h, j h) of level k lies in tile (i // m, j // m): integer arithmetic, so each point is
    in exactly one tile, and tile (t1, t2) covers the same square as tiles (2 t1 + {0, 1}, 2 t2 + {0, 1})
    of level k + 1. The tiles at the edge overhang [-a, a]; their points outside it count for nothing.
    """
    n: int  # coarse grid points i h0 per axis, |i| <= n = a / h0
    spacing: float  # h0, the coarse spacing
    size: int  # m, grid points per tile side at every level

    @classmethod
    def over(cls, half_width: float, spacing: float, size: int) -> "Tiling":
        """The tiling of [-a, a]^2; a / h0 must be a whole number, so that every level's grid ends at +-a."""
        n = round(half_width / spacing)
        if abs(n - half_width / spacing) > 1e-6 or n < 1:
            raise ValueError(f"half_width / spacing must be a positive whole number, got {half_width} / {spacing}")
        if size < 3:
            raise ValueError(f"tile_size must be at least 3, for three neighbouring points in a tile, got {size}")
        return cls(n, spacing, size)

    def h(self, level: int) -> float:
        return self.spacing / 2**level

    def tile_range(self, level: int) -> tuple[int, int]:
        """The first and the last tile index on an axis at this level."""
        n = self.n * 2**level
        return -n // self.size, n // self.size

    def points(self, tiles: torch.Tensor, level: int, like: torch.Tensor, log_prior: Callable = log_normal):
        """The grid points of each tile, and log p(z) there (-inf outside [-a, a]^2).

        Shapes: (T, 2) integer tiles -> z (T * m * m, 2), log_prior (T * m * m,).
        """
        offsets = torch.arange(self.size, device=tiles.device)
        index = (tiles[:, None, :] * self.size + grid_points(offsets, offsets)).reshape(-1, 2)
        z = index.to(like.dtype) * self.h(level)  # the very numbers that grid_axis gives
        return z, log_prior(z).masked_fill((index.abs() > self.n * 2**level).any(-1), -math.inf)

    def tile_log_mass(self, f: Integrand, x: torch.Tensor, tiles: torch.Tensor, level: int,
                      with_drop: bool = False):
        """log sum_{g in tile} p(x, z_g) h^2 for every image in every tile, and with `with_drop` each tile's
        drop (tile_drop) where its mass is within DROP_CUT nats of the image's largest among these tiles
        (nan elsewhere: such tiles would weigh less than e^-DROP_CUT each in the image's mean drop).
        Shapes: (N, D), (T, 2) -> (N, T) [, (N, T)]."""
        if x.device.type == "cpu":
            threads.check()  # the thread count fitted to the machine's load now (vaelib.threads)
        z, log_prior = self.points(tiles, level, x, f.log_prior)
        log_joint = (f.log_px_z(x, z) + log_prior).reshape(len(x), len(tiles), -1)  # (N, T, m * m)
        log_mass = torch.logsumexp(log_joint, -1) + 2 * math.log(self.h(level))
        if not with_drop:
            return log_mass
        heavy = log_mass >= log_mass.amax(1, keepdim=True) - DROP_CUT
        drop = torch.full_like(log_mass, math.nan)
        drop[heavy] = tile_drop(log_joint[heavy].reshape(-1, self.size, self.size))
        return log_mass, drop


def tile_drop(log_joint: torch.Tensor) -> torch.Tensor:
    """How sharply log p(x, z) bends inside each tile, in nats: its second difference over one grid step,
    h^2 times its curvature. Shapes: (N, T, m, m) values l at the points of each tile ([i, j] at
    z = corner + (j h, i h)) -> (N, T).

    For three neighbouring points z - h v, z, z + h v of a tile, along an axis (v = (1, 0), (0, 1)) or a
    diagonal (v = (1, 1), (1, -1)), the drop is -(l(z + h v) - 2 l(z) + l(z - h v)) / |v|^2, at least 0;
    the tile's is the largest over the four directions of the mean drop along it, weighted by the largest
    p(x, z) of each three points. If p(z|x) is Gaussian with covariance S, l is quadratic and every three
    points give exactly h^2 / s_v^2, s_v^2 = 1 / (u^T S^-1 u) with u = v / |v|: the width along v, read off
    exactly however coarse the grid and wherever the peak lies between its points (over four directions,
    at least 0.85 h^2 / s_min^2, s_min the sd along the narrowest direction). Points outside the grid (-inf)
    count for nothing; a tile with no three finite points has drop 0.
    """
    l = log_joint.flatten(0, -3).permute(1, 2, 0).contiguous()  # (m, m, N T): long rows, for speed
    p = torch.exp(l - l.amax((0, 1)).nan_to_num(neginf=0.0))  # p(x, z) / the tile's largest
    a, b, c, every = slice(None, -2), slice(1, -1), slice(2, None), slice(None)
    triples = [((every, a), (every, b), (every, c), 1.0),  # along z_1
               ((a, every), (b, every), (c, every), 1.0),  # along z_2
               ((a, a), (b, b), (c, c), 2.0),  # along (1, 1)
               ((a, c), (b, b), (c, a), 2.0)]  # along (1, -1)
    largest = None
    for before, middle, after, length2 in triples:
        drop = (2 * l[middle] - l[before] - l[after]) / length2  # nan or +-inf where a point is -inf
        weight = torch.maximum(torch.maximum(p[before], p[middle]), p[after]).where(drop.isfinite(), 0.0)
        mean = (weight * drop.clamp(min=0.0).nan_to_num(0.0, 0.0)).sum((0, 1)) / weight.sum((0, 1))
        mean = mean.nan_to_num(0.0)  # 0 / 0: no three finite points
        largest = mean if largest is None else torch.maximum(largest, mean)
    return largest.reshape(log_joint.shape[:-2])


class Pairs(NamedTuple):
    """(image, tile) pairs of one level, with the tile's log mass and drop (tile_drop) for that image."""
    image: torch.Tensor  # (P,) index into x
    tile: torch.Tensor  # (P, 2) integer tile indices
    log_mass: torch.Tensor  # (P,) log sum_{g in tile} p(x_image, z_g) h^2
    drop: torch.Tensor  # (P,) nats; not measured at level 0 (nan there)


NEIGHBOURS = grid_points(torch.arange(-1, 2), torch.arange(-1, 2))  # (9, 2): a tile and the 8 around it
QUARTERS = grid_points(torch.arange(2), torch.arange(2))  # (4, 2): tile (t1, t2) is (2 t1, 2 t2) + these


def segment_max(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """The largest of the values that share an index, -inf where none do. Shapes: (P,), (P,) -> (n,)."""
    return values.new_full((n,), -math.inf).scatter_reduce(0, index, values, "amax")


def segment_logsumexp(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """logsumexp of the values that share an index, -inf where none do. Shapes: (P,), (P,) -> (n,)."""
    top = segment_max(values, index, n).nan_to_num(neginf=0.0)  # no finite value: exp(-inf - 0) adds 0
    total = values.new_zeros(n).index_add(0, index, torch.exp(values - top[index]))
    return top + total.log()


@torch.no_grad()
def coarse_tiles(f: Integrand, x: torch.Tensor, tiling: Tiling) -> tuple[torch.Tensor, torch.Tensor]:
    """Level 0: the log mass of every tile for every image, TILE_BLOCK floats of log p(x, z) at a time.

    Shapes: (N, D) -> log_mass (N, T), tiles (T, 2), with T = W * W tiles, row-major in (t1, t2).
    """
    first, last = tiling.tile_range(0)
    axis = torch.arange(first, last + 1, device=x.device)
    tiles = grid_points(axis, axis).flip(-1)  # row-major in (t1, t2), as flatten() orders (N, W, W)
    per_block = max(1, TILE_BLOCK // (len(x) * tiling.size**2))
    log_mass = x.new_empty(len(x), len(tiles))
    for i in range(0, len(tiles), per_block):
        log_mass[:, i:i + per_block] = tiling.tile_log_mass(f, x, tiles[i:i + per_block], 0)
    return log_mass, tiles


def split_coarse(log_mass: torch.Tensor, tiles: torch.Tensor, cut: float) -> tuple[Pairs, torch.Tensor]:
    """The level-0 tiles to refine, and the log mass of all others, per image. Shapes: (N, T) -> Pairs, (N,).

    A tile is refined when it or one of its 8 neighbours is within `cut` nats of the image's largest tile:
    a peak narrower than the spacing, on a tile's edge, puts its grid point in one tile and its mass in both.
    converged_log_px's coarse_cut is wider than its later cut: the coarse grid can see a narrow peak far below its
    height (h0^2 / (4 s^2) nats midway between points, 39 for a posterior of sd s = 0.008 at h0 = 0.1).
    """
    W, refine, rest = math.isqrt(log_mass.shape[1]), [], []
    for block in log_mass.split(IMAGE_BLOCK):  # (B, T) masks at a time, to bound memory
        near = (block >= block.max(1, keepdim=True).values - cut).float().reshape(-1, 1, W, W)
        refine.append(F.max_pool2d(near, 3, stride=1, padding=1).reshape(len(block), -1) > 0)
        rest.append(block.masked_fill(refine[-1], -math.inf).logsumexp(1))
    image, t = torch.cat(refine).nonzero(as_tuple=True)
    return Pairs(image, tiles[t], log_mass[image, t], torch.full_like(log_mass[image, t], math.nan)), torch.cat(rest)


def split_fine(pairs: Pairs, n_images: int, cut: float) -> tuple[Pairs, torch.Tensor]:
    """As split_coarse, for the (image, tile) pairs of a finer level: the pairs to refine, and per image the
    log mass of the others. Only tiles of this level's pairs are refined, so no square is counted twice.
    Shapes: Pairs of P -> Pairs, (n_images,).
    """
    near = pairs.log_mass >= segment_max(pairs.log_mass, pairs.image, n_images)[pairs.image] - cut
    around = (pairs.tile[near][:, None, :] + NEIGHBOURS.to(pairs.tile.device)).reshape(-1, 2)
    lowest, width = pairs.tile.min() - 1, pairs.tile.max() - pairs.tile.min() + 3  # room for the neighbours

    def key(image, tiles):  # one integer per (image, tile) pair
        return (image * width + tiles[:, 0] - lowest) * width + tiles[:, 1] - lowest

    wanted = key(pairs.image[near].repeat_interleave(len(NEIGHBOURS)), around)
    refine = torch.isin(key(pairs.image, pairs.tile), wanted)
    rest = segment_logsumexp(pairs.log_mass[~refine], pairs.image[~refine], n_images)
    return Pairs(*(column[refine] for column in pairs)), rest


def z_order(tiles: torch.Tensor) -> torch.Tensor:
    """Each tile's key on the Z-order (Morton) curve, which runs through the plane in compact square patches:
    the bits of t1 and t2, interleaved. Shapes: (T, 2) -> (T,)."""
    tiles = tiles - tiles.min(0).values
    key = torch.zeros_like(tiles[:, 0])
    for bit in range(int(tiles.max()).bit_length()):
        key |= (tiles[:, 0] >> bit & 1) << 2 * bit + 1 | (tiles[:, 1] >> bit & 1) << 2 * bit
    return key


def quarters_log_mass(f: Integrand, x: torch.Tensor, tiles: torch.Tensor, tiling: Tiling,
                      level: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The log mass and the drop of the four quarters at `level` of each tile of level - 1, for every image,
    TILE_BLOCK floats of log p(x, z) at a time. Shapes: (N, D), (T, 2) -> (N, T, 4), (N, T, 4)."""
    quarters = (2 * tiles[:, None, :] + QUARTERS.to(tiles.device)).reshape(-1, 2)
    rows = max(1, TILE_BLOCK // (len(quarters) * tiling.size**2))
    blocks = [tiling.tile_log_mass(f, block, quarters, level, with_drop=True) for block in x.split(rows)]
    return tuple(torch.cat(column).reshape(len(x), len(tiles), 4) for column in zip(*blocks))


@torch.no_grad()
def refine(f: Integrand, x: torch.Tensor, pairs: Pairs, tiling: Tiling, level: int) -> Pairs:
    """The quarters at `level` of the pairs' tiles (of level - 1), each with its log mass for the pair's image.

    Decoding a point costs as much as ~300 images' products with it, so each call decodes a patch of tiles (that
    follow each other on the Z-order curve, as many as an image's region holds, or GRID_CHUNK points) once for
    all the images that need any of them. Shapes: Pairs of P -> Pairs of 4 P, less the quarters outside the grid.
    """
    keys, which = torch.unique(z_order(pairs.tile), return_inverse=True)  # sorted: along the curve
    tiles = pairs.tile.new_empty(len(keys), 2).index_copy_(0, which, pairs.tile)  # each distinct tile, in order
    region = len(which) // len(pairs.image.unique())  # tiles per image
    per_patch = max(1, min(GRID_CHUNK // (4 * tiling.size**2), region))
    patch, order = (which // per_patch).sort()
    log_mass, drop = pairs.log_mass.new_empty(len(which), 4), pairs.log_mass.new_empty(len(which), 4)
    for in_patch in order.split(torch.unique_consecutive(patch, return_counts=True)[1].tolist()):
        first = int(which[in_patch[0]]) // per_patch * per_patch
        images, row = pairs.image[in_patch].unique(return_inverse=True)
        patch_mass, patch_drop = quarters_log_mass(f, x[images], tiles[first:first + per_patch], tiling, level)
        log_mass[in_patch] = patch_mass[row, which[in_patch] - first]  # (pairs in patch, 4)
        drop[in_patch] = patch_drop[row, which[in_patch] - first]
    inside = log_mass > -math.inf
    quarters = 2 * pairs.tile[:, None, :] + QUARTERS.to(x.device)  # (P, 4, 2)
    return Pairs(pairs.image[:, None].expand_as(log_mass)[inside], quarters[inside], log_mass[inside], drop[inside])


def edge_report(log_mass: torch.Tensor, tiles: torch.Tensor, tiling: Tiling, tol: float,
                log_px: torch.Tensor) -> dict:
    """Mass in the outer band of the grid, one coarse tile wide (|z_1| or |z_2| > a - m h0), from level 0.

    edge_images: images whose band holds more than tol / 10 of p(x), so that the mass beyond the grid,
    which the rule cannot see, might move log p(x) by a tenth of the tolerance or more (the grid is too
    small for them); edge_log_share: the largest log(band mass / p(x)) over images.
    Shapes: (N, T), (T, 2), (N,) -> dict.
    """
    n, m = tiling.n, tiling.size
    band = ((tiles * m < m - n) | (tiles * m + m - 1 > n - m)).any(-1)  # (T,)
    share = log_mass[:, band].logsumexp(1) - log_px
    near = share.exp() > tol / 10
    return dict(edge_band=round((n - m) * tiling.spacing, 9), edge_images=int(near.sum()),
                edge_log_share=share.max().item())


@torch.no_grad()
def covering_half_width(model, x: torch.Tensor, least: float = 8.0, margin: float = 3.0, draws: int = 64,
                        seed: int = 0) -> float:
    """A half-width a for the quadrature's square [-a, a]^2: at least `least`, and `margin` beyond the farthest of
    `draws` draws from each image's q(z|x), rounded up. The N(0, I) prior keeps codes near 0, but a learned prior
    can put them far out, and mass beyond the square is lost (converged_log_px warns when the square is still too
    small). (N, D) -> float.
    """
    generator = torch.Generator(x.device).manual_seed(seed)
    far = max((model.sample_posterior(xb, draws, generator)[0].abs().max().item() for xb in x.split(500)),
              default=0.0)
    return float(max(least, math.ceil(far + margin)))


@torch.no_grad()
def converged_log_px(model, x: torch.Tensor, tol: float = 0.01, half_width: float = 8.0, spacing: float = 0.1,
                     tile_size: int = 4, coarse_cut: float = 40.0, cut: float = 20.0, max_refinements: int = 6,
                     max_drop: float = 1.0):
    """log p(x) by the rectangle rule on grids over [-a, a]^2, refined image by image until the grid resolves
    each image's posterior and halving the spacing h moves its estimate by less than `tol` nats (`going`).

    Level k is the grid of spacing h0 / 2^k (h0 = `spacing`), cut into tiles of m x m points (m = `tile_size`,
    at least 3; Tiling); an image's mass in a tile is sum_{g in tile} p(x, z_g) h^2. Level 0 has every tile for
    every image; going to level k + 1 quarters, for each image, only the tiles that hold its mass, as (image, tile)
    pairs (refine_until_converged); every other tile keeps its level-k mass. The defaults: a = 8, where log p(z)
    is 32 nats below its peak (mass near the edge is reported and warned about); tiles 0.4 wide at level 0; up to
    6 refinements, to h = 0.0016.

    Returns log p(x) (N,), each image's |change| at its last refinement (N,), and a JSON-serialisable report
    (settings, images refined per level, largest and mean last change, largest last drop, mass near the edge,
    and whether every image converged: one still unresolved or moving after the last refinement is warned about).
    Shapes: (N, D) -> (N,), (N,), dict.
    """
    if max_refinements < 1:
        raise ValueError(f"max_refinements must be at least 1 to check convergence, got {max_refinements}")
    started, f, tiling = time.perf_counter(), integrand(model), Tiling.over(half_width, spacing, tile_size)
    log_mass, tiles = coarse_tiles(f, x, tiling)
    pairs, rest = split_coarse(log_mass, tiles, coarse_cut)  # rest: log mass of the tiles left behind
    log_px = level_estimate(pairs, rest)
    edge = edge_report(log_mass, tiles, tiling, tol, log_px)
    del log_mass  # (N, T), the largest tensor here
    settings = dict(half_width=half_width, spacing=spacing, tile_size=tile_size, coarse_cut=coarse_cut, cut=cut,
                    tol=tol, max_drop=max_drop)
    change, drop, refined = refine_until_converged(f, x, tiling, pairs, rest, log_px, settings, max_refinements)
    return log_px, change, summarise(settings, tiling, refined, change, drop, edge, log_px, started)


def level_estimate(pairs: Pairs, rest: torch.Tensor) -> torch.Tensor:
    """Each image's log p(x) at one level: the log mass of its pairs' tiles and of the tiles it left behind
    (`rest`). Shapes: Pairs of P, (N,) -> (N,)."""
    return torch.logaddexp(rest, segment_logsumexp(pairs.log_mass, pairs.image, len(rest)))


def refine_until_converged(f: Integrand, x: torch.Tensor, tiling: Tiling, pairs: Pairs, rest: torch.Tensor,
                           log_px: torch.Tensor, settings: dict, max_refinements: int):
    """converged_log_px's refinements, levels 1 to max_refinements, while any image is still `going`.

    Each halves h for those images, only in their tiles within settings["cut"] nats of their largest tile and the
    8 around those (split_fine); every other tile keeps its last mass, under e^-cut of the largest, so the result
    is the full grid's (log_px_grid at the same h) to about 1e-5 nats. Updates log_px (N,) in place; returns each
    image's last change and drop (N,) and the number of images refined at each level.
    """
    tol, max_drop = settings["tol"], settings["max_drop"]
    change, drop, refined = torch.full_like(log_px, math.inf), torch.full_like(log_px, math.inf), []
    for level in range(1, max_refinements + 1):
        active = going(change, drop, tol, max_drop)
        pairs = refine(f, x, pairs, tiling, level)
        estimate = level_estimate(pairs, rest)
        change[active], log_px[active] = (estimate - log_px)[active].abs(), estimate[active]
        drop[active] = segment_mean(pairs.drop, pairs.log_mass, pairs.image, len(x))[active]
        refined.append(int(active.sum()))
        still = going(change, drop, tol, max_drop)
        if level == max_refinements or not still.any():
            break
        pairs, left = split_fine(Pairs(*(column[still[pairs.image]] for column in pairs)), len(x), settings["cut"])
        rest = torch.logaddexp(rest, left)
    return change, drop, refined


def going(change: torch.Tensor, drop: torch.Tensor, tol: float, max_drop: float) -> torch.Tensor:
    """The images to refine further: an image stops at level k >= 1 when both
      (1) its estimate moved by less than `tol`: |log p_k(x) - log p_(k-1)(x)| < tol, and
      (2) the grid resolves its posterior: its drop, the mean of tile_drop over its tiles weighted by their mass,
          is at most `max_drop` nats.
    (1) alone can stop on two wrong estimates: while h is wider than the posterior, a Gaussian peak of sd s midway
    between two points of level k is h/2 from a point of level k - 1 as well, so both levels give 2 h N(h/2; 0, s^2) per
    axis, equal and too small by about h^2 / (8 s^2) nats. (2) cannot be met there: the drop is at least 0.85 (h / s)^2
    (tile_drop), so no image stops before h <= 1.08 s, where the rule's relative error, about 4 exp(-2 pi^2 s^2 / h^2)
    by Poisson summation [Trefethen & Weideman 2014], is below 1e-6; past that, (1) measures it. Other posteriors are
    held the same way, each part by its own curvature, but a narrow peak whose grid points all lie more than
    `coarse_cut` (then `cut`) nats below the largest tile counts for nothing. max_drop = inf leaves (1) alone, which
    tests/test_exact.py shows stopping on aliased estimates. Shapes: (N,), (N,) -> (N,).
    """
    return (change >= tol) | (drop > max_drop)


def segment_mean(values: torch.Tensor, log_weight: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """The mean of the values that share an index, weighted by exp(log_weight), leaving out nan values; nan
    where none are left. Shapes: (P,), (P,), (P,) -> (n,)."""
    known = ~values.isnan()
    values, log_weight, index = values[known], log_weight[known], index[known]
    weight = torch.exp(log_weight - segment_max(log_weight, index, n)[index])
    total = values.new_zeros(n).index_add(0, index, weight)
    return values.new_zeros(n).index_add(0, index, weight * values) / total


def summarise(settings: dict, tiling: Tiling, refined: list, change: torch.Tensor, drop: torch.Tensor, edge: dict,
              log_px: torch.Tensor, started: float) -> dict:
    """The report of converged_log_px; warns when an image has not converged or the grid is too small for it."""
    tol, max_drop, n = settings["tol"], settings["max_drop"], len(change)
    unconverged = going(change, drop, tol, max_drop)
    result = dict(settings, finest_spacing=tiling.h(len(refined)), refinements=len(refined), images_refined=refined,
                  max_image_change=change.max().item(), mean_change=change.mean().item(),
                  max_image_drop=drop.max().item(), converged=not bool(unconverged.any()), **edge,
                  mean_log_px=log_px.mean().item(), seconds=time.perf_counter() - started)
    if not result["converged"]:
        warnings.warn(f"log p(x) by quadrature did not converge to {tol} nats in {len(refined)} refinements for "
                      f"{int(unconverged.sum())} of {n} images (largest last change {change.max():.4f} nats, "
                      f"{int((drop > max_drop).sum())} with the posterior unresolved: drop above {max_drop:g} nats)")
    if edge["edge_images"]:
        warnings.warn(f"{edge['edge_images']} of {n} images have more than {tol / 10:g} of p(x) where |z_1| or "
                      f"|z_2| > {edge['edge_band']:g} (up to e^{edge['edge_log_share']:.1f}): the grid may miss mass "
                      f"beyond it; widen half_width beyond {settings['half_width']:g}")
    return result
