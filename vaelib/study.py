"""Comparing trained settings over seeds, on one set of test images (notebooks 5, 7, 8 and 10).

Two kinds of noise: the spread between training seeds and the test images. Each setting is trained from
several seeds (`fit`), every model scored on the same images (`score`), `table` shows means and spreads over
seeds, and `compare` differences two settings seed by seed and image by image.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import torch

from .config import ModelConfig, TrainConfig, seed_everything
from .data import MNISTData
from .diagnostics import active_units, bits_per_dim, kl_per_dimension
from .evaluate import per_image_iwae, per_image_terms
from .model import build_model
from .runs import trained
from .train import History, settings as train_settings, train


USED_NATS = 0.1  # a latent dimension is "used" when it carries more than this share of the rate, in nats


def fit(data: MNISTData, config: ModelConfig, steps: int, beta: float = 1.0, binarisation: str = "dynamic",
        device: torch.device | str = "cpu", **options) -> tuple[torch.nn.Module, History]:
    """A model of shape `config` trained on data.train_x for `steps` steps from the seed in `options`, with the
    course defaults and the KL term weighted by `beta`; trained once and loaded after (vaelib.runs).

    `options` are TrainConfig's (seed, objective, iwae_train_k, gradient, lr, ...). `binarisation` names what
    data.train_x holds ("dynamic": grey levels, binarised afresh each step; "static": images binarised once) for
    the key of the model; the trainer is the same for both.
    """
    cfg = TrainConfig(steps=steps, beta=beta, model=config, **options)

    def train_now():
        seed_everything(cfg.seed)
        model = build_model(cfg.model).to(device)
        return model, train(model, data, cfg)

    model, history, _ = trained(fit_settings(cfg, data.source, binarisation), train_now, fit_label(cfg, binarisation))
    return model.to(device).eval(), history


DEFAULT_HIDDEN = ModelConfig().hidden
SHOWN = {"relu": "ReLU", "elu": "ELU", "tanh": "tanh"}  # activations as the papers write them


def hidden_label(hidden: tuple[int, ...]) -> str:
    """', 300-300 hidden' (the hidden widths), or ', no hidden layers'."""
    return f", {'-'.join(map(str, hidden))} hidden" if hidden else ", no hidden layers"


def fit_label(cfg: TrainConfig, binarisation: str) -> str:
    """The line vaelib.runs prints for a model of `fit`: its latent size, beta, binarisation and variants, the
    hidden widths and activations where they are not the defaults."""
    config, dreg = cfg.model, " (DReG)" if cfg.gradient == "dreg" else ""
    variant = "".join([f", {config.kind.upper()} with {cfg.labels} labels"
                       + (f", alpha {cfg.alpha:g}" if cfg.alpha is not None else "")
                       + (f", labelled bound x {cfg.labelled_bound:g}" if cfg.labelled_bound != 1 else "")
                       if cfg.labels is not None else "",  # labels: only a labelled kind (M2) has them
                       f", {config.arch} network" if config.arch != "mlp" else "",
                       hidden_label(config.hidden) if config.hidden != DEFAULT_HIDDEN else "",
                       f", {SHOWN[config.activation]} layers" if config.activation != "relu" else "",
                       f" ({SHOWN[config.classifier_activation]} in the classifier)"
                       if config.classifier_activation != "same" else "",
                       f", IWAE K = {cfg.iwae_train_k}{dreg}" if cfg.objective == "iwae" else "",
                       f", {config.flow_layers} planar layers" if config.posterior == "planar" else "",
                       f", {config.prior} prior of {config.prior_components}" if config.prior != "normal" else ""])
    return (f"L = {config.z_dim}, beta = {cfg.beta:g}, {binarisation} binarisation{variant}"
            + (f", seed {cfg.seed}" if cfg.seed else ""))


def fit_settings(cfg: TrainConfig, source: str, binarisation: str = "dynamic") -> dict:
    """What a model of `fit` is keyed by in vaelib.runs: the training settings, the data and its binarisation."""
    return {**train_settings(asdict(cfg)), "data": source, "binarisation": binarisation}


def score(model, x: torch.Tensor, k: int) -> dict:
    """Means over the images x in nats per image, on one sample of z per image with a fixed seed: the
    ELBO, the distortion -log p(x|z) and the rate KL(q(z|x) || p(z)); log p(x) by IWAE_k, mean and per
    image ("log_px_each", to compare models image by image); IWAE_k minus the ELBO; the active units
    (Burda et al.'s criterion, Var_x mu_j(x) > 0.01) and the dimensions used, those whose share of the
    rate is above USED_NATS (None where the KL has no closed form per dimension)."""
    terms = per_image_terms(model, x)
    log_px = per_image_iwae(model, x, k)  # (N,)
    return {"elbo": terms.elbo.mean().item(), "distortion": -terms.log_px_z.mean().item(),
            "rate": terms.kl.mean().item(), "log_px": log_px.mean().item(), "log_px_each": log_px,
            "iwae_gain": (log_px - terms.elbo).mean().item(),
            "active": active_units(model, x).count, "L": model.config.z_dim,
            "used": int((kl_per_dimension(model, x) > USED_NATS).sum()) if model.closed_form_kl else None}


def over_seeds(rows: list[dict], key: str, sign: float = 1) -> tuple[float, float]:
    """The mean and the standard deviation (n - 1) over seeds of one score; rows holds one score per seed."""
    if len(rows) < 2:
        raise ValueError(f"a spread between seeds needs at least 2 seeds, got {len(rows)}: train from more seeds")
    values = torch.tensor([sign * row[key] for row in rows], dtype=torch.float64)
    return values.mean().item(), values.std().item()


def compare(rows_a: list[dict], rows_b: list[dict], key: str = "log_px_each") -> tuple[torch.Tensor, float]:
    """b minus a, seed by seed, on the same images: the mean difference for each seed, and the largest
    of their standard errors over the images. (S lists of per-image tensors (N,)) -> (S,), float."""
    if len(rows_a) != len(rows_b):
        raise ValueError(f"compare pairs the seeds of two settings: got {len(rows_a)} and {len(rows_b)} seeds")
    if len({tuple(row[key].shape) for row in [*rows_a, *rows_b]}) != 1:
        raise ValueError("compare needs every model scored on the same images: score them all on one x")
    diffs = [row_b[key] - row_a[key] for row_a, row_b in zip(rows_a, rows_b)]
    return torch.stack([d.mean() for d in diffs]), max(d.std().item() / math.sqrt(len(d)) for d in diffs)


def settled(diffs: torch.Tensor, image_se: float, margin: float = 3.0) -> int:
    """Whether a per-seed difference (from compare) has a direction that survives both kinds of noise:
    +1 or -1 when every seed has that sign by more than `margin` image standard errors and the mean over
    seeds is more than `margin` of its own standard error (the spread between seeds / sqrt(seeds)) from 0;
    0 otherwise. A rule of thumb, not a significance test: with three seeds the second condition is a
    t statistic above 3 on 2 degrees of freedom (two-sided p about 0.1 on its own). (S,), float -> int."""
    if len(diffs) < 2:
        raise ValueError(f"a spread between seeds needs at least 2 seeds, got {len(diffs)}")
    seed_se = diffs.double().std().item() / math.sqrt(len(diffs))
    mean = diffs.double().mean().item()
    for sign in (1, -1):
        if (sign * diffs).min().item() > margin * image_se and sign * mean > margin * seed_se:
            return sign
    return 0


def table(groups: dict, name: str) -> str:
    """One line per setting: -ELBO, -log p(x), distortion and rate as mean ± sd over seeds (nats per
    image), the active units and the dimensions used of each seed, and -log p(x) in bits per dimension."""
    labels = {key: key if isinstance(key, str) else f"{key:g}" for key in groups}
    w = max(5, len(name), *(len(label) for label in labels.values()))
    lines = [f"{name:>{w}s} {'-ELBO':>13s} {'-log p(x)':>13s} {'distortion':>13s} {'rate':>13s}  {'active':>9s}"
             f"  {'used':>9s}  bits/dim"]
    for key, rows in groups.items():
        label = labels[key]
        cells = [over_seeds(rows, k, sign) for k, sign in [("elbo", -1), ("log_px", -1), ("distortion", 1),
                                                             ("rate", 1)]]
        active = ",".join(str(row["active"]) for row in rows)
        used = ",".join("-" if row.get("used") is None else str(row["used"]) for row in rows)
        lines.append(f"{label:>{w}s} " + " ".join(f"{m:7.2f} ± {sd:4.2f}" for m, sd in cells) +
                     f"  {active:>9s}  {used:>9s}  {bits_per_dim(cells[1][0]):8.3f}")
    return "\n".join(lines)
