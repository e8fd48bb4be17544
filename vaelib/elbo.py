"""The terms of the evidence lower bound (ELBO) and the importance-weighted bound, per example, in nats.

    log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z)) = ELBO            [Kingma & Welling 2014, eq. 3]
    log p(x) >= E[log (1/K) sum_k p(x, z_k) / q(z_k|x)] = IWAE_K       [Burda et al. 2016, eq. 8]

IWAE_1 = ELBO in expectation, IWAE_K rises with K and tends to log p(x).
Every function returns one number per example: a (B,) tensor; the loss is -elbo.mean().
The model gives q and p(z): model.sample_posterior(x, k) -> (z, log q(z|x)) and model.log_prior(z) (vaelib.model).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from . import threads

LOG_2PI = math.log(2 * math.pi)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) = sum_d x_d * logits_d - softplus(logits_d), stable for any logits.

    This equals sum_d x_d log sigmoid(l_d) + (1 - x_d) log(1 - sigmoid(l_d)), without the
    log(0) that BCE of probabilities clamps at -100. Shapes: (..., D), (..., D) -> (...).
    """
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over latent dims.

    0.5 * sum_j (exp(logvar_j) + mu_j^2 - 1 - logvar_j) [Kingma & Welling 2014, App. B].
    Shapes: (B, L), (B, L) -> (B,).
    """
    return 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum(-1)


def log_normal(z: torch.Tensor, mu: torch.Tensor | float = 0.0, logvar: torch.Tensor | float = 0.0) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dim. Shapes: (..., L) -> (...)."""
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


class ELBO(NamedTuple):
    elbo: torch.Tensor  # (B,) log_px_z - kl
    log_px_z: torch.Tensor  # (B,) one-sample estimate of E_q[log p(x|z)]
    kl: torch.Tensor  # (B,) KL(q(z|x) || p(z)): analytic, or log q(z|x) - log p(z) at the same z


def elbo_terms(model, x: torch.Tensor, generator: torch.Generator | None = None) -> ELBO:
    """One-sample reparametrised ELBO of each image, with its two terms. Shapes: (B, D) -> 3 x (B,).

    The KL is analytic for a Gaussian q(z|x) and the N(0, I) prior. With a flow or a learned prior it has no
    closed form and is estimated at the sampled z by log q(z|x) - log p(z), unbiased like the first term.
    """
    if getattr(model, "analytic_kl", True):  # a notebook's own VAE has no variants: the analytic KL
        logits, mu, logvar = model(x, generator=generator)
        log_px_z = bernoulli_log_likelihood(logits, x)
        kl = kl_standard_normal(mu, logvar)
    else:
        z, log_qz_x = model.sample_posterior(x, generator=generator)
        log_px_z = bernoulli_log_likelihood(model.decode(z), x)
        kl = log_qz_x - model.log_prior(z)
    return ELBO(log_px_z - kl, log_px_z, kl)


