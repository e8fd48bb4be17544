"""The original course notebook's VAE, run as written on full MNIST, then scored the way vaelib scores.

This is the code of the one-notebook tutorial vaelib grew from (/work/shared/SEED.md describes it;
the notebook is not part of this repository), kept as it was so that the course README can put the
original's result beside vaelib's with a command that reproduces it. Kept on purpose, as written:

- data: torchvision.datasets.MNIST with ToTensor; DataLoaders of batch 100, shuffle=True and
  drop_last=True for train AND test (on full MNIST no batch is dropped, 10,000 = 100 x 100, but
  the test batches are rebinarised every epoch, so the test loss varies from run to run), num_workers=8;
- model: encoder 784-256-128 (ReLU), linear heads for mu and logvar, decoder 2-128-256-784 (ReLU)
  ending in a Sigmoid; z = mu + exp(0.5 logvar) * eps;
- loss: F.binary_cross_entropy of the probabilities, summed, plus the KL summed, divided by the
  batch size; x = torch.bernoulli(images) drawn afresh for every batch, test batches too;
- training: 20 epochs of hand-written gradient descent p -= lr * p.grad with lr 5e-3; the train
  loss of an epoch is the mean of its batch losses, the test loss the mean over the test batches.

One addition: torch.manual_seed(--seed) at the start (the original set no seed). No tqdm bars.
The original's 8 loader workers oversubscribe a 2-core machine (PyTorch warns so); fewer, --workers 2
or 0, are as fast there. The machine's load average before and after is recorded, since timings on a
shared machine depend on it.

vaelib does three things differently: its decoder returns logits and the loss is the Bernoulli
log-likelihood on logits (no sigmoid, no clamping of log 0 at -100); its test set is the 10,000
test digits binarised once with a fixed seed, all of them scored; it trains with Adam (lr 1e-3).
So after training, the same weights are also put into vaelib.model.VAE (the decoder without its
Sigmoid gives the logits) and scored with vaelib's test -ELBO and -IWAE (K = 1000, an estimate of
-log p(x)) on vaelib's test set: those two numbers compare with vaelib's own.

    VAELIB_DATA=../shared/data/mnist-full .venv/bin/python benchmarks/original_notebook.py
    ... benchmarks/original_notebook.py --epochs 1 --out /tmp/check.json   # a check; IWAE-1000 adds minutes
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import MNIST
from torchvision.transforms import ToTensor

import vaelib
from vaelib.config import ModelConfig
from vaelib.data import TEST_BINARISATION_SEED
from vaelib.model import VAE
from vaelib.evaluate import evaluate_terms, per_image_iwae

B, D = 100, 784  # the original's batch size; pixels
LR = 5e-3  # the original's learning rate
IWAE_K = 1000
DEFAULT_OUT = Path(__file__).parent / "results" / "original_notebook.json"


def default_data_dir() -> Path:
    return Path(os.environ.get("VAELIB_DATA") or Path.home() / ".cache" / "vaelib")


def load_split(root: Path, train: bool) -> MNIST:
    """torchvision's MNIST as the original loaded it; downloads (as the original did) only if missing."""
    try:
        return MNIST(root, train=train, transform=ToTensor())
    except RuntimeError:
        print(f"MNIST/raw not found under {root}: downloading; offline, pass --data-dir or set VAELIB_DATA "
              f"to a folder holding MNIST/raw", file=sys.stderr)
        return MNIST(root, train=train, transform=ToTensor(), download=True)


def loaders(root: Path, workers: int) -> tuple[DataLoader, DataLoader]:
    """The original's train and test loaders: both shuffle and drop the last batch."""
    return tuple(DataLoader(load_split(root, train), batch_size=B, shuffle=True, drop_last=True,
                            num_workers=workers) for train in (True, False))


class NotebookVAE(nn.Module):
    """The original's VAE: its decoder ends in a Sigmoid and returns pixel probabilities.

    Layers are named as vaelib.model.VAE names them, so its state_dict loads into one as it is.
    """

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(D, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())
        self.mu_head = nn.Linear(128, 2)
        self.logvar_head = nn.Linear(128, 2)
        self.decoder = nn.Sequential(nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 256), nn.ReLU(),
                                     nn.Linear(256, D), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shapes: (B, D) -> probs (B, D), mu (B, L), logvar (B, L)."""
        h = self.encoder(x)
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.decoder(z), mu, logvar


def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)). (B, L) -> (B,)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1)


def loss_func(x: torch.Tensor, probs: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The original's loss: BCE of probabilities summed over pixels and batch, plus the KL, over B."""
    return (F.binary_cross_entropy(probs, x, reduction="sum") + kl(mu, logvar).sum()) / len(x)


