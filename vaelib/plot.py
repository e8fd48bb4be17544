"""Figures of a trained VAE; each function returns a matplotlib Figure and shows nothing itself."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .diagnostics import encode_all
from .exact import grid_points
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
    """Left: train and test negative ELBO against epochs. Then, where the history has them, the test
    set's two terms in panels of their own, each on its own linear scale: the distortion -E_q[log p(x|z)]
    and the rate KL(q(z|x) || p(z)). Nats per image. The test loss is measured after each record; the
    training loss is the mean over the steps since the previous one, so it is drawn halfway between."""
    terms = bool(history.test_kl)
    fig, axes = plt.subplots(1, 3 if terms else 1, figsize=(14 if terms else 6, 4), squeeze=False,
                             layout="constrained")
    ax = axes[0, 0]
    middle = [(e + p) / 2 for e, p in zip(history.epoch, [0.0, *history.epoch[:-1]])]
    ax.plot(middle, history.train_neg_elbo, "o-", ms=3, label=f"{label} train (mean over the epoch)".strip())
    ax.plot(history.epoch, history.test_neg_elbo, "s--", ms=3, label=f"{label} test (after the epoch)".strip())
    ax.set(xlabel="epoch", ylabel="nats per image", title="negative ELBO")
    ax.legend()
    if terms:
        distortion = [e - k for e, k in zip(history.test_neg_elbo, history.test_kl)]
        axes[0, 1].plot(history.epoch, distortion, "s-", ms=3, color="tab:green")
        axes[0, 1].set(xlabel="epoch", ylabel="nats per image", title="test distortion -E[log p(x|z)]")
        axes[0, 2].plot(history.epoch, history.test_kl, "s-", ms=3, color="tab:red")
        axes[0, 2].set(xlabel="epoch", ylabel="nats per image", title="test rate KL(q(z|x) || p(z))")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        if history.epoch and all(float(e).is_integer() for e in history.epoch):
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    fig.suptitle(title)
    return fig


@torch.no_grad()
def plot_reconstructions(model, x: torch.Tensor, labels: torch.Tensor | None = None, n: int = 16,
                         code_labels: torch.Tensor | None = None, per_row: int = 8) -> plt.Figure:
    """n test digits, each above the decoder's pixel probabilities sigmoid(logits(mu(x))) at its
    posterior mean, per_row digits to a pair of rows. labels: titles of the inputs; code_labels:
    titles of the reconstructions (e.g. the class among whose codes mu(x) lies), red where they differ."""
    x = x[:n]
    device = next(model.parameters()).device  # x is copied there; the model itself is never moved
    recon = torch.sigmoid(model.decode(model.encode(x.to(device))[0])).cpu()
    blocks = -(-len(x) // per_row)
    fig, axes = plt.subplots(2 * blocks, per_row, figsize=(1.2 * per_row, 2.9 * blocks), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.set_axis_off()
    for i in range(len(x)):
        top, bottom = axes[2 * (i // per_row), i % per_row], axes[2 * (i // per_row) + 1, i % per_row]
        for ax, image in ((top, x[i]), (bottom, recon[i])):
            ax.imshow(image.reshape(28, 28).cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
            ax.set(xticks=[], yticks=[], frame_on=False)
            ax.set_axis_on()
        if labels is not None:
            top.set_title(f"label {int(labels[i])}", fontsize=10)
        if code_labels is not None:
            differs = labels is not None and int(code_labels[i]) != int(labels[i])
            bottom.set_title(f"near {int(code_labels[i])}s", fontsize=10, color="red" if differs else "black")
    for block in range(blocks):
        axes[2 * block, 0].set_ylabel("input", fontsize=10)
        axes[2 * block + 1, 0].set_ylabel("decoded\nat mean", fontsize=10)
    return fig


def plot_prior_samples(model, n: int = 64, seed: int = 0) -> plt.Figure:
    """The decoder's pixel probabilities sigmoid(logits(z)) for n draws z ~ p(z) (its means, not binary samples)."""
    probs = model.sample(n, generator=torch.Generator().manual_seed(seed))
    return plot_digits(probs, rows=int(n ** 0.5), title=f"Decoder means at {n} codes drawn from the prior")


def grid_ticks(points: list[float], most: int = 9) -> list[float]:
    """Tick positions among the grid points: those at multiples of 0.5, thinned to at most `most`
    (the two ends and the middle point when there are fewer than three), so every tick marks a tile."""
    ticks = [p for p in points if abs(2 * p - round(2 * p)) < 1e-4]
    if len(ticks) < 3:
        ticks = sorted({points[0], points[len(points) // 2], points[-1]})
    return ticks[::-(-len(ticks) // most)]


@torch.no_grad()
def plot_latent_grid(model, n: int = 20, half_width: float = 4.0) -> plt.Figure:
    """Decoded means over an n x n grid of z in [-hw, hw]^2: z1 grows left to right, z2 bottom to top,
    each tile centred on the point it decodes and every tick at a grid point, so the axes read off z."""
    require_2d(model, "the latent grid", " to draw it")
    z1 = torch.linspace(-half_width, half_width, n)
    z2 = torch.linspace(half_width, -half_width, n)  # image rows run top to bottom
    z = grid_points(z1, z2).to(next(model.parameters()).device)
    picture = image_grid(torch.sigmoid(model.decode(z)), rows=n)
    edge = half_width * (1 + 1 / (n - 1))  # each tile is centred on its z: half a tile beyond the end points
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(picture.numpy(), cmap="gray_r", vmin=0, vmax=1, extent=(-edge, edge, -edge, edge))
    ticks = grid_ticks(z1.tolist())
    labels = [f"{round(t, 2) + 0.0:g}" for t in ticks]  # + 0.0 turns -0.0 into 0
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set(xlabel="$z_1$", ylabel="$z_2$", title="decoder output over the latent space")
    return fig


@torch.no_grad()
def plot_embedding(model, x: torch.Tensor, labels: torch.Tensor, ax: plt.Axes | None = None,
                   title: str = "test images embedded at the mean of q(z|x)", legend: bool = True) -> plt.Figure:
    """Posterior means mu(x) of the test images, coloured by digit, each digit written at the median
    of its codes, equal scales on both axes; into `ax` when given, else a new figure."""
    require_2d(model, "the latent embedding", " to draw it")
    mu, labels = encode_all(model, x)[0].cpu(), labels.cpu()
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 6.5), layout="constrained")
    for digit in range(10):
        pts = mu[labels == digit]
        color = plt.cm.tab10(digit)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color=color, label=str(digit), rasterized=True)
        if len(pts):
            centre = pts.median(0).values
            ax.text(float(centre[0]), float(centre[1]), str(digit), ha="center", va="center", fontsize=13,
                    weight="bold", color=color, bbox=dict(boxstyle="circle,pad=0.2", fc="white", ec=color, alpha=0.85))
    ax.set(xlabel="$z_1$ (posterior mean)", ylabel="$z_2$ (posterior mean)", title=title, aspect="equal")
    if legend:
        ax.legend(title="digit", loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=5)
    return ax.figure
