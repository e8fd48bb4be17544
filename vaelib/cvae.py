"""The conditional VAE of Sohn, Lee & Yan (2015), "Learning structured output representation using deep conditional
generative models", completing a digit from one, two or three of its quadrants, built as Pyro's CVAE example
builds it (pyro-ppl/pyro examples/cvae; every difference in benchmarks/cvae_protocol.md).

x is the given part of an image, y its missing pixels; the mask is the same for every image (`missing_mask`).

    p(y, z|x) = p(z|x) p(y|x, z), p(z|x) = N(mu_p, diag(exp(logvar_p))), p(y|x, z) = prod Bernoulli(y_d; sigmoid(l_d))
    q(z|x, y) = N(mu_q, diag(exp(logvar_q)))
    log p(y|x) >= E_q[log p(y|x, z)] - KL(q(z|x, y) || p(z|x)) = ELBO(x, y)          [Sohn et al. 2015, eq. 4]
    log p(y|x) = log E_q[p(y|x, z) p(z|x) / q(z|x, y)] ~ log (1/K) sum_k w_k        (importance sampling, K draws)

The networks are Pyro's (two hidden layers of 500 ReLUs, L = 200), each returning logits or (mu, logvar):
    baseline     x_given (missing pixels set to FILL = -1) -> logits of every pixel; deterministic, trained first
    prior        x_given with its missing pixels filled by the baseline's guess sigmoid(logits) -> p(z|x)
    recognition  x_given with its missing pixels filled by y, i.e. the whole image -> q(z|x, y)
    generation   z -> logits of every pixel, of which only the missing ones are scored. Pyro's generation network
                 sees z alone (x reaches y only through p(z|x)); decoder_sees_given=True feeds it [z, x_given], as
                 Sohn et al.'s p(y|x, z) does.
The baseline is a submodule of the CVAE, never trained with it (`trainable_parameters`), as in Pyro.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .data import TEST_BINARISATION_SEED, binarise
from .elbo import ELBO, bernoulli_log_likelihood, gaussian_draw, importance_estimate, kl_normal, log_normal
from .evaluate import evaluating
from .m2 import concat
from .model import ACTIVATIONS, mlp

SIDE = 28  # pixels per row and column: D = SIDE^2
FILL = -1.0  # what a missing pixel reads as in the networks' inputs: Pyro's mask_with
GIVEN = {1: ("bottom-left",), 2: ("top-left", "bottom-left"), 3: ("top-left", "top-right", "bottom-left")}
PYRO_BATCH = 32  # Pyro's table averages the per-batch means of batches of 32 test images (util.generate_table)


def missing_mask(quadrants: int, side: int = SIDE) -> torch.Tensor:
    """True at the pixels to complete when `quadrants` (1, 2 or 3) are given, in Pyro's order (mnist.MaskImages):
    1 gives the bottom-left quadrant, 2 the left half, 3 all but the bottom-right quadrant. Shape: (side^2,)."""
    if quadrants not in GIVEN:
        raise ValueError(f"the number of given quadrants must be 1, 2 or 3, got {quadrants!r}")
    missing, h = torch.ones(side, side, dtype=torch.bool), side // 2
    missing[h:, :h] = False
    if quadrants == 2:
        missing[:, :h] = False
    if quadrants == 3:
        missing[:h, :] = False
    return missing.flatten()


@dataclass
class CVAEConfig:
    quadrants: int = 1  # given quadrants: 1, 2 or 3 (missing_mask)
    z_dim: int = 200  # L, Pyro's
    hidden: tuple[int, ...] = (500, 500)  # H of every network, Pyro's
    decoder_sees_given: bool = False  # False: Pyro's generation network z -> y; True: [z, x_given] -> y (Sohn's)
    x_dim: int = SIDE * SIDE  # D

    def __post_init__(self):
        self.hidden = tuple(self.hidden)
        missing_mask(self.quadrants, math.isqrt(self.x_dim))  # refuses a bad count here, not at the first batch


class Baseline(nn.Module):
    """Pyro's deterministic network x_given -> logits of every pixel (D-H-H-D, ReLU); only the missing are scored."""

    def __init__(self, config: CVAEConfig | None = None):
        super().__init__()
        self.config = config = config or CVAEConfig()
        self.register_buffer("missing", missing_mask(config.quadrants, math.isqrt(config.x_dim)), persistent=False)
        self.net = mlp([config.x_dim, *config.hidden, config.x_dim])

    def given(self, x: torch.Tensor) -> torch.Tensor:
        """x_given: a copy of the images with the missing pixels set to FILL. Shapes: (B, D) -> (B, D)."""
        return x.masked_fill(self.missing, FILL)

    def forward(self, x_given: torch.Tensor) -> torch.Tensor:
        """Logits of every pixel. Shapes: (B, D) -> (B, D)."""
        return self.net(x_given)


