"""The inference gap split into its approximation and amortisation parts, for any posterior family of vaelib.

[Cremer, Li & Duvenaud 2018, "Inference Suboptimality in Variational Autoencoders"]:

    log p(x) - ELBO(x; q_phi)  =  [log p(x) - ELBO(x; q*_x)]  +  [ELBO(x; q*_x) - ELBO(x; q_phi)]
         inference gap              approximation gap              amortisation gap

q_phi is what the encoder gives image x; q*_x is the best of the same family for x alone, found by gradient
ascent on x's ELBO over x's own parameters (model.posterior_params: mean, log-variance, a flow's raw u, w, b),
the prior and the decoder held fixed. Gradient ascent finds a local maximum, so, up to the Monte Carlo error
of the ELBO estimates, the approximation gap it gives is an upper bound and the amortisation gap a lower
bound; `fit_local` takes several starting points and keeps the best per image.
"""

from __future__ import annotations

import math

import torch

from .elbo import posterior_log_weights
from .flows import identity_start


def local_parameters(model, x: torch.Tensor) -> dict:
    """What the encoder gives each image, q(z|x)'s parameters (model.posterior_params: mu and logvar (B, L), and a
    planar flow's raw u, w, b), as detached copies: fitting them changes nothing of the model's."""
    with torch.no_grad():
        return {name: p.clone() for name, p in model.posterior_params(x).items()}


def local_elbo(model, x: torch.Tensor, params: dict, k: int, seed: int = 0) -> torch.Tensor:
    """Each image's ELBO under q given by `params`, the mean of k draws from a fixed seed. (B, D) -> (B,)."""
    with torch.no_grad():
        generator = torch.Generator(x.device).manual_seed(seed)
        return posterior_log_weights(model, x, k, generator, params).mean(0)


def fit_local(model, x: torch.Tensor, starts: list[dict], steps: int, samples: int = 32, lr: float = 0.02,
              eval_samples: int = 1000) -> tuple[dict, torch.Tensor]:
    """q*_x: each image's own local parameters, by Adam on its ELBO (`fit_start`), from each of `starts` (dicts
    as local_parameters gives).

    Image n's ELBO depends only on its own parameters, so maximising the sum fits every image at once. Per
    image the best candidate (every start and every fit) is kept, chosen by an ELBO from `eval_samples` draws
    and never one that is not finite; the ELBO returned comes from fresh draws, so the choice does not bias it
    upwards. Returns the best local parameters and their ELBO (B,).
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}: to score q without fitting it, use local_elbo")
    fits = [fit_start(model, x, start, steps, samples, lr) for start in starts]
    candidates = [{name: t.detach() for name, t in start.items()} for start in starts] + fits
    elbos = torch.stack([local_elbo(model, x, c, eval_samples, seed=1) for c in candidates])  # (candidates, B)
    best = elbos.nan_to_num(nan=-math.inf).argmax(0)  # (B,)
    rows = torch.arange(len(best), device=best.device)
    chosen = {name: torch.stack([c[name] for c in candidates])[best, rows] for name in candidates[0]}
    return chosen, local_elbo(model, x, chosen, eval_samples, seed=2)


def fit_start(model, x: torch.Tensor, start: dict, steps: int, samples: int, lr: float) -> dict:
    """The local parameters after `steps` Adam steps from `start` on each image's ELBO of `samples` draws, the
    step size decaying linearly to 0. Only the local parameters get gradients, never the model's."""
    params = {name: t.detach().clone().requires_grad_() for name, t in start.items()}
    leaves = list(params.values())
    optimizer = torch.optim.Adam(leaves, lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    generator = torch.Generator(x.device).manual_seed(0)
    for _ in range(steps):
        loss = -posterior_log_weights(model, x, samples, generator, params).mean(0).sum()
        for leaf, grad in zip(leaves, torch.autograd.grad(loss, leaves)):  # so that no model parameter gets .grad
            leaf.grad = grad
        optimizer.step()
        schedule.step()
    return {name: t.detach() for name, t in params.items()}


def posterior_moments_start(model, x: torch.Tensor, log_post: torch.Tensor, z1: torch.Tensor,
                            z2: torch.Tensor) -> dict:
    """A start at the true posterior's mean and per-axis variance (from vaelib.exact.posterior_grid's
    log_post (B, G, G) on axes z1, z2): for posteriors the encoder's Gaussian sits beside. A planar flow
    starts as the identity (each layer's u_hat = 0, its w and b the encoder's), so that q starts at those
    moments. (B, D) -> local parameters."""
    start = local_parameters(model, x)
    if start.get("flow") is not None:
        start["flow"] = identity_start(start["flow"], start["mu"].shape[-1])
    h2 = (z1[1] - z1[0]) * (z2[1] - z2[0])
    mass = log_post.exp() * h2  # (B, G, G), sums to 1 over the grid
    zz1, zz2 = z1[None, None, :], z2[None, :, None]
    mean = torch.stack([(mass * zz1).sum((1, 2)), (mass * zz2).sum((1, 2))], -1)  # (B, 2)
    var = torch.stack([(mass * (zz1 - mean[:, 0, None, None]) ** 2).sum((1, 2)),
                       (mass * (zz2 - mean[:, 1, None, None]) ** 2).sum((1, 2))], -1)
    return {**start, "mu": mean.to(start["mu"].dtype),
            "logvar": var.clamp_min(math.exp(-20)).log().to(start["logvar"].dtype)}