def binarised_batches(loader: DataLoader):
    """Each batch drawn afresh as x ~ Bernoulli(grey levels), as the original did. Yields (B, D)."""
    for images, _ in loader:
        yield torch.bernoulli(images.view(-1, D))


def train_epoch(model: NotebookVAE, loader: DataLoader, lr: float = LR) -> float:
    """One epoch of hand-written gradient descent; returns the mean of its batch losses."""
    losses = []
    for x in binarised_batches(loader):
        loss = loss_func(x, *model(x))
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        losses.append(loss.item())
    return sum(losses) / len(losses)


@torch.no_grad()
def test_epoch(model: NotebookVAE, loader: DataLoader) -> float:
    """The original's test loss: the mean over the (shuffled, last-dropped) test batches."""
    losses = [loss_func(x, *model(x)).item() for x in binarised_batches(loader)]
    return sum(losses) / len(losses)


def train(model: NotebookVAE, root: Path, epochs: int, workers: int) -> dict:
    """The original's loop: train, then test, once per epoch, one printed line each."""
    train_loader, test_loader = loaders(root, workers)
    history = {"train_loss": [], "test_loss": [], "epoch_seconds": []}
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        history["train_loss"].append(train_epoch(model, train_loader))
        history["test_loss"].append(test_epoch(model, test_loader))
        history["epoch_seconds"].append(time.perf_counter() - started)
        print(f"epoch {epoch:2d}/{epochs}  train {history['train_loss'][-1]:.4f}  "
              f"test {history['test_loss'][-1]:.4f}  ({history['epoch_seconds'][-1]:.1f} s)", flush=True)
    return history


def to_vaelib(model: NotebookVAE) -> VAE:
    """The same weights in vaelib's VAE, whose decoder is ours without the Sigmoid (so it gives logits)."""
    vae = VAE(ModelConfig())
    vae.load_state_dict(model.state_dict())  # strict: every key and shape must match
    z = torch.randn(5, 2)
    with torch.no_grad():
        torch.testing.assert_close(torch.sigmoid(vae.decode(z)), model.decoder(z))
    return vae.eval()


def vaelib_test_x(root: Path) -> torch.Tensor:
    """vaelib's test set: the 10,000 test digits / 255, binarised once with its fixed seed. (N, D)."""
    x = load_split(root, train=False).data.view(-1, D).float() / 255
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(TEST_BINARISATION_SEED))


def vaelib_scores(model: NotebookVAE, root: Path) -> dict:
    """vaelib's test -ELBO (fixed eps) and -IWAE (K = 1000) of the trained model, in nats."""
    vae, test_x = to_vaelib(model), vaelib_test_x(root)
    return {"vaelib_test_neg_elbo": evaluate_terms(vae, test_x)[0],
            f"vaelib_test_neg_iwae_{IWAE_K}": -per_image_iwae(vae, test_x, IWAE_K).mean().item()}


def run(root: Path, epochs: int, workers: int, seed: int) -> dict:
    torch.manual_seed(seed)  # the original set no seed
    model = NotebookVAE()
    load_before, started = os.getloadavg()[0], time.perf_counter()
    history = train(model, root, epochs, workers)
    seconds, load_after = time.perf_counter() - started, os.getloadavg()[0]
    result = {"command": shlex.join(["python", *sys.argv]), "data_dir": str(root), "seed": seed,
              "epochs": epochs, "workers": workers, "torch_version": torch.__version__,
              "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
              "loadavg_1min_before_after": [load_before, load_after],
              "vaelib_version": vaelib.__version__, **history, "train_seconds": seconds,
              "final_train_loss": history["train_loss"][-1], "final_test_loss": history["test_loss"][-1]}
    result.update(vaelib_scores(model, root))
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(),
                        help="folder holding MNIST/raw (default: $VAELIB_DATA, else ~/.cache/vaelib)")
    parser.add_argument("--epochs", type=int, default=20, help="as written: 20")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers; as written: 8")
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed at the start (the original had none)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    result = run(args.data_dir, args.epochs, args.workers, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"original notebook, {args.epochs} epochs in {result['train_seconds']:.0f} s: its own losses train "
          f"{result['final_train_loss']:.4f} test {result['final_test_loss']:.4f}; vaelib's test -ELBO "
          f"{result['vaelib_test_neg_elbo']:.2f}, -IWAE-{IWAE_K} {result[f'vaelib_test_neg_iwae_{IWAE_K}']:.2f} "
          f"nats; wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
