"""The variational autoencoder of Kingma & Welling (2014), "Auto-Encoding Variational Bayes", and the protocol
every consumer of a model relies on.

p(x, z) = p(z) p(x|z), p(z) = N(0, I), p(x|z) = prod_d Bernoulli(x_d; sigmoid(logits_d(z))): the decoder returns
logits, never probabilities; q(z|x) = N(mu(x), diag(exp(logvar(x)))). The default shape is the original course
notebook's, 784-256-128-(mu, logvar) and 2-128-256-784. Two variants, off by default: a planar flow after the
Gaussian (vaelib.flows) and a learned prior (vaelib.priors); their KL is estimated at the sampled z as
log q(z|x) - log p(z). `build_model` builds a model from its settings (vaelib.registry).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from . import registry
from .config import ModelConfig, without_later_defaults
from .elbo import gaussian_draw, kl_standard_normal, log_normal, reparameterize  # noqa: F401  (reparameterize: API)
from .flows import PlanarFlow, planar_flow
from .priors import MixturePrior, StandardNormal, VampPrior


@runtime_checkable
class LatentVariableModel(Protocol):
    """What the bounds, training, the quadrature, the gap fits and the plots use of a model, and nothing more.

    q(z|x) is given per image by its parameters, a dict of (B, ...) tensors with at least "mu" and "logvar" (vaelib.gaps
    fits them image by image), and every draw comes with its log q. Shapes: x (B, D), z (B, L) or with k draws
    (k, B, L), log q (B,) or (k, B); D = config.x_dim, L = config.z_dim.
    """
    config: ModelConfig
    prior: nn.Module  # p(z): log_prob(z) and sample(n, generator) (vaelib.priors)
    closed_form_kl: bool  # whether kl() is KL(N(mu, exp(logvar)) || N(0, I)) in closed form

    def encode(self, x): """The encoder's Gaussian before any flow: mu, logvar (B, L) each."""
    def posterior_params(self, x): """q(z|x)'s parameters for each image."""
    def draw_posterior(self, params, k=None, generator=None): """z ~ q, reparametrised, and log q(z)."""
    def posterior_log_prob(self, params, z): """log q(z) at a given z (a ValueError where the family has none)."""
    def sample_posterior(self, x, k=None, generator=None): """draw_posterior(posterior_params(x), k, generator)."""
    def kl(self, params, z, log_q): """KL(q || p) per image: closed form where it has one, else log q - log p(z)."""
    def decode(self, z): """Logits of p(x|z), (..., D)."""