class GaussianNet(nn.Module):
    """An image -> (mu, logvar) of a diagonal Gaussian over z, through D-H-H (ReLU): Pyro's Encoder (whose second
    head is log std = logvar / 2)."""

    def __init__(self, config: CVAEConfig):
        super().__init__()
        self.features = nn.Sequential(mlp([config.x_dim, *config.hidden]), ACTIVATIONS["relu"]())
        self.mu_head = nn.Linear(config.hidden[-1], config.z_dim)
        self.logvar_head = nn.Linear(config.hidden[-1], config.z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mu_head(h), self.logvar_head(h)


class CVAE(nn.Module):
    """The conditional prior p(z|x), the generation network p(y|x, z) and the recognition network q(z|x, y), on top
    of a trained baseline (a new, untrained one when none is given)."""

    def __init__(self, config: CVAEConfig | None = None, baseline: Baseline | None = None):
        super().__init__()
        self.config = config = config or CVAEConfig()
        self.baseline = baseline if baseline is not None else Baseline(config)
        base = self.baseline.config
        if (base.quadrants, base.x_dim, base.hidden) != (config.quadrants, config.x_dim, config.hidden):
            raise ValueError(f"the baseline was built for {base.quadrants} given quadrants, {base.x_dim} pixels and "
                             f"widths {base.hidden}, the CVAE for {config.quadrants}, {config.x_dim} and "
                             f"{config.hidden}: build the baseline from the CVAE's config (Baseline(config)), which "
                             "is also what `load` rebuilds")
        self.prior_net = GaussianNet(config)  # built in Pyro's order
        width = config.z_dim + (config.x_dim if config.decoder_sees_given else 0)
        self.generation_net = mlp([width, *config.hidden, config.x_dim])
        self.recognition_net = GaussianNet(config)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the baseline's, which stays as it was trained."""
        return [p for name, p in self.named_parameters() if not name.startswith("baseline.")]

    @property
    def missing(self) -> torch.Tensor:
        """True at the pixels to complete: the baseline's mask, which the CVAE checked is built for the same
        quadrants. Shape: (D,)."""
        return self.baseline.missing

    def given(self, x: torch.Tensor) -> torch.Tensor:
        """x_given, as the baseline sees it (Baseline.given). Shapes: (B, D) -> (B, D)."""
        return self.baseline.given(x)

    def prior_params(self, x_given: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mu, logvar of p(z|x), from x_given filled with the baseline's guess (no gradient reaches the baseline).
        Shapes: (B, D) -> 2 x (B, L)."""
        with torch.no_grad():
            guess = torch.sigmoid(self.baseline(x_given))
        return self.prior_net(torch.where(self.missing, guess, x_given))

    def posterior_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mu, logvar of q(z|x, y) from the whole image (x_given filled with y). Shapes: (B, D) -> 2 x (B, L)."""
        return self.recognition_net(x)

    def decode(self, z: torch.Tensor, x_given: torch.Tensor) -> torch.Tensor:
        """Logits of p(y|x, z), the missing pixels only; x_given is broadcast against z's draws.
        Shapes: (..., B, L), (B, D) -> (..., B, M), M the number of missing pixels."""
        inputs = concat(z, x_given) if self.config.decoder_sees_given else z
        return self.generation_net(inputs)[..., self.missing]

    @torch.no_grad()
    def complete(self, x: torch.Tensor, s: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """S completions drawn from the model, z ~ p(z|x), as pixel probabilities sigmoid(logits) with the given
        pixels copied in. Shapes: (B, D) -> (S, B, D)."""
        x_given = self.given(x)
        mu, logvar = self.prior_params(x_given)
        drawn_on = generator.device if generator is not None else mu.device  # as M2.sample: a CPU generator works
        eps = torch.randn((s, *mu.shape), generator=generator, device=drawn_on, dtype=mu.dtype).to(mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps
        probs = x.expand(s, *x.shape).clone()
        probs[..., self.missing] = torch.sigmoid(self.decode(z, x_given))
        return probs


def cvae_terms(model: CVAE, x: torch.Tensor, generator: torch.Generator | None = None) -> ELBO:
    """ELBO(x, y) of each image with one reparametrised z ~ q(z|x, y), the KL to p(z|x) in closed form; `log_px_z`
    holds log p(y|x, z) of the missing pixels. The loss is -elbo.mean(). Shapes: (B, D) -> 3 x (B,)."""
    x_given, y = model.given(x), x[..., model.missing]
    mu_p, logvar_p = model.prior_params(x_given)
    mu_q, logvar_q = model.posterior_params(x)
    z, _ = gaussian_draw(mu_q, logvar_q, generator=generator)
    log_py = bernoulli_log_likelihood(model.decode(z, x_given), y)
    kl = kl_normal(mu_q, logvar_q, mu_p, logvar_p)
    return ELBO(log_py - kl, log_py, kl)


def log_weights(model: CVAE, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                as_pyro: bool = False) -> torch.Tensor:
    """log w_k = log p(y|x, z_k) + log p(z_k|x) - log q(z_k|x, y), z_k ~ q(z|x, y); as_pyro: p(y|x, z) from the
    probabilities, as Pyro's Bernoulli(sigmoid(logits)) has it (pyro_logits). Shapes: (B, D) -> (k, B)."""
    x_given, y = model.given(x), x[..., model.missing]
    mu_p, logvar_p = model.prior_params(x_given)
    z, log_q = gaussian_draw(*model.posterior_params(x), k, generator)  # (k, B, L), (k, B)
    logits = model.decode(z, x_given)
    if as_pyro:
        logits = pyro_logits(logits)
    return bernoulli_log_likelihood(logits, y) + log_normal(z, mu_p, logvar_p) - log_q


def pyro_logits(logits: torch.Tensor) -> torch.Tensor:
    """The logits that Pyro's Bernoulli(probs=sigmoid(logits)) scores with: torch turns probabilities p into
    log p - log(1 - p) after clamping them to [eps, 1 - eps] (eps = 1.2e-7 in float32), so no pixel costs more than
    15.9 nats. The rounding is one-sided in float32: a large negative logit keeps its value (p is resolved near 0),
    a positive one above about 9 is rounded, with 1 - p (+15 becomes 14.84). Shape kept."""
    p = torch.sigmoid(logits).clamp(torch.finfo(logits.dtype).eps, 1 - torch.finfo(logits.dtype).eps)
    return torch.log(p) - torch.log1p(-p)


def baseline_log_likelihood(baseline: Baseline, x: torch.Tensor) -> torch.Tensor:
    """log p(y|x) of the missing pixels under the baseline's Bernoulli: exact, as it has no latent.
    Shapes: (B, D) -> (B,)."""
    return bernoulli_log_likelihood(baseline(baseline.given(x))[..., baseline.missing], x[..., baseline.missing])


# ---- Scoring a set of images: each function copies batches of x to the model's device, and returns CPU tensors.

def _batches(model: nn.Module, x: torch.Tensor, batch_size: int):
    parameter = next(model.parameters())
    for i in range(0, len(x), batch_size):
        yield x[i:i + batch_size].to(parameter.device, parameter.dtype)


def batch_means(values: torch.Tensor, batch_size: int = PYRO_BATCH) -> float:
    """The mean of the per-batch means of consecutive batches of batch_size, as Pyro's table averages (its last
    batch of 10,000 test images holds 16, each weighing twice the others). Shapes: (N,) -> float."""
    return torch.stack([v.mean() for v in values.split(batch_size)]).mean().item()


@torch.no_grad()
def baseline_nll(baseline: Baseline, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """-log p(y|x) of every image under the baseline, in nats. Shapes: (N, D) -> (N,)."""
    with evaluating(baseline):
        return torch.cat([-baseline_log_likelihood(baseline, xb).cpu() for xb in _batches(baseline, x, batch_size)])


@torch.no_grad()
def pyro_nll(model: CVAE, x: torch.Tensor, particles: int = 10, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """Pyro's "CVAE (Monte Carlo)" score of every image: Trace_ELBO(num_particles=10)'s loss, the mean over
    `particles` draws z_s ~ q(z|x, y) of -(log p(y|x, z_s) + log p(z_s|x) - log q(z_s|x, y)) (the KL estimated at
    the draws, not in closed form), the pixels scored as Pyro scores them (pyro_logits). Its table reports
    batch_means of these. Seeded: the same seed gives the same numbers. Shapes: (N, D) -> (N,)."""
    if particles < 1:
        raise ValueError(f"particles must be at least 1, got {particles}")
    generator = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    with evaluating(model):
        return torch.cat([-log_weights(model, xb, particles, generator, as_pyro=True).mean(0).cpu()
                          for xb in _batches(model, x, batch_size)])


@torch.no_grad()
def conditional_log_likelihood(model: CVAE, x: torch.Tensor, k: int = 1000, seed: int = 0, batch_size: int = 100,
                               chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(y|x) of every image by importance sampling with q(z|x, y) as the proposal, K draws, and the estimate's
    delta-method standard error sqrt((mean(w^2) / mean(w)^2 - 1) / K) (vaelib.elbo.importance_estimate, as
    iwae_bound). A lower bound in expectation that rises to log p(y|x) with K. The draws go in chunks, a running
    logsumexp keeping memory at about chunk * batch_size * (D + 2 H + L) floats (under 200 MB by default).
    Shapes: (N, D) -> (N,), (N,)."""
    generator = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    chunk = chunk or max(1, min(k, (1 << 14) // batch_size))
    estimates, errors = [], []
    with evaluating(model):
        for xb in _batches(model, x, batch_size):
            estimate, se = importance_estimate(lambda c: log_weights(model, xb, c, generator), k, chunk)
            estimates.append(estimate.cpu())
            errors.append(se.cpu())
    return torch.cat(estimates), torch.cat(errors)


# ---- Training, as Pyro trains (Adam, lr 1e-3, batches of 128, early stopping with patience 3), on a validation split.

@dataclass
class FitConfig:
    lr: float = 1e-3  # Adam's learning rate, Pyro's
    batch_size: int = 128  # Pyro's
    epochs: int = 101  # the most epochs, Pyro's default (its tutorial's table: "50 epochs")
    patience: int = 3  # stop after this many epochs without a better validation loss, Pyro's
    budget_s: float | None = None  # seconds of training at most (ours), checked after every step
    validation_share: float = 1 / 6  # of the training images, held out to stop on (Pyro stops on the test set)
    pixels: str = "binary"  # "binary": every batch binarised afresh (vaelib's); "grey": grey levels (Pyro's)
    seed: int = 0  # the split, the batches, the binarisation and the eps (the initial weights: the caller's)


@dataclass
class History:
    train_loss: list = field(default_factory=list)  # mean training loss per epoch, nats per image
    validation_loss: list = field(default_factory=list)  # after each epoch, on the validation images
    best_epoch: int = -1  # 0-based epoch whose weights the model holds after fit
    steps: int = 0
    seconds: float = 0.0  # training and validation, wall clock
    stopped: str = ""  # "patience", "budget" or "epochs"


def validation_split(n: int, cfg: FitConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(training positions, validation positions): round(share n) images at random, seeded. Shapes: -> 2 x (n_i,)."""
    if not 0 < cfg.validation_share < 1 or cfg.batch_size < 1:
        raise ValueError(f"validation_share must lie strictly between 0 and 1 and batch_size be at least 1, got "
                         f"{cfg.validation_share} and {cfg.batch_size} (Pyro's batch size is 128; the default share "
                         "1/6 holds out 10,000 of full MNIST's 60,000 images)")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 22_2015))
    n_val = round(cfg.validation_share * n)
    return order[n_val:].sort().values, order[:n_val].sort().values


def baseline_loss(baseline: Baseline, x: torch.Tensor, generator=None) -> torch.Tensor:
    """Mean -log p(y|x) of the batch under the baseline (Pyro's MaskedBCELoss / batch size)."""
    return -baseline_log_likelihood(baseline, x).mean()


def cvae_loss(model: CVAE, x: torch.Tensor, generator=None) -> torch.Tensor:
    """Mean -ELBO(x, y) of the batch, one z per image, the KL in closed form."""
    return -cvae_terms(model, x, generator).elbo.mean()


def fit(model: nn.Module, loss, parameters, train_x: torch.Tensor, cfg: FitConfig) -> History:
    """Adam on loss(model, batch) over train_x's images less the validation split, with early stopping on the
    validation loss; the model ends holding its best epoch's weights. train_x holds grey levels in [0, 1]
    (binarised here for pixels="binary"); it is copied to the model's device batch by batch.
    Shapes: train_x (N, D)."""
    if cfg.pixels not in ("binary", "grey"):
        raise ValueError(f"pixels must be 'binary' or 'grey', got {cfg.pixels!r}")
    device, was_training = next(model.parameters()).device, model.training
    train_at, val_at = validation_split(len(train_x), cfg)
    generator = torch.Generator().manual_seed(cfg.seed)  # the order of the batches and their binarisation
    draw = torch.Generator(device).manual_seed(cfg.seed + 1)  # the eps of training
    x_val = train_x[val_at].cpu()
    if cfg.pixels == "binary":
        x_val = binarise(x_val, torch.Generator().manual_seed(TEST_BINARISATION_SEED))
    optimizer = torch.optim.Adam(parameters, lr=cfg.lr)
    history, best, state, bad, start = History(), math.inf, None, 0, time.perf_counter()
    out_of_time = lambda: cfg.budget_s is not None and time.perf_counter() - start > cfg.budget_s
    for epoch in range(cfg.epochs):
        model.train()
        order, values, sizes = train_at[torch.randperm(len(train_at), generator=generator)], [], []
        for i in range(0, len(order), cfg.batch_size):
            x = train_x[order[i:i + cfg.batch_size]].cpu()
            x = (binarise(x, generator) if cfg.pixels == "binary" else x).to(device)
            optimizer.zero_grad(set_to_none=True)
            value = loss(model, x, draw)
            value.backward()
            optimizer.step()
            values.append(value.detach())  # read once after the epoch: .item() here would wait for the device
            sizes.append(len(x))
            history.steps += 1
            if out_of_time():
                break
        history.train_loss.append(sum(v * n for v, n in zip(torch.stack(values).tolist(), sizes)) / sum(sizes))
        history.validation_loss.append(validation_loss(model, loss, x_val, cfg.seed))
        if history.validation_loss[-1] < best:
            best, bad, history.best_epoch = history.validation_loss[-1], 0, epoch
            state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
        history.stopped = "patience" if bad >= cfg.patience else "budget" if out_of_time() else "epochs"
        if history.stopped != "epochs":
            break
    if state is not None:
        model.load_state_dict(state)
    model.train(was_training)
    history.seconds = time.perf_counter() - start
    return history


@torch.no_grad()
def validation_loss(model: nn.Module, loss, x_val: torch.Tensor, seed: int, batch_size: int = 1000) -> float:
    """The mean loss over the validation images, its eps drawn from the same seed after every epoch, so that two
    epochs compare on the same draws. Shapes: x_val (N, D) -> float."""
    generator = torch.Generator(next(model.parameters()).device).manual_seed(seed + 2)
    with evaluating(model):
        total = sum(loss(model, xb, generator).item() * len(xb) for xb in _batches(model, x_val, batch_size))
    return total / len(x_val)


def fit_baseline(baseline: Baseline, train_x: torch.Tensor, cfg: FitConfig) -> History:
    """Train the baseline (Pyro's baseline.train). Shapes: train_x (N, D) grey levels."""
    return fit(baseline, baseline_loss, baseline.parameters(), train_x, cfg)


def fit_cvae(model: CVAE, train_x: torch.Tensor, cfg: FitConfig) -> History:
    """Train the CVAE's three networks, its baseline held fixed (Pyro's cvae.train). Shapes: train_x (N, D)."""
    return fit(model, cvae_loss, model.trainable_parameters(), train_x, cfg)


# ---- Checkpoints: the settings and a CPU state_dict, the model the caller holds left where it is.

def save(model: Baseline | CVAE, path) -> None:
    """The model's kind, settings and weights (on the CPU), for `load`."""
    state = {name: t.detach().cpu() for name, t in model.state_dict().items()}
    torch.save({"kind": type(model).__name__, "config": asdict(model.config), "state_dict": state}, path)


def load(path, map_location="cpu") -> Baseline | CVAE:
    """A Baseline or CVAE saved by `save`, in eval mode."""
    saved = torch.load(path, map_location=map_location, weights_only=True)
    config = CVAEConfig(**saved["config"])
    model = Baseline(config) if saved["kind"] == "Baseline" else CVAE(config, Baseline(config))
    model.load_state_dict(saved["state_dict"])
    return model.eval()

