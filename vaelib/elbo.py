"""The terms of the evidence lower bound (ELBO) and the importance-weighted bound, per example, in nats.

    log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z)) = ELBO            [Kingma & Welling 2014, eq. 3]
    log p(x) >= E[log (1/K) sum_k p(x, z_k) / q(z_k|x)] = IWAE_K       [Burda et al. 2016, eq. 8]

IWAE_1 = ELBO in expectation; IWAE_K rises with K towards log p(x). Each function returns a (B,) tensor; the
model gives q and p(z) as vaelib.model.LatentVariableModel says.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from . import threads

LOG_2PI = math.log(2 * math.pi)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) = sum_d x_d * logits_d - softplus(logits_d), stable for any logits.

    This equals sum_d x_d log sigmoid(l_d) + (1 - x_d) log(1 - sigmoid(l_d)), without the
    log(0) that BCE of probabilities clamps at -100. Shapes: (..., D), (..., D) -> (...).
    """
    return BernoulliLogLikelihood.apply(logits, x)


class BernoulliLogLikelihood(torch.autograd.Function):
    """-(max(l, 0) - x l + log(1 + e^-|l|)) and its gradient x - sigmoid(l), by hand: PyTorch's BCE with logits runs
    a scalar log1p on the CPU, an eighth of a step (benchmarks/bench_one_elbo.py); e^-|l| < 1e-7 is dropped."""

    @staticmethod
    def forward(ctx, logits, x):
        ctx.save_for_backward(logits, x)
        softplus_rest = logits.abs().neg_().exp_().add_(1).log_()  # softplus(l) - max(l, 0)
        return softplus_rest.add_(logits.clamp_min(0)).sub_(x * logits).sum(-1).neg_()

    @staticmethod
    def backward(ctx, grad):
        logits, x = ctx.saved_tensors
        grad = grad.unsqueeze(-1)
        return ((x - torch.sigmoid(logits)) * grad if ctx.needs_input_grad[0] else None,
                (logits * grad).sum_to_size(x.shape) if ctx.needs_input_grad[1] else None)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over latent dims.

    0.5 * sum_j (exp(logvar_j) + mu_j^2 - 1 - logvar_j) [Kingma & Welling 2014, App. B].
    Shapes: (B, L), (B, L) -> (B,).
    """
    return 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum(-1)


def kl_normal(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))) of diagonal Gaussians, summed over latent dims.

    0.5 * sum_j (logvar_p_j - logvar_q_j + (exp(logvar_q_j) + (mu_q_j - mu_p_j)^2) / exp(logvar_p_j) - 1); with
    mu_p = 0, logvar_p = 0 it is kl_standard_normal. The CVAE's KL to its conditional prior (vaelib.cvae); notebook
    2's check_kl_normal keeps torch.distributions as its own, independent reference. Shapes: 4 x (B, L) -> (B,).
    """
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_p) - 1).sum(-1)


