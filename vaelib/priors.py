"""Learned priors p(z) for the VAE: a mixture of Gaussians, and the VampPrior [Tomczak & Welling 2018, "VAE with
a VampPrior"].

Both are mixtures of C Gaussians with diagonal covariances,

    p(z) = sum_c pi_c N(z; m_c, diag(exp(logvar_c))),    log p(z) = logsumexp_c [log pi_c + log N(z; m_c, ...)]

- "mog": the means m_c, log-variances and logits of pi are parameters of their own, learned with the decoder;
- "vamp": p(z) = (1/C) sum_c q(z|u_c), the encoder's Gaussian at C learned pseudo-inputs u_c (images the model
  makes up), so the prior is the average posterior of C images. With a planar posterior the components are
  the encoder's Gaussians before the flow: the flow's density at a given z needs its inverse.

The N(0, I) prior is the mixture of one standard Gaussian; the VAE keeps its closed-form KL for it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import float64_device
from .elbo import LOG_2PI, log_normal


def mixture_log_prob(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log sum_c softmax(logits)_c N(z; means_c, diag(exp(logvars_c))).

    Every component's quadratic form comes from two matrix products, by expanding the square,

        sum_j (z_j - m_cj)^2 / v_cj = z^2 @ (1 / v_c) - 2 z @ (m_c / v_c) + sum_j m_cj^2 / v_cj,

    so that C components cost two (N, L) @ (L, C) products rather than an (N, C, L) tensor: 19 times faster
    with C = 500 and L = 50, which makes IWAE-5000 on a 50-D mixture-prior model 7.7 times faster
    (benchmarks/bench_mixture.py, one thread). The expansion subtracts terms far larger
    than their difference when z is far out and v small, so it is done in float64 where the device computes
    in it (vaelib.config.float64_device); on Apple's MPS, which has no float64, each component's square is
    formed directly, in float32.
    Shapes: (..., L), (C, L), (C, L), (C,) -> (...).
    """
    if float64_device(z.device) != z.device:  # no float64 here: do not copy to the CPU on the training path
        return direct_mixture_log_prob(z, means, logvars, logits)
    z64, means64, logvars64 = z.double(), means.double(), logvars.double()
    precision = torch.exp(-logvars64)  # (C, L)
    quadratic = (z64.pow(2) @ precision.T - 2 * (z64 @ (means64 * precision).T)
                 + (means64.pow(2) * precision).sum(-1))  # (..., C)
    log_components = -0.5 * (z.shape[-1] * LOG_2PI + logvars64.sum(-1) + quadratic.clamp_min(0))
    return torch.logsumexp(F.log_softmax(logits.double(), -1) + log_components, -1).to(z.dtype)


def direct_mixture_log_prob(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor,
                            logits: torch.Tensor) -> torch.Tensor:
    """mixture_log_prob with each component's square formed directly, as an (..., C, L) tensor, in z's dtype:
    what it computes on a device without float64."""
    log_components = log_normal(z[..., None, :], means, logvars)  # (..., C)
    return torch.logsumexp(F.log_softmax(logits, -1) + log_components, -1)


def mixture_sample(n: int, means: torch.Tensor, logvars: torch.Tensor, logits: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws z = m_c + std_c * eps with c ~ Categorical(softmax(logits)), eps ~ N(0, I). Shapes: -> (n, L).

    Drawn on the generator's device (the same z for a seed on every device), returned on the means' device.
    """
    drawn_on = generator.device if generator is not None else torch.device("cpu")
    c = torch.multinomial(F.softmax(logits.detach(), -1).to(drawn_on), n, replacement=True, generator=generator)
    eps = torch.randn(n, means.shape[-1], generator=generator, device=drawn_on, dtype=means.dtype)
    c, eps = c.to(means.device), eps.to(means.device)
    return means[c] + torch.exp(0.5 * logvars[c]) * eps


class MixturePrior(nn.Module):
    """p(z) = sum_c pi_c N(z; m_c, diag(exp(logvar_c))) with learned m, logvar and logits of pi."""

    def __init__(self, z_dim: int, components: int):
        super().__init__()
        self.means = nn.Parameter(torch.randn(components, z_dim))  # spread like N(0, I), so that they differ
        self.logvars = nn.Parameter(torch.zeros(components, z_dim))
        self.logits = nn.Parameter(torch.zeros(components))


class VampPrior(nn.Module):
    """p(z) = (1/C) sum_c q(z|u_c) at learned pseudo-inputs u_c; the VAE's encoder gives each q(z|u_c)."""

    def __init__(self, x_dim: int, components: int):
        super().__init__()
        self.pseudo_inputs = nn.Parameter(torch.rand(components, x_dim))  # (C, D): uniform noise to start from
