"""The inference gap split into its approximation and amortisation parts, for any posterior family of vaelib.

[Cremer, Li & Duvenaud 2018, "Inference Suboptimality in Variational Autoencoders"]:

    log p(x) - ELBO(x; q_phi)  =  [log p(x) - ELBO(x; q*_x)]  +  [ELBO(x; q*_x) - ELBO(x; q_phi)]
         inference gap              approximation gap              amortisation gap

q_phi is what the encoder gives image x; q*_x is the best member of the same family for x alone, found
here by gradient ascent on x's ELBO over x's own *local* parameters: the Gaussian's mean and log-variance,
and, for a planar-flow posterior (vaelib.flows), the raw u, w, b of every layer, which the encoder would
otherwise compute from x. The prior and the decoder are held fixed; only q changes.

Gradient ascent finds a local maximum: the fitted q*_x can miss a better one (a posterior with two modes
has a local maximum at each), so, up to the Monte Carlo error of the ELBO estimates (a few hundredths of
a nat with 1,000 draws), the approximation gap it gives is an upper bound and the amortisation gap a
lower bound. `fit_local` therefore takes several starting points and keeps the best per image.
"""

from __future__ import annotations

import math

import torch

from .elbo import LOG_2PI, bernoulli_log_likelihood
from .flows import planar


def local_parameters(model, x: torch.Tensor) -> dict:
    """What the encoder gives each image: {"mu": (B, L), "logvar": (B, L), "flow": (B, layers * (2 L + 1))
    or None}, detached copies (fitting them changes nothing of the model's)."""
    with torch.no_grad():
        h = model.encoder(x)
        flow = model.flow.head(h).clone() if model.flow is not None else None
        return {"mu": model.mu_head(h).clone(), "logvar": model.logvar_head(h).clone(), "flow": flow}


def local_log_weights(model, x: torch.Tensor, params: dict, k: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """log p(x|z_k) + log p(z_k) - log q(z_k) for k draws z_k ~ q, q given by the local parameters `params`.

    With the encoder's own parameters (local_parameters) and the same generator this is exactly
    vaelib.elbo.posterior_log_weights: the same draws, in the same order. Shapes: (B, D) -> (k, B).
    """
    mu, logvar, flow = params["mu"], params["logvar"], params["flow"]
    eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + torch.exp(0.5 * logvar) * eps
    log_q = -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(-1)
    if flow is not None:
        L = mu.shape[-1]
        for p in flow.unflatten(-1, (-1, 2 * L + 1)).unbind(1):  # one (B, 2 L + 1) per layer
            z, log_det = planar(z, p[:, :L], p[:, L:2 * L], p[:, 2 * L])
            log_q = log_q - log_det
    return bernoulli_log_likelihood(model.decode(z), x) + model.log_prior(z) - log_q


def local_elbo(model, x: torch.Tensor, params: dict, k: int, seed: int = 0) -> torch.Tensor:
    """Each image's ELBO under q given by `params`, the mean of k draws from a fixed seed. (B, D) -> (B,)."""
    with torch.no_grad():
        generator = torch.Generator(x.device).manual_seed(seed)
        return local_log_weights(model, x, params, k, generator).mean(0)


def fit_local(model, x: torch.Tensor, starts: list[dict], steps: int, samples: int = 32, lr: float = 0.02,
              eval_samples: int = 1000) -> tuple[dict, torch.Tensor]:
    """q*_x: each image's own local parameters, by Adam on its ELBO (`samples` draws a step, the step size
    decaying linearly to 0), from each of `starts` (dicts as local_parameters gives).

    Image n's ELBO depends only on its own parameters, so maximising the sum fits every image at once.
    Per image, the best of the candidates (every start, and every fit) is kept, chosen by an ELBO estimate
    from `eval_samples` draws; the ELBO returned is estimated again from fresh draws, so that the choice
    does not bias it upwards. A candidate whose estimate is not finite is never chosen. The model is left
    as it was: only gradients with respect to the local parameters are taken. Returns the best local
    parameters and their ELBO (B,).
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}: to score q without fitting it, use local_elbo")
    candidates = [{name: None if t is None else t.detach() for name, t in start.items()} for start in starts]
    for start in starts:
        params = {name: None if t is None else t.detach().clone().requires_grad_() for name, t in start.items()}
        leaves = [t for t in params.values() if t is not None]
        optimizer = torch.optim.Adam(leaves, lr=lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
        generator = torch.Generator(x.device).manual_seed(0)
        for _ in range(steps):
            loss = -local_log_weights(model, x, params, samples, generator).mean(0).sum()
            grads = torch.autograd.grad(loss, leaves)  # the model's parameters get no .grad
            for leaf, grad in zip(leaves, grads):
                leaf.grad = grad
            optimizer.step(), schedule.step()
        candidates.append({name: None if t is None else t.detach() for name, t in params.items()})
    elbos = torch.stack([local_elbo(model, x, c, eval_samples, seed=1) for c in candidates])  # (candidates, B)
    best = elbos.nan_to_num(nan=-math.inf).argmax(0)  # (B,)
    rows = torch.arange(len(best), device=best.device)
    chosen = {name: None if candidates[0][name] is None else
              torch.stack([c[name] for c in candidates])[best, rows] for name in candidates[0]}
    return chosen, local_elbo(model, x, chosen, eval_samples, seed=2)


def posterior_moments_start(model, x: torch.Tensor, log_post: torch.Tensor, z1: torch.Tensor,
                            z2: torch.Tensor) -> dict:
    """A start at the true posterior's mean and per-axis variance (from vaelib.exact.posterior_grid's
    log_post (B, G, G) on axes z1, z2): for posteriors the encoder's Gaussian sits beside. A planar flow
    starts as the identity (each layer's u_hat = 0, its w and b the encoder's), so that q starts at those
    moments. (B, D) -> local parameters."""
    start = local_parameters(model, x)
    if start["flow"] is not None:
        L = start["mu"].shape[-1]
        layers = start["flow"].unflatten(-1, (-1, 2 * L + 1)).clone()  # (B, layers, 2 L + 1): u, w, b
        w = layers[..., L:2 * L]
        layers[..., :L] = math.log(math.e - 1) * w / w.pow(2).sum(-1, keepdim=True)  # softplus(w . u) = 1: u_hat = 0
        start["flow"] = layers.flatten(-2)
    h2 = (z1[1] - z1[0]) * (z2[1] - z2[0])
    mass = log_post.exp() * h2  # (B, G, G), sums to 1 over the grid
    zz1, zz2 = z1[None, None, :], z2[None, :, None]
    mean = torch.stack([(mass * zz1).sum((1, 2)), (mass * zz2).sum((1, 2))], -1)  # (B, 2)
    var = torch.stack([(mass * (zz1 - mean[:, 0, None, None]) ** 2).sum((1, 2)),
                       (mass * (zz2 - mean[:, 1, None, None]) ** 2).sum((1, 2))], -1)
    return {**start, "mu": mean.to(start["mu"].dtype),
            "logvar": var.clamp_min(math.exp(-20)).log().to(start["logvar"].dtype)}
