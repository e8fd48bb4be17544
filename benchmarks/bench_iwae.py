"""Time and memory of the importance-weighted estimate of log p(x) (vaelib.train.per_image_iwae).

Prints the process's peak memory after K = 100, 1000 and 5000 (flat when iwae_bound's chunking
bounds memory); then times K = 1000 on the first --images test images of the offline sample for
several batch sizes, interleaved (A B C A B C ...), medians over --repeats. The row
"log(1 + exp) likelihood" swaps in a log-likelihood that avoids the unvectorised log1p kernel
(a proposal for vaelib/elbo.py, not what vaelib runs). The model is untrained: the cost does not
depend on the weights.

    .venv/bin/python benchmarks/bench_iwae.py [--images 200] [--k 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

import vaelib.elbo
from vaelib.data import load_mnist
from vaelib.model import VAE
from vaelib.evaluate import per_image_iwae


def log_one_plus_exp_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) = sum_d x_d l_d - max(l_d, 0) - log(1 + exp(-|l_d|)). (..., D) -> (...)."""
    log_term = logits.abs().neg_().exp_().add_(1).log_()
    return (x * logits).sub_(logits.clamp_min(0)).sub_(log_term).sum(-1)


def timings(model, x, k: int, repeats: int) -> dict:
    """Median seconds of per_image_iwae for each batch size, and with the proposed likelihood."""
    library = vaelib.elbo.bernoulli_log_likelihood
    runs = {f"batch {b}": (b, library) for b in (50, 100, 200, 500)}
    runs["batch 100, log(1 + exp) likelihood"] = (100, log_one_plus_exp_likelihood)
    seconds, means = {name: [] for name in runs}, {}
    for _ in range(repeats):
        for name, (batch, likelihood) in runs.items():
            vaelib.elbo.bernoulli_log_likelihood = likelihood
            started = time.perf_counter()
            means[name] = per_image_iwae(model, x, k, batch_size=batch).mean().item()
            seconds[name].append(time.perf_counter() - started)
    vaelib.elbo.bernoulli_log_likelihood = library
    return {name: (statistics.median(s), means[name]) for name, s in seconds.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, x = VAE().eval(), load_mnist("sample", verbose=False).test_x[:args.images]
    print(f"peak memory of the process before any estimate: {peak_mb():4.0f} MB")
    for k in (100, 1000, 5000):  # first, while the peak is still the estimate's own
        per_image_iwae(model, x[:100], k)
        print(f"  after K = {k:4d} on 100 images (batch 100): {peak_mb():4.0f} MB")
    print(f"{torch.get_num_threads()} threads, K = {args.k}, {len(x)} test images:")
    for name, (seconds, mean) in timings(model, x, args.k, args.repeats).items():
        print(f"  {name:36s} {seconds:6.2f} s  ({seconds * 2000 / len(x):5.1f} s per 2,000 images)"
              f"  mean log p(x) {mean:.4f}")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