class _ELU(torch.autograd.Function):
    """ELU(x) = x for x > 0, exp(x) - 1 otherwise, as (exp(min(x, 0)) - 1) + relu(x) (exactly x where x > 0). Its
    gradient, exp(min(x, 0)), is recomputed from x in the backward pass, so that it is differentiable again."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.sub(torch.exp(torch.clamp_max(x, 0)), 1).add_(torch.relu(x))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.exp(torch.clamp_max(x, 0))


class ELU(nn.ELU):
    """nn.ELU (alpha 1), computed on the CPU with exp instead of the expm1 of PyTorch's CPU kernel, which is several
    times slower (benchmarks/bench_m2_step.py times both, in Stanford CS236's M2 and alone); on other devices,
    PyTorch's own. The values differ from nn.ELU's by roundoff (about 1e-7 near 0); tests/test_model.py checks
    them, the gradient and the second derivative against torch.nn.functional.elu."""

    def __init__(self):
        super().__init__()  # alpha 1, not in place: the only ELU the course builds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ELU.apply(x) if x.device.type == "cpu" else nn.functional.elu(x)


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": ELU}


def mlp(sizes: list[int], activation: str = "relu") -> nn.Sequential:
    """Linear layers with the activation between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def mlp_encoder(config: ModelConfig) -> tuple[nn.Module, int]:
    """D-H1-...-Hn with the activation after every layer, and its width Hn (the image itself without layers)."""
    D, H, act = config.x_dim, list(config.hidden), config.activation
    return (nn.Sequential(*mlp([D, *H], act), ACTIVATIONS[act]()), H[-1]) if H else (nn.Identity(), D)


def mlp_decoder(config: ModelConfig) -> nn.Module:
    """L-Hn-...-H1-D, the encoder's widths mirrored, returning logits."""
    return mlp([config.z_dim, *reversed(config.hidden), config.x_dim], config.activation)


class VAE(nn.Module):
    """Encoder x -> (mu, logvar), reparametrised sample z, decoder z -> logits; the network is config.arch's."""

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        network = registry.NETWORKS[config.arch]
        self.encoder, width = network.encoder(config)  # built in this order: the order draws the initial weights
        self.mu_head = nn.Linear(width, config.z_dim)
        self.logvar_head = nn.Linear(width, config.z_dim)
        self.decoder = network.decoder(config)
        # The variants add modules after the plain VAE's, so that the plain one's weights and keys stay as they were.
        self.flow = PlanarFlow(width, config.z_dim, config.flow_layers) if config.posterior == "planar" else None
        self.prior = make_prior(config, self.encode)

    @property
    def closed_form_kl(self) -> bool:
        return self.flow is None and isinstance(self.prior, StandardNormal)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of the encoder's Gaussian. Shapes: (B, D) -> (B, L), (B, L)."""
        h = self.encoder(x)
        return self.mu_head(h), self.logvar_head(h)

    def posterior_params(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """mu, logvar (B, L) and, with a planar flow, its raw u, w, b (B, layers * (2 L + 1)) from one encoder pass."""
        h = self.encoder(x)
        params = {"mu": self.mu_head(h), "logvar": self.logvar_head(h)}
        return params if self.flow is None else {**params, "flow": self.flow.head(h)}

    def draw_posterior(self, params: dict, k: int | None = None, generator: torch.Generator | None = None):
        """z ~ q and log q(z): the Gaussian, then the planar flow if params has one, where
        log q(z_n) = log N(z_0; mu, std^2) - sum_l log |det df_l/dz_(l-1)| (vaelib.flows)."""
        z, log_q = gaussian_draw(params["mu"], params["logvar"], k, generator)
        if params.get("flow") is None:
            return z, log_q
        z, log_det = planar_flow(z, params["flow"])
        return z, log_q - log_det

    def posterior_log_prob(self, params: dict, z: torch.Tensor) -> torch.Tensor:
        if params.get("flow") is not None:
            raise ValueError("log q(z|x) at a given z needs a planar flow's inverse, which it does not have: with a "
                             "planar posterior use the draws' own log q (and --gradient plain for DReG)")
        return log_normal(z, params["mu"], params["logvar"])

    def sample_posterior(self, x: torch.Tensor, k: int | None = None, generator: torch.Generator | None = None):
        """z ~ q(z|x), reparametrised, and log q(z|x). Shapes: (B, D) -> (B, L), (B,); with k: (k, B, L), (k, B)."""
        return self.draw_posterior(self.posterior_params(x), k, generator)

    def kl(self, params: dict, z: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
        if self.closed_form_kl:
            return kl_standard_normal(params["mu"], params["logvar"])
        return log_q - self.prior.log_prob(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of p(x|z). Shapes: (..., L) -> (..., D)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """One reparametrised pass: logits (B, D), and mu (B, L), logvar (B, L) of the Gaussian before any flow."""
        params = self.posterior_params(x)
        z, _ = self.draw_posterior(params, generator=generator)
        return self.decode(z), params["mu"], params["logvar"]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixel probabilities sigmoid(logits(z)) for n draws z ~ p(z). Shape: (n, D)."""
        return torch.sigmoid(self.decode(self.prior.sample(n, generator)))


def make_prior(config: ModelConfig, encode) -> nn.Module:
    """config.prior's p(z); only that one is built, so that only its initial values are drawn."""
    if config.prior == "mog":
        return MixturePrior(config.z_dim, config.prior_components)
    if config.prior == "vamp":
        return VampPrior(config.x_dim, config.prior_components, encode)
    return StandardNormal(config.z_dim)


registry.NETWORKS["mlp"] = registry.Network(encoder=mlp_encoder, decoder=mlp_decoder)
registry.KINDS["vae"] = registry.Kind(build=VAE)


def build_model(config: ModelConfig | None = None) -> nn.Module:
    """The model `config` describes, untrained: its kind's (vaelib.registry.KINDS) with its network. The one
    place models are built: the command line, checkpoints, the cache, the studies and training call it."""
    config = config or ModelConfig()
    return registry.KINDS[config.kind].build(config)


def require_2d(model: nn.Module, what: str, instead: str = "") -> None:
    """Raise a ValueError that says what to do when `what` needs a 2-D latent space and the model has another."""
    z_dim = model.config.z_dim
    if z_dim != 2:
        raise ValueError(f"{what} needs a 2-D latent space; this model has z_dim={z_dim}. "
                         f"Train one with --z-dim 2 (ModelConfig(z_dim=2)){instead}.")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or of another shape; the message says what to do."""


def atomic_write(path, write) -> None:
    """write(tmp) to a temporary file beside `path`, then rename it to `path`: a reader, or a run killed
    half-way, sees the old file or the new one, never a part of one."""
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(path, model: nn.Module, **extra) -> None:
    """Weights (as CPU copies, from a model on any device, which is left where it is) and settings, in a file that
    torch.load(..., weights_only=True) can read, written atomically."""
    config = without_later_defaults(asdict(model.config))  # a plain VAE's file reads as it always did
    config["hidden"] = list(config["hidden"])
    if "channels" in config:
        config["channels"] = list(config["channels"])
    weights = {name: t.detach().cpu() for name, t in model.state_dict().items()}  # copies; the model stays put
    checkpoint = {"format": "vaelib-vae-1", "config": config, "state_dict": weights, **extra}
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def read_checkpoint(path, map_location="cpu") -> dict:
    """What save_checkpoint wrote at `path`: "config" (as a ModelConfig), "state_dict" and the extras
    (data_source, ...); a missing, foreign or damaged file raises CheckpointError saying what to do."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: train one first, e.g. "
                              f"`python -m vaelib train --out {path.parent}`, or check the path")
    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
        settings = saved["config"]
    except Exception as err:
        raise CheckpointError(f"{path} is not a vaelib checkpoint or is damaged ({type(err).__name__}: "
                              f"{err}); train again to recreate it") from err
    try:
        return {**saved, "config": ModelConfig(**settings)}
    except (TypeError, ValueError) as err:  # settings this vaelib does not know: a network or kind not registered
        raise CheckpointError(f"{path} holds a model whose settings this vaelib does not know ({err}): import the "
                              f"module that registers it (vaelib.registry), or use the vaelib that wrote it") from err


def load_checkpoint(path, config: ModelConfig | None = None, map_location="cpu",
                    saved: dict | None = None) -> nn.Module:
    """Rebuild the model saved at `path`; if `config` is given, the checkpoint must have that shape.
    `saved`: what read_checkpoint(path) returned, when the caller has read it already."""
    saved = saved or read_checkpoint(path, map_location)
    saved_config = saved["config"]
    if config is not None and config != saved_config:
        raise CheckpointError(f"{path} holds a model of shape {saved_config}, not the {config} asked "
                              f"for: load it without a config, or train a model of that shape")
    model = build_model(saved_config)
    try:
        model.load_state_dict(saved["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"the weights in {path} do not fit its own settings {saved_config}: "
                              f"the file is damaged; train again to recreate it") from err
    return model
