"""Scoring a trained model on every image: the ELBO and its terms, and the importance-weighted log p(x).

Evaluation still samples z: the ELBO is an expectation over q(z|x), and decoding the mean alone would score
another quantity (notebook 4). Its eps come from a fixed seed, so a model's score is the same at every call.
"""

from __future__ import annotations

import contextlib

import torch
from tqdm.auto import tqdm

from . import registry
from .elbo import ELBO, elbo_terms, iwae_bound

EVAL_SEED = 1234  # the eps of the evaluation ELBO: fixed, so the test loss is the same every time


@contextlib.contextmanager
def evaluating(model: torch.nn.Module):
    """The model in eval mode inside, and back in the mode it was in after (training or not)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def per_image_terms(model, x: torch.Tensor, batch_size: int = 1000, seed: int = EVAL_SEED) -> ELBO:
    """elbo_terms (or the model kind's own terms) of every image in x: elbo, log_px_z, kl, one sample of z each
    from a fixed seed.

    Shapes: (N, D) -> ELBO of three (N,) tensors.
    """
    generator = torch.Generator(device=x.device).manual_seed(seed)
    terms = registry.KINDS[model.config.kind].terms or elbo_terms  # the kind's own bound, if it has one
    with evaluating(model):
        parts = [terms(model, x[i:i + batch_size], generator) for i in range(0, len(x), batch_size)]
    return ELBO(*(torch.cat(t) for t in zip(*parts)))


def evaluate_terms(model, x: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """Mean negative ELBO and mean KL over every image of x, in nats (same values at every call)."""
    terms = per_image_terms(model, x, batch_size)
    return -terms.elbo.mean().item(), terms.kl.mean().item()


@torch.no_grad()
def per_image_iwae(model, x: torch.Tensor, k: int, batch_size: int = 100, seed: int = EVAL_SEED,
                   progress: bool = False, return_se: bool = False):
    """Importance-weighted estimate of log p(x) for every image, K samples each (vaelib.elbo.iwae_bound), and
    with return_se its Monte Carlo standard error. (N, D) -> (N,) [, (N,)]."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    with evaluating(model):
        parts = [iwae_bound(model, x[i:i + batch_size], k, generator=generator, return_se=True)
                 for i in tqdm(range(0, len(x), batch_size), desc=f"IWAE K={k}", disable=not progress)]
    estimate, se = (torch.cat(p) for p in zip(*parts))
    return (estimate, se) if return_se else estimate
