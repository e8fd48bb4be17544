"""Where a training step's time goes, and what a faster step would take: vaelib's step against the original
notebook's code, the compute bound of `make bench`, and a prototype step with the same maths and random numbers.

Side by side in one process, in interleaved blocks (a b c d e, a b c d e, ...), medians over the blocks:

(a) original   the original notebook's training loop as written (benchmarks/original_notebook.py: torchvision's
               MNIST with ToTensor, a DataLoader with 8 workers, sigmoid + BCE of probabilities, hand-written
               gradient descent), one epoch of full MNIST per block (its 8 workers start anew each epoch, as
               written); --workers changes the 8
(b) vaelib     vaelib.train.train, the loop `python -m vaelib train` runs, --steps steps per block
(c) prototype  the same step written out by hand (ManualStep below): the forward and backward products into
               buffers allocated once, no autograd graph, no nn.Module calls; the same operations on the same
               draws of the same generator, the same fused Adam
(d) bound      the compute bound of benchmarks/bench_train.py: one step's matrix products alone
(e) floor      what no rewrite of the step can avoid, each part timed alone and summed: the matrix products (d),
               the uniform draws that binarise a batch (100 x 784 from the generator, mt19937, one core),
               eps (100 x 2), the fused Adam update of the 0.47 M parameters, the gathering of the batch, and one
               pass of each element-wise term over the 100 x 784 logits (the log-likelihood's
               log(1 + exp(-|l|)) and its gradient sigmoid(l) - x)

Then a profile of (b)'s step by phase (batch, forward and loss, backward, Adam), perf_counter around each,
and of (c)'s. Everything at the thread count in force (--threads; vaelib.threads adapts it, not here: it is
fixed for the whole run so that the figures compare).

    .venv/bin/python benchmarks/bench_step.py [--data-dir DIR] [--blocks 5] [--steps 600] [--threads 2]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("VAELIB_ADAPT_THREADS", "0")  # the thread count is this benchmark's to fix

import original_notebook  # noqa: E402
from bench_train import ComputeBound  # noqa: E402

from vaelib.config import ModelConfig, TrainConfig  # noqa: E402
from vaelib.data import load_mnist  # noqa: E402
from vaelib.model import VAE  # noqa: E402
from vaelib.train import Batches, History, make_optimizer, train, train_step  # noqa: E402

B, D = 100, 784
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "bench_step.json"


class ManualStep:
    """vaelib's training step (train_step with the default VAE: fast_loss, beta = 1, fused Adam) written out by hand.

    The forward pass as VAE.forward computes it (addmm per layer, ReLU, z = mu + exp(0.5 logvar) * eps with eps
    drawn by torch.randn from the same generator, after the batch's uniforms, as vaelib draws them); the loss as
    NegLogLikelihood and kl_standard_normal; the backward pass by the chain rule, layer by layer (the products of
    autograd's Linear backward, threshold_backward for the ReLUs), written into gradient buffers that are the
    parameters' .grad, allocated once; then the optimiser's own step. Returns (-ELBO, KL) per image, as train_step.
    """

    def __init__(self, model: VAE, optimizer, batch: int = B):
        enc, dec = model.encoder, model.decoder
        self.W = [enc[0].weight, enc[2].weight, model.mu_head.weight, model.logvar_head.weight,
                  dec[0].weight, dec[2].weight, dec[4].weight]
        self.b = [enc[0].bias, enc[2].bias, model.mu_head.bias, model.logvar_head.bias,
                  dec[0].bias, dec[2].bias, dec[4].bias]
        self.optimizer = optimizer
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        L = self.W[2].shape[0]
        new = lambda *shape: torch.empty(*shape)  # noqa: E731
        self.h1, self.h2 = new(batch, self.W[0].shape[0]), new(batch, self.W[1].shape[0])
        self.mu, self.lv, self.std, self.z = new(batch, L), new(batch, L), new(batch, L), new(batch, L)
        self.d1, self.d2, self.l = new(batch, self.W[4].shape[0]), new(batch, self.W[5].shape[0]), new(batch, D)
        self.t, self.gl = new(batch, D), new(batch, D)
        self.gd2, self.gd1 = new(batch, self.W[5].shape[0]), new(batch, self.W[4].shape[0])
        self.gz, self.gmu, self.glv = new(batch, L), new(batch, L), new(batch, L)
        self.gh2, self.gh1 = new(batch, self.W[1].shape[0]), new(batch, self.W[0].shape[0])

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        W, b, n = self.W, self.b, x.shape[0]
        # forward
        torch.addmm(b[0], x, W[0].t(), out=self.h1).relu_()
        torch.addmm(b[1], self.h1, W[1].t(), out=self.h2).relu_()
        torch.addmm(b[2], self.h2, W[2].t(), out=self.mu)
        torch.addmm(b[3], self.h2, W[3].t(), out=self.lv)
        eps = torch.randn(self.mu.shape, generator=generator)
        torch.mul(self.lv, 0.5, out=self.std).exp_()
        torch.addcmul(self.mu, self.std, eps, out=self.z)
        torch.addmm(b[4], self.z, W[4].t(), out=self.d1).relu_()
        torch.addmm(b[5], self.d1, W[5].t(), out=self.d2).relu_()
        torch.addmm(b[6], self.d2, W[6].t(), out=self.l)
        # loss: sum softplus(l) - x l, and the closed-form KL
        torch.abs(self.l, out=self.t).neg_().exp_().add_(1).log_()
        neg_log_px_z = self.l.clamp_min(0).addcmul_(x, self.l, value=-1).add_(self.t).sum()
        kl = 0.5 * (self.lv.exp() + self.mu.pow(2) - 1.0 - self.lv).sum()
        # backward: dloss/dl = (sigmoid(l) - x) / n
        torch.sigmoid(self.l, out=self.gl).sub_(x).mul_(1.0 / n)
        torch.mm(self.gl.t(), self.d2, out=W[6].grad)
        torch.sum(self.gl, 0, out=b[6].grad)
        torch.mm(self.gl, W[6], out=self.gd2)
        torch.ops.aten.threshold_backward(self.gd2, self.d2, 0, grad_input=self.gd2)
        torch.mm(self.gd2.t(), self.d1, out=W[5].grad)
        torch.sum(self.gd2, 0, out=b[5].grad)
        torch.mm(self.gd2, W[5], out=self.gd1)
        torch.ops.aten.threshold_backward(self.gd1, self.d1, 0, grad_input=self.gd1)
        torch.mm(self.gd1.t(), self.z, out=W[4].grad)
        torch.sum(self.gd1, 0, out=b[4].grad)
        torch.mm(self.gd1, W[4], out=self.gz)
        # z = mu + std * eps, and the KL's own gradient: mu / n and (exp(logvar) - 1) / (2 n)
        torch.add(self.gz, self.mu, alpha=1.0 / n, out=self.gmu)
        torch.mul(self.gz, eps, out=self.glv).mul_(self.std).mul_(0.5)
        self.glv.add_(self.lv.exp().sub_(1), alpha=0.5 / n)
        for i, g in ((2, self.gmu), (3, self.glv)):
            torch.mm(g.t(), self.h2, out=W[i].grad)
            torch.sum(g, 0, out=b[i].grad)
        torch.mm(self.gmu, W[2], out=self.gh2)
        self.gh2.addmm_(self.glv, W[3])
        torch.ops.aten.threshold_backward(self.gh2, self.h2, 0, grad_input=self.gh2)
        torch.mm(self.gh2.t(), self.h1, out=W[1].grad)
        torch.sum(self.gh2, 0, out=b[1].grad)
        torch.mm(self.gh2, W[1], out=self.gh1)
        torch.ops.aten.threshold_backward(self.gh1, self.h1, 0, grad_input=self.gh1)
        torch.mm(self.gh1.t(), x, out=W[0].grad)
        torch.sum(self.gh1, 0, out=b[0].grad)
        self.optimizer.step()
        return torch.stack([neg_log_px_z + kl, kl]) / n


def full_or_sample(data_dir: Path | None):
    try:
        return load_mnist("mnist", data_dir, verbose=False)
    except Exception:
        return load_mnist("sample", verbose=False)


class Vaelib:
    def __init__(self, data):
        torch.manual_seed(0)
        self.model, self.data, self.calls = VAE(ModelConfig()), data, 0
        self.optimizer = make_optimizer(self.model, "adam", 1e-3)

    def run(self, steps: int) -> float:
        cfg = TrainConfig(steps=steps, progress=False, seed=self.calls)
        history = train(self.model, self.data, cfg, self.optimizer, History())
        self.calls += 1
        return history.train_images / history.train_seconds


class Prototype:
    """ManualStep in the loop vaelib.train runs (the same Batches, generator and schedule), timing its steps."""

    def __init__(self, data):
        torch.manual_seed(0)
        self.model = VAE(ModelConfig())
        self.optimizer = make_optimizer(self.model, "adam", 1e-3)
        self.step = ManualStep(self.model, self.optimizer)
        self.generator = torch.Generator().manual_seed(0)
        self.batches = Batches(data.train_x, B, self.generator)
        self.per_epoch, self.i = len(data.train_x) // B, 0

    def run(self, steps: int) -> float:
        terms = torch.zeros(steps, 2)
        started = time.perf_counter()
        for s in range(steps):
            i = self.i % self.per_epoch
            if i == 0:
                self.batches.shuffle()
            terms[s] = self.step(self.batches(i), self.generator)
            self.i += 1
        return steps * B / (time.perf_counter() - started)


class Original:
    def __init__(self, data_dir: Path, workers: int):
        torch.manual_seed(0)
        self.model = original_notebook.NotebookVAE()
        self.loader, _ = original_notebook.loaders(data_dir, workers)

    def run(self) -> float:
        started = time.perf_counter()
        original_notebook.train_epoch(self.model, self.loader)
        return len(self.loader) * B / (time.perf_counter() - started)


def floor_parts(model: VAE, data, repeats: int = 200) -> dict:
    """Seconds per step of each part no rewrite avoids, timed alone (medians of 5 runs of `repeats`)."""
    generator = torch.Generator().manual_seed(0)
    optimizer = make_optimizer(model, "adam", 1e-3)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    uniform, grey, x = torch.empty(B, D), data.train_x[:B].clone(), torch.empty(B, D)
    index, logits, out = torch.randperm(len(data.train_x))[:B], torch.randn(B, D), torch.empty(B, D)
    parts = {
        "uniform draws (100 x 784)": lambda: torch.rand((B, D), generator=generator, out=uniform),
        "eps (100 x 2)": lambda: torch.randn((B, 2), generator=generator),
        "gather and binarise the batch": lambda: (torch.index_select(data.train_x, 0, index, out=grey),
                                                 torch.lt(uniform, grey, out=x)),
        "log-likelihood, one pass": lambda: torch.abs(logits, out=out).neg_().exp_().add_(1).log_(),
        "its gradient, one pass": lambda: torch.sigmoid(logits, out=out).sub_(x),
        "fused Adam (0.47 M parameters)": optimizer.step,
    }
    seconds = {}
    for name, part in parts.items():
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(repeats):
                part()
            runs.append((time.perf_counter() - started) / repeats)
        seconds[name] = statistics.median(runs)
    return seconds


def phases(model_step, batches, generator, steps: int) -> dict:
    """Median seconds of each phase of vaelib's train_step over `steps` steps."""
    model, optimizer, cfg = model_step
    from vaelib.elbo import elbo_terms
    times = {"batch": [], "forward and loss": [], "backward": [], "Adam": []}
    batches.shuffle()
    per_epoch = len(batches.images) // batches.B
    for i in range(steps):
        t0 = time.perf_counter()
        x = batches(i % per_epoch)
        t1 = time.perf_counter()
        loss = -elbo_terms(model, x, generator).elbo.mean()
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        for name, (a, b) in zip(times, ((t0, t1), (t1, t2), (t2, t3), (t3, t4))):
            times[name].append(b - a)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("VAELIB_DATA", "")) or None)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=600, help="steps per block for (b) and (c)")
    parser.add_argument("--workers", type=int, default=8, help="the original's DataLoader workers (as written: 8)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-original", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = full_or_sample(args.data_dir)
    print(f"{data.source}: {len(data.train_x):,} training images; {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    ours, proto, bound = Vaelib(data), Prototype(data), ComputeBound()
    original = None if args.no_original or data.source != "mnist" else Original(args.data_dir, args.workers)
    ours.run(20), proto.run(20), bound.run(20)
    seen = {"original": [], "vaelib": [], "prototype": [], "bound": []}
    floors = []
    for block in range(args.blocks):
        if original is not None:
            seen["original"].append(original.run())
        seen["vaelib"].append(ours.run(args.steps))
        seen["prototype"].append(proto.run(args.steps))
        seen["bound"].append(bound.run())
        floors.append(floor_parts(VAE(ModelConfig()), data))
        print(f"block {block + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in seen.items() if v) + " images/s",
              flush=True)
    median = {k: statistics.median(v) for k, v in seen.items() if v}
    floor = {name: statistics.median(f[name] for f in floors) for name in floors[0]}
    bound_step = B / median["bound"]
    floor_step = bound_step + sum(floor.values())
    generator = torch.Generator().manual_seed(1)
    model = VAE(ModelConfig())
    profile = phases((model, make_optimizer(model, "adam", 1e-3), TrainConfig()), Batches(data.train_x, B, generator),
                     generator, 300)
    result = {"data": data.source, "threads": torch.get_num_threads(), "torch": torch.__version__,
              "images_per_second": median, "blocks": seen,
              "ratios": {"vaelib / original": median["vaelib"] / median["original"] if "original" in median else None,
                         "prototype / original": median["prototype"] / median["original"] if "original" in median else None,
                         "prototype / vaelib": median["prototype"] / median["vaelib"],
                         "vaelib / bound": median["vaelib"] / median["bound"],
                         "prototype / bound": median["prototype"] / median["bound"],
                         "vaelib / floor": median["vaelib"] * floor_step / B,
                         "prototype / floor": median["prototype"] * floor_step / B},
              "step_ms": {"vaelib": 1e3 * B / median["vaelib"], "prototype": 1e3 * B / median["prototype"],
                          "bound (matrix products)": 1e3 * bound_step, "floor": 1e3 * floor_step},
              "floor_parts_ms": {name: 1e3 * s for name, s in floor.items()},
              "vaelib_phases_ms": {name: 1e3 * s for name, s in profile.items()},
              "load_average_after": os.getloadavg()}
    print(json.dumps({k: v for k, v in result.items() if k != "blocks"}, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python benchmarks/bench_step.py " + " ".join(sys.argv[1:]), **result},
                                   indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