def log_weights(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, k: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """log p(x, z_k) - log q(z_k|x) for k draws z_k ~ q(z|x) = N(mu, exp(logvar)), q given. Shapes: (B, D) -> (k, B)."""
    eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + torch.exp(0.5 * logvar) * eps  # (k, B, L)
    log_px_z = bernoulli_log_likelihood(model.decode(z), x)  # (k, B)
    # log q(z|x) from eps directly: z - mu = std * eps, so the quadratic term is eps^2.
    log_qz_x = -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(-1)
    return log_px_z + model.log_prior(z) - log_qz_x


def posterior_log_weights(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) for k draws z_k ~ q(z|x), the model's own q and p(z).

    Shapes: (B, D) -> (k, B).
    """
    z, log_qz_x = model.sample_posterior(x, k, generator)  # (k, B, L), (k, B)
    return bernoulli_log_likelihood(model.decode(z), x) + model.log_prior(z) - log_qz_x


class IWAE(NamedTuple):
    iwae: torch.Tensor  # (B,) log (1/K) sum_k w_k
    kl: torch.Tensor  # (B,) mean over the K draws of log q(z_k|x) - log p(z_k): the rate, as the ELBO's KL


def iwae_terms(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> IWAE:
    """The K-sample importance-weighted bound of each image, to train on: its loss is -iwae.mean().

    IWAE_K = log (1/K) sum_k w_k, log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), z_k = mu + std * eps_k
    (then the flow, if any) [Burda et al. 2016, eq. 8]. Its gradient is the plain one, sum_k w~_k grad log w_k
    with w~_k = w_k / sum_j w_j, for every parameter. It is TrainConfig's default (gradient="plain"): it is the
    gradient of the bound itself, it works for every posterior, and with K = 1 it is the ELBO's. But the encoder's
    signal-to-noise ratio falls like 1/sqrt(K) with it [Rainforth et al. 2018], so for larger K prefer
    iwae_dreg_terms (gradient="dreg"). Shapes: (B, D) -> 2 x (B,).
    """
    z, log_qz_x = model.sample_posterior(x, k, generator)  # (K, B, L), (K, B)
    log_pz = model.log_prior(z)
    log_w = bernoulli_log_likelihood(model.decode(z), x) + log_pz - log_qz_x  # (K, B)
    return IWAE(torch.logsumexp(log_w, 0) - math.log(k), (log_qz_x - log_pz).mean(0))


def iwae_dreg_terms(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> IWAE:
    """iwae_terms with the doubly reparametrised gradient (DReG) for the encoder [Tucker, Lawson, Gu & Maddison 2019].

    The same values (for the same eps) and the same gradient for the decoder and the prior. The encoder's, whose
    expectation is the same, is sum_k w~_k^2 d log w_k / dz_k dz_k/dphi, with log q evaluated with its parameters
    (mu, std) held fixed: the score term d log q / dphi, zero on average but noisy, is gone, and the encoder's
    signal-to-noise ratio grows with K instead of falling. Done by (1) stop-gradient on mu and logvar in log q, and
    (2) a hook that multiplies the gradient reaching each z_k, w~_k d log w_k / dz_k, by w~_k once more.
    Gaussian posteriors only: a flow's log q at a given z with its parameters fixed needs the flow's inverse.
    Shapes: (B, D) -> 2 x (B,).
    """
    if getattr(model, "flow", None) is not None:
        raise ValueError("DReG needs log q(z|x) at a given z with q's parameters held fixed, which a planar flow "
                         "gives only by inverting it: use iwae_terms (--gradient plain) with posterior 'planar'")
    mu, logvar = model.encode(x)
    eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + torch.exp(0.5 * logvar) * eps  # (K, B, L): the path through which the encoder gets its gradient
    log_qz_x = log_normal(z, mu.detach(), logvar.detach())  # (1): no score term
    log_pz = model.log_prior(z)
    log_w = bernoulli_log_likelihood(model.decode(z), x) + log_pz - log_qz_x  # (K, B)
    if z.requires_grad:
        weights = torch.softmax(log_w, 0).detach()  # w~_k
        z.register_hook(lambda grad: grad * weights[..., None])  # (2)
    return IWAE(torch.logsumexp(log_w, 0) - math.log(k), (log_qz_x - log_pz).mean(0))


@torch.no_grad()
def iwae_bound(model, x: torch.Tensor, k: int, chunk: int | None = None,
               generator: torch.Generator | None = None, return_se: bool = False):
    """log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x), in chunks of samples.

    A running logsumexp over chunks keeps memory at chunk * B * D floats whatever K is.
    With return_se, also the delta-method Monte Carlo standard error of the estimate,
    sqrt((mean(w^2) / mean(w)^2 - 1) / K). Shapes: (B, D) -> (B,) [, (B,)].
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    B = x.shape[0]
    chunk = chunk or max(1, min(k, (1 << 22) // max(1, B * x.shape[-1])))
    lse = torch.full((B,), -math.inf, device=x.device, dtype=x.dtype)
    lse2 = lse.clone()
    for start in range(0, k, chunk):
        threads.check()  # the thread count fitted to the machine's load now (vaelib.threads)
        log_w = posterior_log_weights(model, x, min(chunk, k - start), generator)  # (c, B)
        lse = torch.logaddexp(lse, torch.logsumexp(log_w, 0))
        lse2 = torch.logaddexp(lse2, torch.logsumexp(2 * log_w, 0))
    estimate = lse - math.log(k)
    if not return_se:
        return estimate
    ratio = torch.exp(lse2 - math.log(k) - 2 * estimate)  # mean(w^2) / mean(w)^2 >= 1
    return estimate, torch.sqrt((ratio - 1).clamp_min(0) / k)