def log_normal(z: torch.Tensor, mu: torch.Tensor | float = 0.0, logvar: torch.Tensor | float = 0.0) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dim. Shapes: (..., L) -> (...)."""
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + std * eps with eps ~ N(0, I): a sample of q(z|x) that gradients flow through.

    Shapes: (..., L), (..., L) [, eps (..., L) or (K, ..., L)] -> the shape of eps. [Kingma & Welling 2014, Sec. 2.4]
    """
    if eps is None:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_draw(mu: torch.Tensor, logvar: torch.Tensor, k: int | None = None,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """z = mu + std * eps and log N(z; mu, std^2), k draws per row (one without k). log q comes from eps
    directly: z - mu = std * eps, so the quadratic term is eps^2. Shapes: (B, L) -> (B, L), (B,); with k: (k, B, L),
    (k, B)."""
    eps = torch.randn(mu.shape if k is None else (k, *mu.shape), generator=generator, device=mu.device,
                      dtype=mu.dtype)
    return reparameterize(mu, logvar, eps), -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(-1)


class ELBO(NamedTuple):
    elbo: torch.Tensor  # (B,) log_px_z - kl
    log_px_z: torch.Tensor  # (B,) one-sample estimate of E_q[log p(x|z)]
    kl: torch.Tensor  # (B,) KL(q(z|x) || p(z)): closed form where it has one, else log q(z|x) - log p(z) at the same z


def elbo_terms(model, x: torch.Tensor, generator: torch.Generator | None = None) -> ELBO:
    """One-sample reparametrised ELBO of each image, with its two terms: the one ELBO of vaelib, which training
    minimises (as -elbo.mean(), its KL weighted by beta) and evaluation reports. Shapes: (B, D) -> 3 x (B,).

    The KL is the model's (model.kl): in closed form for a Gaussian q(z|x) and the N(0, I) prior; with a flow or
    a learned prior it has none and is estimated at the sampled z by log q(z|x) - log p(z), unbiased like the
    first term.
    """
    params = model.posterior_params(x)
    z, log_q = model.draw_posterior(params, generator=generator)
    log_px_z = bernoulli_log_likelihood(model.decode(z), x)
    kl = model.kl(params, z, log_q)
    return ELBO(log_px_z - kl, log_px_z, kl)


def posterior_log_weights(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                          params: dict | None = None) -> torch.Tensor:
    """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) for k draws z_k ~ q, q the model's own for each image
    or, given `params`, the q they define (vaelib.gaps fits its own). Shapes: (B, D) -> (k, B)."""
    params = model.posterior_params(x) if params is None else params
    z, log_qz_x = model.draw_posterior(params, k, generator)  # (k, B, L), (k, B)
    return bernoulli_log_likelihood(model.decode(z), x) + model.prior.log_prob(z) - log_qz_x


def log_weights(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, k: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """posterior_log_weights for the Gaussian q(z|x) = N(mu, exp(logvar)) given. Shapes: (B, D) -> (k, B)."""
    return posterior_log_weights(model, x, k, generator, {"mu": mu, "logvar": logvar})


class IWAE(NamedTuple):
    iwae: torch.Tensor  # (B,) log (1/K) sum_k w_k
    kl: torch.Tensor  # (B,) mean over the K draws of log q(z_k|x) - log p(z_k): the rate, as the ELBO's KL


def iwae_terms(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> IWAE:
    """The K-sample importance-weighted bound of each image, to train on: its loss is -iwae.mean().

    IWAE_K = log (1/K) sum_k w_k, log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) [Burda et al. 2016, eq. 8],
    with the plain gradient sum_k w~_k grad log w_k (w~_k = w_k / sum_j w_j): the bound's own, for every posterior,
    the ELBO's at K = 1. The encoder's signal-to-noise ratio falls like 1/sqrt(K) with it [Rainforth et al. 2018]:
    for larger K prefer iwae_dreg_terms. Shapes: (B, D) -> 2 x (B,).
    """
    z, log_qz_x = model.sample_posterior(x, k, generator)  # (K, B, L), (K, B)
    log_pz = model.prior.log_prob(z)
    log_w = bernoulli_log_likelihood(model.decode(z), x) + log_pz - log_qz_x  # (K, B)
    return IWAE(torch.logsumexp(log_w, 0) - math.log(k), (log_qz_x - log_pz).mean(0))


def iwae_dreg_terms(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> IWAE:
    """iwae_terms with the doubly reparametrised gradient (DReG) for the encoder [Tucker, Lawson, Gu & Maddison 2019].

    The same values (for the same eps), and the same gradient for the decoder and the prior. The encoder's, equal
    in expectation, is sum_k w~_k^2 d log w_k / dz_k dz_k/dphi: (1) log q is evaluated with its parameters held fixed,
    which drops the noisy score term, and (2) a hook multiplies the gradient reaching each z_k by w~_k once more.
    Its signal-to-noise ratio then grows with K. Only for posteriors whose density at a given z the model can
    evaluate (model.posterior_log_prob: the Gaussian, not a planar flow). Shapes: (B, D) -> 2 x (B,).
    """
    params = model.posterior_params(x)
    z, _ = model.draw_posterior(params, k, generator)  # (K, B, L): the path through which the encoder gets its gradient
    log_qz_x = model.posterior_log_prob({name: p.detach() for name, p in params.items()}, z)  # (1): no score term
    log_pz = model.prior.log_prob(z)
    log_w = bernoulli_log_likelihood(model.decode(z), x) + log_pz - log_qz_x  # (K, B)
    if z.requires_grad:
        weights = torch.softmax(log_w, 0).detach()  # w~_k
        z.register_hook(lambda grad: grad * weights[..., None])  # (2)
    return IWAE(torch.logsumexp(log_w, 0) - math.log(k), (log_qz_x - log_pz).mean(0))


def importance_estimate(log_weights: Callable[[int], torch.Tensor], k: int,
                        chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """log (1/K) sum_k w_k from K importance weights drawn `chunk` at a time, and its delta-method standard error.

    log_weights(c) draws c more and returns their log w, shape (c, B). A running logsumexp over the chunks keeps
    memory at one chunk's draws whatever K is (under torch.no_grad(), as the callers run it: with autograd on, every
    chunk's graph is kept); the same running sum of w^2 gives the standard error
    sqrt((mean(w^2) / mean(w)^2 - 1) / K). Shapes: -> (B,), (B,).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    lse = lse2 = None
    for start in range(0, k, chunk):
        log_w = log_weights(min(chunk, k - start))  # (c, B)
        if lse is None:
            lse = lse2 = torch.full_like(log_w[0], -math.inf)
        lse = torch.logaddexp(lse, torch.logsumexp(log_w, 0))
        lse2 = torch.logaddexp(lse2, torch.logsumexp(2 * log_w, 0))
    estimate = lse - math.log(k)
    ratio = torch.exp(lse2 - math.log(k) - 2 * estimate)  # mean(w^2) / mean(w)^2 >= 1
    return estimate, torch.sqrt((ratio - 1).clamp_min(0) / k)


@torch.no_grad()
def iwae_bound(model, x: torch.Tensor, k: int, chunk: int | None = None,
               generator: torch.Generator | None = None, return_se: bool = False):
    """log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x), in chunks of samples (importance_estimate).

    A running logsumexp over chunks keeps memory at chunk * B * D floats whatever K is.
    With return_se, also the delta-method Monte Carlo standard error of the estimate,
    sqrt((mean(w^2) / mean(w)^2 - 1) / K). Shapes: (B, D) -> (B,) [, (B,)].
    """
    def chunk_log_weights(c: int) -> torch.Tensor:
        if x.device.type == "cpu":
            threads.check()  # the thread count fitted to the machine's load now (vaelib.threads)
        return posterior_log_weights(model, x, c, generator)  # (c, B)

    chunk = chunk or max(1, min(k, (1 << 22) // max(1, x.shape[0] * x.shape[-1])))
    estimate, se = importance_estimate(chunk_log_weights, k, chunk)
    return (estimate, se) if return_se else estimate
