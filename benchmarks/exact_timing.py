"""Time of the exact log p(x) by quadrature (vaelib.exact), and how far IWAE-5000 is from it.

Loads a 2-D model with --model, or trains the seed's (784-256-128-2 and back) for --steps Adam steps on
the data; times vaelib.exact.converged_log_px on all test images of --data (2,000 of the offline
sample, 10,000 of full MNIST; the issue asks for at most 60 s on 2 CPU cores for full MNIST) --repeats
times, and reports the images refined at each level, the largest last change of any image and the largest
drop (h^2 times the posterior's curvature, at most 1 nat where an image stops); then, on
the first --iwae-images of them, compares exact log p(x) with the importance-weighted estimate at
K = 5000: quantiles of exact - IWAE, and the images whose IWAE lies above the exact value by more than
3 Monte Carlo standard errors (with exact error bars, about one image in a thousand by chance; where q
covers the posterior badly the delta-method error bar is too small, and notebook 6 shows such a digit).
Writes benchmarks/results/exact_timing.json.

    .venv/bin/python benchmarks/exact_timing.py [--data mnist] [--model runs/course/model.pt] [--repeats 3]

Full MNIST is read from $VAELIB_DATA (e.g. VAELIB_DATA=/work/shared/data/mnist-full); measure the peak
memory with /usr/bin/time -v. On a machine whose cores other processes share, OpenMP threads that spin
while they wait for each other slow everything down: compare OMP_WAIT_POLICY=PASSIVE, or --threads 1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
from pathlib import Path

import torch

from vaelib.config import TrainConfig, seed_everything
from vaelib.data import load_mnist
from vaelib.exact import converged_log_px
from vaelib.model import VAE, load_checkpoint
from vaelib.evaluate import per_image_iwae
from vaelib.train import train

RESULTS = Path(__file__).parent / "results" / "exact_timing.json"


def seed_model(data, steps: int):
    """The seed's 2-D VAE after `steps` Adam steps on data.train_x (3,000 steps: about 15 s on 2 cores)."""
    cfg = TrainConfig(data=data.source, steps=steps, progress=False)
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


def time_exact(model, x, repeats: int):
    """converged_log_px on x, `repeats` times; prints the times and how far each level went.

    Returns the last run's log p(x) (N,), last changes (N,) and report, and the seconds of every run.
    """
    runs = [converged_log_px(model, x) for _ in range(repeats)]
    exact, last_change, report = runs[-1]
    seconds = [run[2]["seconds"] for run in runs]
    print(f"{torch.get_num_threads()} threads: exact log p(x) of {len(x):,} test images in "
          f"{', '.join(f'{s:.1f}' for s in seconds)} s; mean {report['mean_log_px']:.4f} nats")
    print(f"  images refined per level {report['images_refined']}; largest last change of an image "
          f"{last_change.max():.6f} nats (mean {last_change.mean():.2e}); largest last drop "
          f"{report['max_image_drop']:.3f} nats; finest spacing {report['finest_spacing']}")
    print("  report:", json.dumps({k: v for k, v in report.items() if k not in ("seconds", "mean_log_px")}))
    return exact, report, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["sample", "mnist"], default="sample")
    parser.add_argument("--model", help="a 2-D checkpoint to load instead of training the seed's model")
    parser.add_argument("--steps", type=int, default=3000, help="training steps of the seed's model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="timed passes over the test images")
    parser.add_argument("--iwae-images", type=int, default=300, help="0 skips the IWAE comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_mnist(args.data, verbose=False)
    model = (load_checkpoint(args.model) if args.model else seed_model(data, args.steps)).eval()
    exact, report, seconds = time_exact(model, data.test_x, args.repeats)
    result = dict(threads=args.threads, omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "unset"), data=data.source,
                  model=args.model or f"seed, {args.steps} steps", seconds=seconds, exact=report)
    if args.iwae_images:
        n = args.iwae_images
        result["iwae"] = comparison = iwae_comparison(model, data.test_x[:n], exact[:n])
        print(f"exact - IWAE-{comparison['k']} on the first {n} images (nats): median {comparison['median']:.3f}, "
              f"90th percentile {comparison['q90']:.3f}, 99th {comparison['q99']:.3f}, max {comparison['max']:.3f}, "
              f"min {comparison['min']:.3f}; IWAE above exact by > 3 SE: {comparison['iwae_above_exact_by_3se']}")
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the whole process (KiB)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
