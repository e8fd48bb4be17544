"""Priors p(z), each an object with log_prob(z) and sample(n): N(0, I), a learned mixture of Gaussians, and the
VampPrior [Tomczak & Welling 2018, "VAE with a VampPrior"]. The learned ones are mixtures of C diagonal Gaussians,

    p(z) = sum_c pi_c N(z; m_c, diag(exp(logvar_c))),    log p(z) = logsumexp_c [log pi_c + log N(z; m_c, ...)]

"mog" learns m_c, logvar_c and the logits of pi; "vamp" is p(z) = (1/C) sum_c q(z|u_c), the encoder's Gaussian
(before any flow) at C learned pseudo-inputs u_c: the average posterior of C made-up images. N(0, I) has no
parameters, so checkpoints are as they were; the VAE keeps its closed-form KL for it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import float64_device
from .elbo import LOG_2PI, log_normal


def mixture_log_prob(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log sum_c softmax(logits)_c N(z; means_c, diag(exp(logvars_c))). Shapes: (..., L), (C, L), (C, L), (C,) -> (...).

    Each component's quadratic form comes from two (N, L) @ (L, C) products, by expanding the square,
    sum_j (z_j - m_cj)^2 / v_cj = z^2 @ (1 / v_c) - 2 z @ (m_c / v_c) + sum_j m_cj^2 / v_cj: 19 times faster than
    an (N, C, L) tensor at C = 500, L = 50 (benchmarks/bench_mixture.py). The expansion subtracts terms far larger
    than their difference when z is far out and v small, so it runs in float64 (vaelib.config.float64_device); on
    Apple's MPS, which has none, each square is formed directly in float32 (direct_mixture_log_prob).
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


class StandardNormal(nn.Module):
    """p(z) = N(0, I)."""

    def __init__(self, z_dim: int):
        super().__init__()
        self.register_buffer("origin", torch.zeros(z_dim), persistent=False)  # follows the model's device

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I). Shapes: (..., L) -> (...)."""
        return log_normal(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws, made on the generator's device (the same z for a seed on every device). Shape: (n, L)."""
        drawn_on = generator.device if generator is not None else "cpu"
        return torch.randn(n, len(self.origin), generator=generator, device=drawn_on).to(self.origin.device)


class Mixture(nn.Module):
    """A mixture of diagonal Gaussians, given by components(): means (C, L), log-variances (C, L), logits (C,)."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z). Shapes: (..., L) -> (...)."""
        return mixture_log_prob(z, *self.components())

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws (mixture_sample). Shape: (n, L)."""
        return mixture_sample(n, *self.components(), generator=generator)


class MixturePrior(Mixture):
    """p(z) = sum_c pi_c N(z; m_c, diag(exp(logvar_c))) with learned m, logvar and logits of pi."""

    def __init__(self, z_dim: int, components: int):
        super().__init__()
        self.means = nn.Parameter(torch.randn(components, z_dim))  # spread like N(0, I), so that they differ
        self.logvars = nn.Parameter(torch.zeros(components, z_dim))
        self.logits = nn.Parameter(torch.zeros(components))

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.means, self.logvars, self.logits


class VampPrior(Mixture):
    """p(z) = (1/C) sum_c q(z|u_c) at learned pseudo-inputs u_c; `encode` (the VAE's) gives each q(z|u_c)."""

    def __init__(self, x_dim: int, components: int, encode):
        super().__init__()
        self.pseudo_inputs = nn.Parameter(torch.rand(components, x_dim))  # (C, D): uniform noise to start from
        self.encode = encode

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(self.pseudo_inputs)  # q(z|u_c), equal weights
        return mu, logvar, mu.new_zeros(len(mu))
