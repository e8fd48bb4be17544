"""The variational autoencoder of Kingma & Welling (2014), "Auto-Encoding Variational Bayes".

Generative model p(x, z) = p(z) p(x|z) with p(z) = N(0, I) and
p(x|z) = prod_d Bernoulli(x_d; sigmoid(logits_d(z))); the decoder returns the
logits, never probabilities. Inference model (the encoder) q(z|x) = N(mu(x), diag(exp(logvar(x)))).
The default shape is the original course notebook's: 784-256-128-(mu, logvar) and 2-128-256-784.

ModelConfig offers two variants, both off by default: a planar flow after the encoder's Gaussian
(posterior="planar", vaelib.flows) and a learned prior (prior="mog" or "vamp", vaelib.priors). The KL is
then estimated from the sampled z, as log q(z|x) - log p(z), instead of in closed form.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig, without_later_defaults
from .elbo import LOG_2PI, log_normal
from .flows import PlanarFlow
from .priors import MixturePrior, VampPrior, mixture_log_prob, mixture_sample


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(sizes: list[int], activation: str = "relu") -> nn.Sequential:
    """Linear layers with the activation between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + std * eps with eps ~ N(0, I): a sample of q(z|x) that gradients flow through.

    Shapes: (..., L), (..., L) -> (..., L). [Kingma & Welling 2014, Sec. 2.4]
    """
    if eps is None:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


class VAE(nn.Module):
    """Encoder x -> (mu, logvar), reparametrised sample z, decoder z -> logits."""

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig()
        D, H, L = self.config.x_dim, list(self.config.hidden), self.config.z_dim
        act = self.config.activation
        self.encoder = nn.Sequential(*mlp([D, *H], act), ACTIVATIONS[act]()) if H else nn.Identity()
        width = H[-1] if H else D
        self.mu_head = nn.Linear(width, L)
        self.logvar_head = nn.Linear(width, L)
        self.decoder = mlp([L, *reversed(H), D], act)
        # The variants add modules after the plain VAE's, so that the plain one's weights and keys stay as they were.
        planar = self.config.posterior == "planar"
        self.flow = PlanarFlow(width, L, self.config.flow_layers) if planar else None
        C, prior = self.config.prior_components, self.config.prior
        self.prior = MixturePrior(L, C) if prior == "mog" else VampPrior(D, C) if prior == "vamp" else None

    @property
    def analytic_kl(self) -> bool:
        """Whether KL(q(z|x) || p(z)) has a closed form: a Gaussian q and the N(0, I) prior."""
        return self.flow is None and self.prior is None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of q(z|x). Shapes: (B, D) -> (B, L), (B, L)."""
        h = self.encoder(x)
        return self.mu_head(h), self.logvar_head(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of p(x|z). Shapes: (..., L) -> (..., D)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """One reparametrised pass: logits (B, D), and mu (B, L), logvar (B, L) of the Gaussian before any flow."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator=generator)
        if self.flow is not None:
            z, _ = self.flow(z, self.encoder(x))
        return self.decode(z), mu, logvar

    def sample_posterior(self, x: torch.Tensor, k: int | None = None,
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """z ~ q(z|x), reparametrised, and log q(z|x): the encoder's Gaussian, then the planar flow if there is one.

        log q(z|x) = log N(z_0; mu, std^2) - sum_l log |det df_l/dz_(l-1)| (vaelib.flows). With k, k draws per
        image. Shapes: (B, D) -> z (B, L), log_q (B,); with k: (k, B, L), (k, B).
        """
        h = self.encoder(x)
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        eps = torch.randn(mu.shape if k is None else (k, *mu.shape), generator=generator, device=mu.device,
                          dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps
        log_q = -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(-1)  # log N(z; mu, std^2), as z - mu = std * eps
        if self.flow is not None:
            z, log_det = self.flow(z, h)
            log_q = log_q - log_det
        return z, log_q

    def prior_components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The learned prior's Gaussians: means (C, L), log-variances (C, L), logits of their weights (C,)."""
        if isinstance(self.prior, VampPrior):
            mu, logvar = self.encode(self.prior.pseudo_inputs)  # q(z|u_c), equal weights
            return mu, logvar, mu.new_zeros(len(mu))
        return self.prior.means, self.prior.logvars, self.prior.logits

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z): N(0, I), or the learned mixture (vaelib.priors). Shapes: (..., L) -> (...)."""
        if self.prior is None:
            return log_normal(z)
        return mixture_log_prob(z, *self.prior_components())

    @torch.no_grad()
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws z ~ p(z), made on the generator's device (the same z for a seed on every device). Shape: (n, L)."""
        if self.prior is not None:
            return mixture_sample(n, *self.prior_components(), generator=generator)
        drawn_on = generator.device if generator is not None else "cpu"
        device = next(self.parameters()).device
        return torch.randn(n, self.config.z_dim, generator=generator, device=drawn_on).to(device)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixel probabilities sigmoid(logits(z)) for n draws z ~ p(z). Shape: (n, D)."""
        return torch.sigmoid(self.decode(self.sample_prior(n, generator)))


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
    import os
    from pathlib import Path

    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(path, model: VAE, **extra) -> None:
    """Weights (as CPU copies, from a model on any device, which is left where it is) and settings, in a file that
    torch.load(..., weights_only=True) can read, written atomically."""
    from dataclasses import asdict

    config = without_later_defaults(asdict(model.config))  # a plain VAE's file reads as it always did
    config["hidden"] = list(config["hidden"])
    weights = {name: t.detach().cpu() for name, t in model.state_dict().items()}  # copies; the model stays put
    checkpoint = {"format": "vaelib-vae-1", "config": config, "state_dict": weights, **extra}
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def read_checkpoint(path, map_location="cpu") -> dict:
    """What save_checkpoint wrote at `path`: "config" (as a ModelConfig), "state_dict" and the extras
    (data_source, ...); a missing, foreign or damaged file raises CheckpointError saying what to do."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: train one first, e.g. "
                              f"`python -m vaelib train --out {path.parent}`, or check the path")
    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
        return {**saved, "config": ModelConfig(**saved["config"])}
    except Exception as err:
        raise CheckpointError(f"{path} is not a vaelib checkpoint or is damaged ({type(err).__name__}: "
                              f"{err}); train again to recreate it") from err


def load_checkpoint(path, config: ModelConfig | None = None, map_location="cpu", saved: dict | None = None) -> VAE:
    """Rebuild the VAE saved at `path`; if `config` is given, the checkpoint must have that shape.
    `saved`: what read_checkpoint(path) returned, when the caller has read it already."""
    saved = saved or read_checkpoint(path, map_location)
    saved_config = saved["config"]
    if config is not None and config != saved_config:
        raise CheckpointError(f"{path} holds a model of shape {saved_config}, not the {config} asked "
                              f"for: load it without a config, or train a model of that shape")
    model = VAE(saved_config)
    try:
        model.load_state_dict(saved["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"the weights in {path} do not fit its own settings {saved_config}: "
                              f"the file is damaged; train again to recreate it") from err
    return model
