"""Training speed of vaelib against the original notebook's pipeline, side by side, on this machine.

(a) the original notebook's code, rebuilt here from its description (the notebook is not part of
    this repository): torchvision's MNIST dataset object with ToTensor (a PIL image made and
    converted per image), a shuffling DataLoader of batch 100 (num_workers=0: the original's 8
    workers only oversubscribe a 2-core machine), torch.bernoulli per batch, a decoder ending in a
    sigmoid, F.binary_cross_entropy of the probabilities summed plus the KL, averaged over the
    batch, loss.item() per step, and hand-written gradient descent p -= lr * p.grad (lr 5e-3).
    No tqdm bars.
(b) vaelib.train.train, the loop `python -m vaelib train` runs (Adam, lr 1e-3), as it is.
(c) the compute bound: one training step's matrix products alone, at the model's shapes at batch
    100 (per layer the forward product and the two backward ones, less the input gradient of the
    first layer, which training never needs), timed on this machine.

Both pipelines see the same images: the 8,000 training digits of the offline sample tiled to
60,000 (full MNIST's size). The three are timed in turn, a b c a b c ..., in blocks, so that load
from other processes hits them alike; each reports the median over the blocks, and the ratio is the
median of the per-block ratios. A few warm-up steps of each run before the timing.

    .venv/bin/python benchmarks/bench_train.py [--images 60000] [--blocks 10] [--out PATH]
    .venv/bin/python benchmarks/bench_train.py --images 6000 --blocks 3   # short: about 10 s
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision.datasets import MNIST, VisionDataset
from torchvision.transforms import ToTensor

import vaelib
from vaelib.config import ModelConfig, TrainConfig
from vaelib.data import MNISTData, load_mnist
from vaelib.elbo import kl_standard_normal
from vaelib.model import VAE
from vaelib.train import History, make_optimizer, train

B = 100  # the original's batch size
N_TILED = 60_000  # full MNIST's training set size
DEFAULT_OUT = Path(__file__).parent / "results" / "bench_train.json"


class TiledMNIST(MNIST):
    """torchvision's MNIST dataset object over uint8 digits held in memory instead of files.

    __getitem__ and __len__ are torchvision's own: uint8 (28, 28) -> PIL image -> transform.
    """

    def __init__(self, digits: torch.Tensor, labels: torch.Tensor, transform=ToTensor()):
        VisionDataset.__init__(self, root=None, transform=transform)
        self.train, self.data, self.targets = True, digits, labels


def tiled_data(n: int = N_TILED) -> tuple[MNISTData, TiledMNIST]:
    """The sample's training digits repeated to n images: as vaelib's tensors and as the dataset."""
    sample = load_mnist("sample", verbose=False)
    repeats = -(-n // len(sample.train_x))
    x, y = sample.train_x.repeat(repeats, 1)[:n], sample.train_y.repeat(repeats)[:n]
    digits = (x * 255).round().to(torch.uint8).view(n, 28, 28)  # exact: grey levels are k / 255
    data = MNISTData(x, y, sample.test_x, sample.test_y, "sample tiled", f"{n:,} images")
    return data, TiledMNIST(digits, y)


class NotebookPipeline:
    """The original notebook's training loop, run a given number of images at a time."""

    def __init__(self, dataset: TiledMNIST, lr: float = 5e-3):
        torch.manual_seed(0)
        self.model, self.lr = VAE(ModelConfig()), lr
        self.loader = DataLoader(dataset, batch_size=B, shuffle=True, num_workers=0, drop_last=True)
        self.batches = iter(self.loader)

    def next_batch(self) -> torch.Tensor:
        try:
            x, _ = next(self.batches)
        except StopIteration:  # a new epoch
            self.batches = iter(self.loader)
            x, _ = next(self.batches)
        return torch.bernoulli(x.view(-1, 784))

    def step(self) -> float:
        x = self.next_batch()
        mu, logvar = self.model.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        probs = torch.sigmoid(self.model.decode(z))  # the original's decoder ends in a Sigmoid
        loss = (F.binary_cross_entropy(probs, x, reduction="sum") + kl_standard_normal(mu, logvar).sum()) / B
        self.model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in self.model.parameters():
                p -= self.lr * p.grad
        return loss.item()

    def run(self, images: int) -> float:
        """Train on `images` images; return images/s."""
        started = time.perf_counter()
        for _ in range(images // B):
            self.step()
        return images / (time.perf_counter() - started)


class VaelibPipeline:
    """vaelib.train.train, continued `images` images at a time; speed from its own History."""

    def __init__(self, data: MNISTData):
        torch.manual_seed(0)
        self.model, self.data, self.calls = VAE(ModelConfig()), data, 0
        self.optimizer = make_optimizer(self.model, "adam", TrainConfig().lr)

    def run(self, images: int) -> float:
        cfg = TrainConfig(data="sample", steps=images // B, progress=False, seed=self.calls)
        history = train(self.model, self.data, cfg, self.optimizer, History())
        self.calls += 1
        return history.train_images / history.train_seconds


def layer_shapes(config: ModelConfig) -> list[tuple[int, int]]:
    """(n_in, n_out) of every linear layer of the VAE, encoder, both heads, decoder."""
    D, H, L = config.x_dim, list(config.hidden), config.z_dim
    encoder = list(zip([D, *H[:-1]], H))
    decoder = list(zip([L, *reversed(H)], [*reversed(H), D]))
    return [*encoder, (H[-1], L), (H[-1], L), *decoder]


def step_products(config: ModelConfig, batch: int = B) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (a, b) pairs of every matrix product a @ b of one training step at this batch size."""
    pairs = []
    for n_in, n_out in layer_shapes(config):
        pairs.append((torch.randn(batch, n_in), torch.randn(n_in, n_out)))  # forward
        pairs.append((torch.randn(n_out, batch), torch.randn(batch, n_in)))  # weight gradient
        if n_in != config.x_dim:  # no gradient with respect to the input image
            pairs.append((torch.randn(batch, n_out), torch.randn(n_out, n_in)))
    return pairs


class ComputeBound:
    """Images/s if a training step cost only its matrix products, timed here."""

    def __init__(self, config: ModelConfig | None = None):
        self.pairs = step_products(config or ModelConfig())
        self.flops_per_step = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in self.pairs)

    def run(self, repeats: int = 300) -> float:
        started = time.perf_counter()
        for _ in range(repeats):
            for a, b in self.pairs:
                torch.mm(a, b)
        return repeats * B / (time.perf_counter() - started)


def measure(images: int, blocks: int) -> dict:
    """Images/s of (a), (b) and the bound, interleaved over `blocks` blocks of images / blocks."""
    data, dataset = tiled_data()
    notebook, ours, bound = NotebookPipeline(dataset), VaelibPipeline(data), ComputeBound()
    for pipeline in (notebook, ours):  # warm-up, outside the timing
        pipeline.run(10 * B)
    seen = {"notebook": [], "vaelib": [], "bound": []}
    for _ in range(blocks):
        seen["notebook"].append(notebook.run(images // blocks))
        seen["vaelib"].append(ours.run(images // blocks))
        seen["bound"].append(bound.run())
    return summarise(seen, bound.flops_per_step)


def summarise(seen: dict, flops_per_step: int) -> dict:
    median = {name: statistics.median(v) for name, v in seen.items()}
    ratios = [v / n for v, n in zip(seen["vaelib"], seen["notebook"])]
    return {
        "notebook_images_per_second": median["notebook"],
        "vaelib_images_per_second": median["vaelib"],
        "speedup": statistics.median(ratios),
        "matmul_gflops": median["bound"] * flops_per_step / B / 1e9,
        "flops_per_image": flops_per_step / B,
        "compute_bound_images_per_second": median["bound"],
        "vaelib_fraction_of_bound": median["vaelib"] / median["bound"],
        "blocks": seen,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=N_TILED, help="images per pipeline, in all blocks")
    parser.add_argument("--blocks", type=int, default=10, help="interleaved blocks (medians over them)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.images // args.blocks < 2 * B:
        parser.error(f"--images must give each of the {args.blocks} blocks at least {2 * B} images")
    load_before = os.getloadavg()[0]
    result = measure(args.images, args.blocks)
    result.update(images=args.images, notebook_num_workers=0, data=f"offline sample's 8,000 training digits tiled to {N_TILED:,}",
                  threads=torch.get_num_threads(), cpu_count=os.cpu_count(), device="cpu",
                  loadavg_1min_before_after=[load_before, os.getloadavg()[0]],
                  torch_version=torch.__version__, vaelib_version=vaelib.__version__)
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


def report(r: dict) -> None:
    print(f"{r['threads']} threads, torch {r['torch_version']}, {r['images']:,} images per pipeline, "
          f"load average {r['loadavg_1min_before_after'][0]:.2f} -> {r['loadavg_1min_before_after'][1]:.2f}")
    print(f"(a) original notebook pipeline: {r['notebook_images_per_second']:8,.0f} images/s")
    print(f"(b) vaelib training loop:       {r['vaelib_images_per_second']:8,.0f} images/s")
    print(f"    vaelib / original:          {r['speedup']:8.2f} x")
    print(f"(c) compute bound: matrix products at {r['matmul_gflops']:.0f} GFLOP/s, "
          f"{r['flops_per_image'] / 1e6:.2f} MFLOP per image: {r['compute_bound_images_per_second']:,.0f} images/s")
    print(f"    vaelib reaches {r['vaelib_fraction_of_bound']:.0%} of the compute bound")


if __name__ == "__main__":
    main()
