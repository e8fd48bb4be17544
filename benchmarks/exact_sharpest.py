"""vaelib.exact.converged_log_px on the sharpest posteriors of a full-MNIST model, against a float64 reference.

The stopping rule of converged_log_px must not stop early where the posterior is much narrower than its
starting grid. This takes the 2-D model of notebook 7 (L = 2, seed 0, committed in vaelib/pretrained), finds
the --images test images whose encoder posterior q(z|x) is narrowest (smallest sigma_1 * sigma_2), and
computes log p(x) for each a second way, written here and sharing nothing with vaelib.exact but the
decoder: the rectangle rule in float64 (the decoder's weights cast to float64), on two grids that
together cover [-8, 8]^2 once,

- a fine grid over a window around the encoder's mean, half-width max(12 sigma_max, 0.25), spacing
  sigma_min / 8 (so that even the narrowest posterior has 16 points across two standard deviations);
- a coarse grid of spacing 0.02 over the rest of the square (mass far from q, if the posterior has it).

It reports, per image, both values and their difference, and writes benchmarks/results/exact_sharpest.json.

    VAELIB_DATA=/work/shared/data/mnist-full .venv/bin/python benchmarks/exact_sharpest.py [--images 20]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from vaelib.config import ModelConfig
from vaelib.data import load_mnist
from vaelib.exact import converged_log_px
from vaelib.runs import PRETRAINED
from vaelib.model import load_checkpoint

RESULTS = Path(__file__).parent / "results" / "exact_sharpest.json"
MODEL = PRETRAINED / "ebdfae5977a6" / "model.pt"  # notebook 7: L = 2, 6,000 steps, seed 0, full MNIST


def log_joint64(decoder, x: torch.Tensor, z: torch.Tensor, chunk: int = 20_000) -> torch.Tensor:
    """log p(x|z) + log N(z; 0, I) in float64 for one image x (D,) at points z (P, 2) -> (P,)."""
    out = []
    for zc in z.split(chunk):
        logits = decoder(zc)
        log_px_z = (x * logits - torch.nn.functional.softplus(logits)).sum(-1)
        out.append(log_px_z - 0.5 * (zc ** 2).sum(-1) - math.log(2 * math.pi))
    return torch.cat(out)


def grid(lo: torch.Tensor, hi: torch.Tensor, h: float) -> torch.Tensor:
    """Cell centres of a rectangle-rule grid of spacing h over [lo, hi] (2,) -> (P, 2)."""
    axes = [torch.arange(float(lo[j]) + h / 2, float(hi[j]), h, dtype=torch.float64) for j in range(2)]
    return torch.cartesian_prod(*axes)


@torch.no_grad()
def reference_log_px(decoder, x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, a: float = 8.0) -> float:
    half = max(12 * sigma.max().item(), 0.25)
    h_fine, h_coarse = sigma.min().item() / 8, 0.02
    lo, hi = mu - half, mu + half
    fine = grid(lo, hi, h_fine)
    coarse = grid(torch.tensor([-a, -a]), torch.tensor([a, a]), h_coarse)
    outside = ((coarse < lo) | (coarse > hi)).any(-1)  # coarse cells whose centre is outside the window
    parts = [torch.logsumexp(log_joint64(decoder, x, fine), 0) + 2 * math.log(h_fine),
             torch.logsumexp(log_joint64(decoder, x, coarse[outside]), 0) + 2 * math.log(h_coarse)]
    return torch.logsumexp(torch.stack(parts), 0).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    data = load_mnist("mnist")
    model = load_checkpoint(MODEL, ModelConfig(z_dim=2)).eval()
    with torch.no_grad():
        mu, logvar = model.encode(data.test_x)
    sigma = (0.5 * logvar).exp()
    sharpest = sigma.prod(1).argsort()[:args.images]
    x = data.test_x[sharpest]
    tick = time.perf_counter()
    exact, last_change, report = converged_log_px(model, x)
    seconds = time.perf_counter() - tick
    decoder64 = model.decoder.double()  # a copy would do as well; this script owns the model it loaded
    rows = []
    for i, n in enumerate(sharpest.tolist()):
        ref = reference_log_px(decoder64, x[i].double(), mu[n].double(), sigma[n].double())
        rows.append({"test_index": n, "sigma": sigma[n].tolist(), "converged_log_px": exact[i].item(),
                     "reference_log_px": ref, "difference": exact[i].item() - ref})
        print(f"test image {n:5d}: sigma ({sigma[n, 0]:.4f}, {sigma[n, 1]:.4f}); converged_log_px {exact[i]:.4f}, "
              f"float64 reference {ref:.4f}, difference {exact[i] - ref:+.4f}")
    worst = max(abs(r["difference"]) for r in rows)
    print(f"largest |difference| over the {len(rows)} sharpest test images: {worst:.4f} nats "
          f"(converged_log_px took {seconds:.1f} s for them)")
    RESULTS.write_text(json.dumps({"command": "python benchmarks/exact_sharpest.py", "model": str(MODEL.relative_to(
        PRETRAINED.parent.parent)), "data": data.source, "images": rows, "largest_abs_difference": worst,
        "within_0.01_nats": worst < 0.01}, indent=1))


if __name__ == "__main__":
    main()
