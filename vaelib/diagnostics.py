"""What a trained VAE does with its latent dimensions, and its scores in the units papers use.

A latent dimension j is *active* when Var_x(mu_j(x)) > 0.01 [Burda et al. 2016]. An inactive dimension
carries no information about x, and the ELBO pushes its q(z_j|x) onto the prior, so its share of the KL,
0.5 * (exp(logvar_j) + mu_j^2 - 1 - logvar_j), goes to 0 (posterior collapse). Log-likelihoods are in nats
per image; papers also quote bits per dimension, nats / (D ln 2).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import NamedTuple

import torch

from .config import float64_device
from .evaluate import evaluating


class ActiveUnits(NamedTuple):
    variance: torch.Tensor  # (L,) variance over the images of mu_j(x)
    active: torch.Tensor  # (L,) bool: variance > threshold
    count: int  # active.sum()


@torch.no_grad()
def encode_all(model, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's mu and logvar for every image, in batches. Shapes: (N, D) -> (N, L), (N, L)."""
    device = next(model.parameters()).device  # x is copied there, batch by batch; the model stays put
    with evaluating(model):
        parts = [model.encode(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
    return torch.cat([mu for mu, _ in parts]), torch.cat([logvar for _, logvar in parts])


def as_float64(t: torch.Tensor) -> torch.Tensor:
    """A float64 copy of t, on the CPU where its device has no float64 (Apple's MPS)."""
    return t.to(float64_device(t.device), torch.float64)


def active_units(model, x: torch.Tensor, threshold: float = 0.01, batch_size: int = 1000) -> ActiveUnits:
    """Which latent dimensions the encoder uses: Var_x(mu_j(x)) > threshold.

    The variance is over the images of x (divided by N, as numpy.var), computed in float64.
    Shapes: (N, D) -> (L,), (L,), int. [Burda et al. 2016: threshold 10^-2]
    """
    mu, _ = encode_all(model, x, batch_size)
    variance = as_float64(mu).var(0, correction=0)
    active = variance > threshold
    return ActiveUnits(variance, active, int(active.sum()))


def kl_per_dimension(model, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Each latent dimension's share of KL(q(z|x) || p(z)), averaged over the images of x, in nats.

    0.5 * mean_n (exp(logvar_nj) + mu_nj^2 - 1 - logvar_nj); the sum over j is the mean KL of
    vaelib.elbo.kl_standard_normal [Kingma & Welling 2014, App. B]. In float64. Shapes: (N, D) -> (L,).
    """
    if not model.closed_form_kl:
        raise ValueError("kl_per_dimension splits the closed-form KL to N(0, I); this model's KL has none (a planar "
                         "posterior or a learned prior): estimate it per image with "
                         "vaelib.evaluate.per_image_terms(model, x).kl")
    mu, logvar = (as_float64(t) for t in encode_all(model, x, batch_size))  # exp(logvar) - 1 - logvar cancels near 0
    return 0.5 * (logvar.exp() + mu.pow(2) - 1 - logvar).mean(0)


def bits_per_dim(nats, D: int = 784):
    """A negative log-likelihood per image in nats, as bits per pixel: nats / (D ln 2). Float or tensor."""
    return nats / (D * math.log(2))


def benchmark_results(name: str) -> Path:
    """benchmarks/results/<name> of the source checkout, where runs measured by hand are committed (an
    installed vaelib has none: check that the files exist before reading them)."""
    return Path(__file__).resolve().parents[1] / "benchmarks" / "results" / name


class TimedRun(NamedTuple):
    """What a `/usr/bin/time -v python -m vaelib train ...` log records."""
    wall_minutes: float  # the whole run, evaluation included
    wall_clock: str  # the same as /usr/bin/time printed it (h:mm:ss or m:ss)
    peak_gib: float  # the process's maximum resident set
    test_accuracy: float | None  # what an M2 run printed as "test accuracy (q(y|x))"; None for other models


def timed_run(log: str) -> TimedRun:
    """Read the text of a training run's log written under `/usr/bin/time -v` (benchmarks/results/m2_cs236/)."""
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", log)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", log)
    if wall is None or peak is None:
        raise ValueError("this log holds no /usr/bin/time -v report: the run did not finish, or was not timed")
    accuracy = re.search(r"test accuracy \(q\(y\|x\)\)\s+([0-9.]+)", log)
    minutes = sum(float(part) * 60**i for i, part in enumerate(reversed(wall.group(1).split(":")))) / 60
    return TimedRun(minutes, wall.group(1), int(peak.group(1)) / 2**20,
                    None if accuracy is None else float(accuracy.group(1)))
