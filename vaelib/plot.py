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


def plot_history(history: History, title: str = "Training", label: str = "") -> plt.Figure:
    """Left: train and test negative ELBO against epochs. Right, where the history has them: the test
    set's two terms, distortion -E_q[log p(x|z)] and rate KL(q(z|x) || p(z)). Nats per image."""
    terms = bool(history.test_kl)
    fig, axes = plt.subplots(1, 2 if terms else 1, figsize=(11 if terms else 6, 4), squeeze=False,
                             layout="constrained")
    ax = axes[0, 0]
    ax.plot(history.epoch, history.train_neg_elbo, label=f"{label} train".strip())
    ax.plot(history.epoch, history.test_neg_elbo, "--", label=f"{label} test".strip())
    ax.set(xlabel="epoch", ylabel="negative ELBO (nats per image)", title="-ELBO = distortion + rate")
    if terms:
        distortion = [e - k for e, k in zip(history.test_neg_elbo, history.test_kl)]
        right = axes[0, 1]
        right.plot(history.epoch, distortion, label="distortion -E[log p(x|z)]")
        right.plot(history.epoch, history.test_kl, label="rate KL(q(z|x) || p(z))")
        right.set(xlabel="epoch", ylabel="nats per image (test set)", yscale="log", title="where the nats go")
    for ax in axes.flat:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


@torch.no_grad()
def plot_reconstructions(model, x: torch.Tensor, labels: torch.Tensor | None = None, n: int = 16) -> plt.Figure:
    """n test digits (top row, with their labels) above the decoder's pixel probabilities at the
    posterior mean (bottom row)."""
    x = x[:n]
    recon = torch.sigmoid(model.decode(model.encode(x)[0])).cpu()
    fig, axes = plt.subplots(2, n, figsize=(0.75 * n, 2.0), squeeze=False)
    for i in range(n):
        for row, image in enumerate((x[i], recon[i])):
            axes[row, i].imshow(image.reshape(28, 28).cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
            axes[row, i].set(xticks=[], yticks=[])
        if labels is not None:
            axes[0, i].set_title(str(int(labels[i])), fontsize=9)
    axes[0, 0].set_ylabel("input", fontsize=9)
    axes[1, 0].set_ylabel("decoded\nat mean", fontsize=9)
    fig.suptitle("Test digits (labels above) and their reconstructions sigmoid(logits(mu(x)))", fontsize=10)
    return fig


def plot_prior_samples(model, n: int = 64, seed: int = 0) -> plt.Figure:
    """Pixel probabilities sigmoid(logits(z)) for n draws z ~ N(0, I)."""
    probs = model.sample(n, generator=torch.Generator().manual_seed(seed))
    return plot_digits(probs, rows=int(n ** 0.5), title=f"{n} samples from the prior")


@torch.no_grad()
def plot_latent_grid(model, n: int = 20, half_width: float = 4.0) -> plt.Figure:
    """Decoded means over an n x n grid of z in [-hw, hw]^2: z1 grows left to right, z2 bottom to top,
    each tile centred on the point it decodes, so the axes read off z."""
    require_2d(model, "the latent grid", " to draw it")
    device = next(model.parameters()).device
    z1 = torch.linspace(-half_width, half_width, n)
    z2 = torch.linspace(half_width, -half_width, n)  # image rows run top to bottom
    zz2, zz1 = torch.meshgrid(z2, z1, indexing="ij")
    z = torch.stack([zz1, zz2], -1).reshape(-1, 2).to(device)
    picture = image_grid(torch.sigmoid(model.decode(z)), rows=n)
    edge = half_width * (1 + 1 / (n - 1))  # each tile is centred on its z: half a tile beyond the end points
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(picture.numpy(), cmap="gray_r", extent=(-edge, edge, -edge, edge))
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
