"""Each speed idea for vaelib's training step, measured side by side in one process.

Every variant trains its own copy of the seed's VAE (784-256-128-2, batch 100, Adam) on the offline
sample; the variants run in turn, A B C ... A B C ..., and each reports the median images/s over
the repeats, so that load from other processes on a shared machine hits them all alike. The
variants add one idea at a time to the plain loop, in the order of the table in benchmarks/README.md,
up to vaelib's step; the last rows try, on top of it, the ideas that were not kept.

    .venv/bin/python benchmarks/ablation.py [--steps 100] [--repeats 15] [--threads 1 2] [--compile]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch
import torch.nn.functional as F

from vaelib.data import load_sample
from vaelib.elbo import elbo_terms, kl_standard_normal
from vaelib.model import VAE, reparameterize
from vaelib.train import Batches, lr_factor

B = 100


def plain_loss(model, x, generator):
    """-elbo.mean() from elbo_terms, as the loop did before."""
    return -elbo_terms(model, x, generator).elbo.mean()


def summed_loss(model, x, generator):
    """The same loss in one reduction over the batch, with PyTorch's own log-likelihood kernel."""
    logits, mu, logvar = model(x, generator=generator)
    return (F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            + kl_standard_normal(mu, logvar).sum()) / B


class NegLogLikelihood(torch.autograd.Function):
    """-log p(x|z) summed over pixels and batch with its gradient sigmoid(l) - x written out, and log(1 + t) for
    log1p(t): the kernel vaelib's step used until PyTorch's own became faster (torch 2.14)."""

    @staticmethod
    def forward(ctx, logits, x):
        ctx.save_for_backward(logits, x)
        log_term = logits.abs().neg_().exp_().add_(1).log_()
        return (logits.clamp_min(0).addcmul_(x, logits, value=-1).add_(log_term)).sum()

    @staticmethod
    def backward(ctx, grad):
        logits, x = ctx.saved_tensors
        return (torch.sigmoid(logits) - x) * grad, None


def hand_written_loss(model, x, generator):
    """summed_loss with the hand-written log-likelihood."""
    logits, mu, logvar = model(x, generator=generator)
    return (NegLogLikelihood.apply(logits, x) + kl_standard_normal(mu, logvar).sum()) / B


def train_step(model, optimizer, x, generator, loss_fn) -> torch.Tensor:
    """One optimiser step with the given loss, as vaelib.train.train_step takes it (that one also keeps the KL)."""
    loss = loss_fn(model, x, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def set_lr(optimizer, factor: float) -> None:
    """LambdaLR's update written out, without the scheduler object."""
    for group in optimizer.param_groups:
        group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor


def compiled_summed_loss():
    """summed_loss through torch.compile, eps drawn outside (a generator inside breaks the graph)."""
    def loss(model, x, eps):
        mu, logvar = model.encode(x)
        logits = model.decode(reparameterize(mu, logvar, eps))
        return (F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
                + kl_standard_normal(mu, logvar).sum()) / B
    compiled = torch.compile(loss)
    return lambda model, x, generator: compiled(model, x, torch.randn(len(x), 2, generator=generator))


def variant(images, fused=False, buffers=False, loss=plain_loss, scheduler=True):
    """A closure running one training step of the loop with the given ideas switched on."""
    torch.manual_seed(0)
    model = VAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, 10**9, "decay"))
    generator = torch.Generator().manual_seed(0)
    batches, count = Batches(images, B, generator), itertools.count()

    def step():
        i = next(count)
        if i % (len(images) // B) == 0:
            batches.shuffle()
        i %= len(images) // B
        if buffers:
            x = batches(i)
        else:
            x = torch.bernoulli(images[batches.order[i * B:(i + 1) * B]], generator=generator)
        if not scheduler:
            set_lr(optimizer, lr_factor(i, 10**9, "decay"))
        train_step(model, optimizer, x, generator, loss)
        if scheduler:
            schedule.step()
    return step


def variants(images, compile_too: bool) -> dict:
    """The plain loop, then one kept idea added at a time (the last is vaelib's train step: its loss is the plain
    loss, vaelib.elbo.elbo_terms), then each idea not kept, tried on top of vaelib's step."""
    kept = [("plain loop", {}),
            ("+ fused Adam", dict(fused=True)),
            ("+ batch buffers, rand + lt = vaelib", dict(buffers=True))]
    tried = [("vaelib + one summed loss", dict(loss=summed_loss)),
             ("vaelib + hand-written log-likelihood", dict(loss=hand_written_loss)),
             ("vaelib + lr set by hand, no LambdaLR", dict(scheduler=False))]
    if compile_too:
        tried.append(("vaelib, compiled loss not hand-written", dict(loss=compiled_summed_loss())))
    settings, out = {}, {}
    for name, change in kept:
        settings.update(change)
        out[name] = variant(images, **settings)
    for name, change in tried:
        out[name] = variant(images, **{**settings, **change})
    return out


def measure(steps: dict, threads: list[int], n: int, repeats: int) -> dict:
    """Median images/s of each (variant, threads), interleaved over the repeats."""
    runs = {(name, t): [] for name in steps for t in threads}
    for _ in range(repeats):
        for (name, t), seen in runs.items():
            torch.set_num_threads(t)
            step = steps[name]
            started = time.perf_counter()
            for _ in range(n):
                step()
            seen.append(n * B / (time.perf_counter() - started))
    return {key: statistics.median(v) for key, v in runs.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--compile", action="store_true", help="add the torch.compile variant")
    args = parser.parse_args()
    images = load_sample()[0]
    steps = variants(images, args.compile)
    for name, step in steps.items():  # warm-up, and compilation, outside the timing
        started = time.perf_counter()
        for _ in range(20):
            step()
        print(f"{name:40s} 20 warm-up steps: {time.perf_counter() - started:.1f} s")
    result = measure(steps, args.threads, args.steps, args.repeats)
    base = result[(next(iter(steps)), args.threads[0])]
    for (name, t), speed in result.items():
        print(f"{name:40s} threads {t}: {speed:8.0f} images/s  x{speed / base:.2f}")


if __name__ == "__main__":
    main()
