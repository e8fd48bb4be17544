"""Planar flows: a richer posterior q(z|x) than the encoder's Gaussian [Rezende & Mohamed 2015, "Variational
Inference with Normalizing Flows"]. A draw z_0 = mu + std * eps goes through layers f_1, ..., f_n,

    f(z) = z + u_hat tanh(w . z + b),    log |det df/dz| = log(1 + u_hat . w tanh'(w . z + b))    [R&M eqs. 10-12]
    log q(z_n|x) = log N(z_0; mu, std^2) - sum_l log |det df_l/dz_(l-1)|                        [R&M eq. 13]

Each layer bends the space along one direction w (with L = 2, a few make a banana or a bent ridge). The flow
is amortised: each layer's raw u, w, b are read from the encoder's last hidden layer, so each image gets its
own flow, as it gets its own mu and std.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def constrained_u(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """u_hat = u + (m(w . u) - w . u) w / |w|^2 with m(a) = -1 + softplus(a), so that w . u_hat = m(w . u) > -1.

    That keeps every layer invertible: along w the map is a -> a + (w . u_hat) tanh(a + b), increasing when
    w . u_hat >= -1, and across w it only shifts [R&M, App. A.1]. Shapes: (..., L), (..., L) -> (..., L).
    """
    wu = (w * u).sum(-1, keepdim=True)
    return u + (F.softplus(wu) - 1 - wu) * w / w.pow(2).sum(-1, keepdim=True)


def planar(z: torch.Tensor, u: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One planar layer: f(z) = z + u_hat tanh(w . z + b) and log |det df/dz| = log(1 + u_hat . w tanh'(w . z + b)).

    With t = tanh(w . z + b), tanh' = 1 - t^2 and u_hat . w = softplus(w . u) - 1, the determinant is
    t^2 + (1 - t^2) softplus(w . u): positive, so no absolute value is needed, and written so that rounding
    cannot push it below 0 where w . u is very negative. Shapes: z (..., B, L); u, w (B, L); b (B,) ->
    (..., B, L), (..., B).
    """
    t = torch.tanh((z * w).sum(-1) + b)  # (..., B)
    det = t.pow(2) + (1 - t.pow(2)) * F.softplus((w * u).sum(-1))
    return z + constrained_u(u, w) * t[..., None], torch.log(det)


def layers_of(raw: torch.Tensor, z_dim: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The (u, w, b) of each layer, u before the constraint, from the flow's raw parameters: u (L), w (L), b (1)
    per layer, side by side. Shapes: (..., layers * (2 L + 1)) -> (..., L), (..., L), (...) per layer."""
    L = z_dim
    return [(p[..., :L], p[..., L:2 * L], p[..., 2 * L]) for p in raw.unflatten(-1, (-1, 2 * L + 1)).unbind(-2)]


def planar_flow(z: torch.Tensor, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z_n and sum_l log |det df_l/dz_(l-1)| through every layer of `raw` (layers_of).
    Shapes: z_0 (..., B, L), raw (B, layers * (2 L + 1)) -> (..., B, L), (..., B)."""
    log_det = z.new_zeros(z.shape[:-1])
    for u, w, b in layers_of(raw, z.shape[-1]):
        z, layer_log_det = planar(z, u, w, b)
        log_det = log_det + layer_log_det
    return z, log_det


def identity_start(raw: torch.Tensor, z_dim: int) -> torch.Tensor:
    """The raw parameters with each layer's u set so that u_hat = 0 (softplus(w . u) = 1): the flow starts as
    the identity, its w and b kept. Shapes: (B, layers * (2 L + 1)) -> the same."""
    L = z_dim
    layers = raw.unflatten(-1, (-1, 2 * L + 1)).clone()  # (B, layers, 2 L + 1): u, w, b
    w = layers[..., L:2 * L]
    layers[..., :L] = math.log(math.e - 1) * w / w.pow(2).sum(-1, keepdim=True)
    return layers.flatten(-2)


class PlanarFlow(nn.Module):
    """`layers` planar layers whose raw u, w, b come from a linear map of the encoder's hidden layer h."""

    def __init__(self, width: int, z_dim: int, layers: int):
        super().__init__()
        self.head = nn.Linear(width, layers * (2 * z_dim + 1))  # u (L), w (L), b (1) per layer

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """planar_flow with the raw parameters read from h. Shapes: (..., B, L), (B, H) -> (..., B, L), (..., B)."""
        return planar_flow(z, self.head(h))
