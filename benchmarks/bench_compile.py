"""Does torch.compile make the course's training step faster on the CPU? The same step eager and compiled,
side by side in one process, in interleaved blocks, medians over the blocks.

The step is vaelib's (the default VAE, the ELBO with vaelib.elbo's log-likelihood and closed-form KL, fused
Adam, dynamically binarised batches of 100); eps is drawn outside the compiled function, since a generator's
draw breaks the graph. Inductor fuses the element-wise work between the matrix products into generated C++
loops, which is where a step's time beyond its matrix products goes (bench_step.py); the matrix products
themselves are the same calls. Compiling needs a C++ compiler; the seconds it takes are reported.

    .venv/bin/python benchmarks/bench_compile.py [--data-dir DIR] [--blocks 6] [--steps 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("VAELIB_ADAPT_THREADS", "0")  # the thread count is this benchmark's to fix
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_conv import shown_arguments  # noqa: E402
from bench_step import full_or_sample  # noqa: E402

from vaelib.config import ModelConfig  # noqa: E402
from vaelib.elbo import bernoulli_log_likelihood, kl_standard_normal  # noqa: E402
from vaelib.model import VAE  # noqa: E402
from vaelib.train import Batches, make_optimizer  # noqa: E402

B = 100
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "compile.json"


def negative_elbo(model: VAE, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """-ELBO, the batch mean, with eps given: what vaelib.elbo.elbo_terms computes after its draw."""
    mu, logvar = model.encode(x)
    logits = model.decode(mu + torch.exp(0.5 * logvar) * eps)
    return (kl_standard_normal(mu, logvar) - bernoulli_log_likelihood(logits, x)).mean()


class Stepper:
    def __init__(self, data, compiled: bool):
        torch.manual_seed(0)
        self.model = VAE(ModelConfig())
        self.optimizer = make_optimizer(self.model, "adam", 1e-3)
        self.generator = torch.Generator().manual_seed(0)
        self.batches = Batches(data.train_x, B, self.generator)
        self.per_epoch, self.i = len(data.train_x) // B, 0
        self.loss = torch.compile(negative_elbo) if compiled else negative_elbo

    def run(self, steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            i = self.i % self.per_epoch
            if i == 0:
                self.batches.shuffle()
            x = self.batches(i)
            eps = torch.randn(B, self.model.config.z_dim, generator=self.generator)
            loss = self.loss(self.model, x, eps)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.i += 1
        return steps * B / (time.perf_counter() - started)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = full_or_sample(args.data_dir)
    eager, compiled = Stepper(data, False), Stepper(data, True)
    started = time.perf_counter()
    compiled.run(5)  # compiles (forward and backward graphs)
    compile_seconds = time.perf_counter() - started
    eager.run(20)
    seen = {"eager": [], "compiled": []}
    for block in range(args.blocks):
        for name, stepper in (("eager", eager), ("compiled", compiled)):
            seen[name].append(stepper.run(args.steps))
        print(f"block {block + 1}: eager {seen['eager'][-1]:,.0f}, compiled {seen['compiled'][-1]:,.0f} images/s",
              flush=True)
    paired = [c / e for c, e in zip(seen["compiled"], seen["eager"])]
    result = {"command": "benchmarks/bench_compile.py " + shown_arguments(argv if argv is not None else sys.argv[1:]),
              "data": data.source, "threads": args.threads, "torch": torch.__version__,
              "compile_seconds": compile_seconds,
              "images_per_second": {name: statistics.median(v) for name, v in seen.items()},
              "compiled / eager (median of paired blocks)": statistics.median(paired),
              "paired ratios": paired, "blocks": seen}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "blocks"}, indent=1))
    return result


if __name__ == "__main__":
    main()
