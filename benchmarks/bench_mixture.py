"""The learned mixture prior's log-density, expanded into matrix products (float64) against formed directly.

vaelib.priors.mixture_log_prob expands each component's square into two (N, L) @ (L, C) products in float64;
direct_mixture_log_prob (kept for Apple's MPS) forms the (N, C, L) tensor of differences in float32. This
times both side by side, interleaved A B A B ..., one thread, and reports medians and their ratio:

- the log-density alone, at the shape IWAE-5000 scores a 50-D model with C = 500 components: one chunk of
  53 draws for each of 100 images, N = 5,300, L = 50;
- the whole chunk of log weights (encoder, draws, decoder, prior) of the committed 50-D mixture-prior model
  (benchmarks/results/compare_50d/mog), with each form of the density; and the plain VAE's chunk
  (benchmarks/results/compare_50d/vae) beside them, to say what the prior costs on top of the decoder.

    python benchmarks/bench_mixture.py [--blocks 7]      # writes benchmarks/results/bench_mixture.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import vaelib.priors
from vaelib.elbo import posterior_log_weights
from vaelib.model import load_checkpoint
from vaelib.priors import direct_mixture_log_prob, mixture_log_prob

HERE = Path(__file__).resolve().parent / "results"
RESULTS = HERE / "bench_mixture.json"


def seconds(fn, repeats: int) -> float:
    fn()  # warm
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    C, L, N = 500, 50, 5300
    means, logvars, logits = torch.randn(C, L, generator=g), torch.randn(C, L, generator=g) * 0.3, torch.randn(C, generator=g)
    z = torch.randn(N, L, generator=g)
    x = (torch.rand(100, 784, generator=g) < 0.2).float()
    mog = load_checkpoint(HERE / "compare_50d" / "mog" / "model.pt").eval()
    vae = load_checkpoint(HERE / "compare_50d" / "vae" / "model.pt").eval()

    def chunk(model, density):
        vaelib.priors.mixture_log_prob = density  # what the prior's log_prob calls
        try:
            return seconds(lambda: posterior_log_weights(model, x, 53, torch.Generator().manual_seed(1)), 3)
        finally:
            vaelib.priors.mixture_log_prob = mixture_log_prob

    cases = {
        "density, expanded (float64)": lambda: seconds(lambda: mixture_log_prob(z, means, logvars, logits), 5),
        "density, direct (float32)": lambda: seconds(lambda: direct_mixture_log_prob(z, means, logvars, logits), 5),
        "mixture-prior model's chunk, expanded": lambda: chunk(mog, mixture_log_prob),
        "mixture-prior model's chunk, direct": lambda: chunk(mog, direct_mixture_log_prob),
        "N(0, I) model's chunk": lambda: chunk(vae, mixture_log_prob),
    }
    times = {name: [] for name in cases}
    with torch.no_grad():
        for block in range(args.blocks):
            for name, case in cases.items():
                times[name].append(case())
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, t in median.items():
        print(f"{name:40s} {t * 1e3:8.1f} ms")
    ratios = {"density: direct / expanded": median["density, direct (float32)"] / median["density, expanded (float64)"],
              "chunk: direct / expanded": median["mixture-prior model's chunk, direct"]
              / median["mixture-prior model's chunk, expanded"],
              "chunk, expanded / N(0, I)": median["mixture-prior model's chunk, expanded"] / median["N(0, I) model's chunk"]}
    for name, r in ratios.items():
        print(f"{name:40s} {r:8.2f} x")
    RESULTS.write_text(json.dumps({
        "command": f"python benchmarks/bench_mixture.py --blocks {args.blocks}",
        "machine": {"processor": platform.machine(), "torch": torch.__version__, "threads": 1},
        "shapes": {"components": C, "latent": L, "points": N, "chunk": "53 draws x 100 images"},
        "median_seconds": median, "ratios": ratios, "blocks_seconds": times}, indent=2) + "\n")
    print(f"written: {RESULTS.relative_to(HERE.parents[1])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
