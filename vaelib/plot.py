"""Figures of a trained VAE; each function returns a matplotlib Figure and shows nothing itself."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .model import require_2d
from .train import History


def image_grid(images: torch.Tensor, rows: int) -> torch.Tensor:
    """Tile (N, 784) images into one (rows * 28, cols * 28) picture."""
    n = images.shape[0]
    cols = -(-n // rows)
    padded = torch.zeros(rows * cols, 28, 28)
    padded[:n] = images.detach().float().cpu().reshape(n, 28, 28)
    return padded.reshape(rows, cols, 28, 28).permute(0, 2, 1, 3).reshape(rows * 28, cols * 28)


def plot_digits(images: torch.Tensor, rows: int = 4, title: str = "") -> plt.Figure:
    """A grid of digits (pixel values or probabilities in [0, 1])."""
    fig, ax = plt.subplots(figsize=(6, 6 * rows / max(1, -(-len(images) // rows))))
    ax.imshow(image_grid(images, rows).numpy(), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
    return fig


def plot_history(history: History, title: str = "Negative ELBO during training",
                 label: str = "") -> plt.Figure:
    """Train and test negative ELBO (nats per image) against epochs."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(history.epoch, history.train_neg_elbo, label=f"{label} train".strip())
    ax.plot(history.epoch, history.test_neg_elbo, "--", label=f"{label} test".strip())
    ax.set(xlabel="epoch", ylabel="negative ELBO (nats per image)", title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


@torch.no_grad()
def plot_reconstructions(model, x: torch.Tensor, n: int = 16) -> plt.Figure:
    """n inputs (top row) above the decoder's pixel probabilities at the posterior mean (bottom)."""
    x = x[:n]
    mu, _ = model.encode(x)
    recon = torch.sigmoid(model.decode(mu))
    fig = plot_digits(torch.cat([x, recon]), rows=2, title="inputs (top) and reconstructions (bottom)")
    return fig


def plot_prior_samples(model, n: int = 64, seed: int = 0) -> plt.Figure:
    """Pixel probabilities sigmoid(logits(z)) for n draws z ~ N(0, I)."""
    probs = model.sample(n, generator=torch.Generator().manual_seed(seed))
    return plot_digits(probs, rows=int(n ** 0.5), title=f"{n} samples from the prior")


@torch.no_grad()
def plot_latent_grid(model, n: int = 20, half_width: float = 4.0) -> plt.Figure:
    """Decoded means over an n x n grid of z in [-hw, hw]^2: z1 grows left to right, z2 bottom to top."""
    require_2d(model, "the latent grid", " to draw it")
    device = next(model.parameters()).device
    z1 = torch.linspace(-half_width, half_width, n)
    z2 = torch.linspace(half_width, -half_width, n)  # image rows run top to bottom
    zz2, zz1 = torch.meshgrid(z2, z1, indexing="ij")
    z = torch.stack([zz1, zz2], -1).reshape(-1, 2).to(device)
    picture = image_grid(torch.sigmoid(model.decode(z)), rows=n)
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(picture.numpy(), cmap="gray_r", extent=(-half_width, half_width, -half_width, half_width))
    ax.set(xlabel="$z_1$", ylabel="$z_2$", title="decoder output over the latent space")
    return fig


@torch.no_grad()
def plot_embedding(model, x: torch.Tensor, labels: torch.Tensor) -> plt.Figure:
    """Posterior means mu(x) of the test images, coloured by digit, legend outside the axes."""
    require_2d(model, "the latent embedding", " to draw it")
    mu = torch.cat([model.encode(x[i:i + 1000])[0] for i in range(0, len(x), 1000)]).cpu().numpy()
    labels = labels.cpu().numpy()
    fig, ax = plt.subplots(figsize=(8, 6.5))
    for digit in range(10):
        pts = mu[labels == digit]
        ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.6, color=plt.cm.tab10(digit), label=str(digit))
    ax.set(xlabel="$z_1$ (posterior mean)", ylabel="$z_2$ (posterior mean)",
           title="test images embedded at the mean of q(z|x)")
    ax.legend(title="digit", loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=4)
    fig.tight_layout()
    return fig
