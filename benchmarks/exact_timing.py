"""Time of the exact log p(x) by quadrature (vaelib.exact), and how far IWAE-5000 is from it.

Trains the seed's 2-D model (784-256-128-2 and back) for 3,000 Adam steps on the offline sample, or
loads one with --model; times vaelib.exact.converged_log_px on all 2,000 sample test images (the
issue asks for at most 30 s on 2 CPU cores); then, on the first --iwae-images of them, compares
exact log p(x) with the importance-weighted estimate at K = 5000: quantiles of exact - IWAE, and the
images whose IWAE lies above the exact value by more than 3 Monte Carlo standard errors (with
exact error bars, about one image in a thousand by chance; where q covers the posterior badly the
delta-method error bar is too small, and notebook 6 shows such a digit). Writes
benchmarks/results/exact_timing.json.

    .venv/bin/python benchmarks/exact_timing.py [--model runs/course/model.pt] [--iwae-images 300]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vaelib.config import TrainConfig, seed_everything
from vaelib.data import load_mnist
from vaelib.exact import converged_log_px
from vaelib.model import VAE, load_checkpoint
from vaelib.train import per_image_iwae, train

RESULTS = Path(__file__).parent / "results" / "exact_timing.json"


def seed_model(data):
    """The seed's 2-D VAE after 3,000 Adam steps on the offline sample (about 15 s on 2 cores)."""
    cfg = TrainConfig(data="sample", steps=3000, progress=False)
    seed_everything(cfg.seed)
    model = VAE(cfg.model)
    history = train(model, data, cfg)
    print(f"trained {cfg.model} for {cfg.steps} steps: test -ELBO {history.test_neg_elbo[-1]:.2f} nats")
    return model


def iwae_comparison(model, x, exact, k: int = 5000) -> dict:
    """Quantiles of exact - IWAE_K per image, and how many images have IWAE above exact by > 3 SE."""
    iwae, se = per_image_iwae(model, x, k, return_se=True)
    gap = (exact - iwae).double()
    quantiles = torch.quantile(gap, torch.tensor([0.5, 0.9, 0.99], dtype=torch.float64)).tolist()
    return dict(images=len(x), k=k, median=quantiles[0], q90=quantiles[1], q99=quantiles[2],
                max=gap.max().item(), min=gap.min().item(),
                iwae_above_exact_by_3se=int((iwae - exact > 3 * se).sum()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a 2-D checkpoint to load instead of training the seed's model")
    parser.add_argument("--iwae-images", type=int, default=300)
    args = parser.parse_args()
    data = load_mnist("sample", verbose=False)
    model = (load_checkpoint(args.model) if args.model else seed_model(data)).eval()
    exact, report = converged_log_px(model, data.test_x)
    print(f"{torch.get_num_threads()} threads: exact log p(x) of {len(exact):,} test images in "
          f"{report['seconds']:.1f} s; mean {report['mean_log_px']:.4f} nats")
    print("  grid:", json.dumps({k: v for k, v in report.items() if k not in ("seconds", "mean_log_px")}))
    n = args.iwae_images
    comparison = iwae_comparison(model, data.test_x[:n], exact[:n])
    print(f"exact - IWAE-{comparison['k']} on the first {n} images (nats): median {comparison['median']:.3f}, "
          f"90th percentile {comparison['q90']:.3f}, 99th {comparison['q99']:.3f}, max {comparison['max']:.3f}, "
          f"min {comparison['min']:.3f}; IWAE above exact by > 3 SE: {comparison['iwae_above_exact_by_3se']} images")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"threads": torch.get_num_threads(), "model": args.model or "seed, 3000 steps",
                                   "exact": report, "iwae": comparison}, indent=2) + "\n")


if __name__ == "__main__":
    main()
