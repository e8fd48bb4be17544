"""One training loop and one evaluation loop for the VAE, with optional tqdm progress bars.

Training maximises the mean one-sample ELBO of dynamically binarised minibatches (with the KL term
weighted by beta, 1 by default), or with TrainConfig(objective="iwae") the K-sample IWAE bound. The
loop keeps every per-step loss on the device and looks at them only once per epoch, so the device
never waits for the host in between; a loss that is not finite stops training with the step at which
it happened.

A run can stop and go on: after every epoch, `on_record` receives the whole training state
(weights, optimiser, schedule, random generator, history), and Ctrl-C stops the loop at the end of
the current step with a `TrainingInterrupted` that carries the same state. `train(..., resume=state)`
continues from it and ends with the weights an uninterrupted run would have (tests/test_train.py).

The step is written for speed (benchmarks/README.md measures each choice): fused optimiser
kernels, batches binarised into reused buffers, the loss summed once with a hand-written
log-likelihood. Its math is elbo_terms', step for step, as tests/test_fast_path.py checks.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from .config import TrainConfig, course_run_dir, seed_everything, without_later_defaults
from .data import MNISTData
from .elbo import elbo_terms, iwae_bound, iwae_dreg_terms, iwae_terms, kl_standard_normal
from .model import VAE, CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint

EVAL_SEED = 1234  # the eps of the evaluation ELBO: fixed, so the test loss is the same every time


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training between two steps; `state` continues it (train(..., resume=state))."""

    def __init__(self, step: int, total: int, state: dict):
        super().__init__(f"training interrupted after step {step} of {total}")
        self.step, self.total, self.state = step, total, state


@dataclass
class History:
    epoch: list[float] = field(default_factory=list)  # epochs completed at each record (fractional with --steps)
    step: list[int] = field(default_factory=list)
    train_neg_elbo: list[float] = field(default_factory=list)  # mean over the steps since the last record; -IWAE_K
    # instead when training on the IWAE bound (TrainConfig.objective)
    train_kl: list[float] = field(default_factory=list)  # its KL term (the rate); -ELBO - KL is the distortion
    test_neg_elbo: list[float] = field(default_factory=list)  # the whole test set, nats per image
    test_kl: list[float] = field(default_factory=list)
    train_seconds: float = 0.0  # wall time of the optimiser steps alone, evaluation excluded
    train_images: int = 0

    def record(self, **values):
        for key, value in values.items():
            getattr(self, key).append(value)


def make_optimizer(model: torch.nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    """Adam, or plain gradient descent param -= lr * grad (the original notebook's update).

    Both use PyTorch's fused kernel where it has one (CPU and CUDA, PyTorch >= 2.4): the same
    update, in one pass over all the parameters instead of a dozen small operations per tensor.
    """
    version = tuple(int(v) for v in torch.__version__.split(".")[:2])
    fused = (next(model.parameters()).device.type in ("cpu", "cuda") and version >= (2, 4)) or None
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, fused=fused)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.0, fused=fused)


def lr_factor(step: int, total: int, schedule: str) -> float:
    """Multiplier of the learning rate before `step`: 1, then (with "decay") linear to 0 over the
    last quarter of training, which settles the weights into a lower loss than a constant rate."""
    if schedule == "constant":
        return 1.0
    return min(1.0, (total - step) / (0.25 * total))


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full batches only: each step averages B images, and the few left over wait for the next shuffle."""
    if batch_size > n_train:
        raise ValueError(f"the batch size {batch_size} is larger than the training set ({n_train:,} images); "
                         f"use --batch-size {n_train} or less")
    return n_train // batch_size


class NegLogLikelihood(torch.autograd.Function):
    """-log p(x|z) summed over pixels and batch, with its gradient written out.

    sum_bd softplus(l_bd) - x_bd * l_bd, computed stably as max(l, 0) - x * l + log(1 + exp(-|l|)),
    the value of F.binary_cross_entropy_with_logits(l, x, reduction="sum"); its gradient is
    sigmoid(l) - x. log(1 + t) stands for log1p(t), whose CPU kernel is not vectorised (7 times
    slower here); rounding 1 + t costs at most 6e-8 nats per pixel. Shapes: (B, D), (B, D) -> ().
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(logits, x)
        log_term = logits.abs().neg_().exp_().add_(1).log_()
        return (logits.clamp_min(0).addcmul_(x, logits, value=-1).add_(log_term)).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, x = ctx.saved_tensors
        return (torch.sigmoid(logits) - x) * grad, None


def batch_terms(model: torch.nn.Module, x: torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """-log p(x|z) and KL(q(z|x) || p(z)), each summed over the batch, from one reparametrised pass.

    The first by the hand-written NegLogLikelihood, the second in closed form, or as elbo_terms estimates it
    for a flow or a learned prior. Shapes: (B, D) -> (), ().
    """
    if getattr(model, "analytic_kl", True):
        logits, mu, logvar = model(x, generator=generator)
        return NegLogLikelihood.apply(logits, x), kl_standard_normal(mu, logvar).sum()
    z, log_qz_x = model.sample_posterior(x, generator=generator)
    return NegLogLikelihood.apply(model.decode(z), x), (log_qz_x - model.log_prior(z)).sum()


def fast_loss(model: torch.nn.Module, x: torch.Tensor, generator: torch.Generator | None = None,
              beta: float = 1.0) -> torch.Tensor:
    """The training loss -elbo.mean() of elbo_terms (beta = 1), in one reduction over the batch.

    (sum_bd -log p(x_bd|z_b) + beta sum_b KL_b) / B, with the same draw of eps for the same generator;
    tests/test_fast_path.py checks loss and gradients. Shapes: (B, D) -> ().
    """
    neg_log_px_z, kl = batch_terms(model, x, generator)
    return (neg_log_px_z + beta * kl) / x.shape[0]


class Batches:
    """Dynamically binarised minibatches of `images`, drawn without replacement, in reused buffers.

    Pixel x_d = 1 when u_d < grey level, u_d ~ U[0, 1): the draw torch.bernoulli makes (bit for bit
    on the CPU, with the same generator), but writing into the same three (B, D) buffers each step.
    """

    def __init__(self, images: torch.Tensor, batch_size: int, generator: torch.Generator):
        self.images, self.B, self.generator = images, batch_size, generator
        self.grey, self.uniform, self.x = (images.new_empty(batch_size, images.shape[1]) for _ in range(3))

    def shuffle(self) -> None:
        self.order = torch.randperm(len(self.images), generator=self.generator, device=self.images.device)

    def __call__(self, i: int) -> torch.Tensor:
        """The i-th batch of the current order, binarised afresh. Shape: (B, D)."""
        torch.index_select(self.images, 0, self.order[i * self.B:(i + 1) * self.B], out=self.grey)
        torch.rand(self.grey.shape, generator=self.generator, out=self.uniform)
        return torch.lt(self.uniform, self.grey, out=self.x)


def train_step(model, optimizer, x: torch.Tensor, generator: torch.Generator, cfg: TrainConfig) -> torch.Tensor:
    """One optimiser step on batch x; returns (-bound, KL) of the batch in nats per image, left on the device.

    The bound is the ELBO, with its KL weighted by cfg.beta in the loss, or with cfg.objective "iwae" the
    IWAE bound of cfg.iwae_train_k samples, with the plain or the DReG gradient (vaelib.elbo).
    """
    if cfg.objective == "iwae":
        terms = (iwae_dreg_terms if cfg.gradient == "dreg" else iwae_terms)(model, x, cfg.iwae_train_k, generator)
        neg_bound, kl = -terms.iwae.sum(), terms.kl.sum()
        loss = neg_bound / x.shape[0]
    else:
        neg_log_px_z, kl = batch_terms(model, x, generator)
        neg_bound, loss = neg_log_px_z + kl, (neg_log_px_z + cfg.beta * kl) / x.shape[0]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return torch.stack([neg_bound, kl]).detach() / x.shape[0]


def settings(config: dict) -> dict:
    """The settings that decide a run's numbers: all of TrainConfig but where it runs and whether it shows bars.

    Fields added since models were committed appear only when they differ from their defaults, so that
    existing settings, and the keys vaelib.runs makes of them, stay the same.
    """
    return without_later_defaults({key: value for key, value in config.items() if key not in ("device", "progress")})


class Run:
    """What a training run carries from step to step, and how to save and restore it."""

    def __init__(self, model, data: MNISTData, cfg: TrainConfig, optimizer, history: History | None):
        self.model, self.cfg, self.device = model, cfg, next(model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.train_x, self.test_x = data.train_x.to(self.device), data.test_x.to(self.device)
        self.per_epoch = steps_per_epoch(len(self.train_x), cfg.batch_size)
        self.total = cfg.steps or cfg.epochs * self.per_epoch
        self.optimizer = optimizer or make_optimizer(model, cfg.optimizer, cfg.lr)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, self.total, cfg.lr_schedule))
        self.batches, self.history = Batches(self.train_x, cfg.batch_size, self.generator), history or History()
        self.terms = torch.zeros(self.total, 2, device=self.device)  # per step: -ELBO and KL, nats per image
        self.step, self.seconds = 0, 0.0  # steps done; training seconds since the last record

    def state(self) -> dict:
        """Everything `restore` needs, as tensors, numbers, lists and dicts (torch.load(weights_only=True))."""
        last = self.history.step[-1] if self.history.step else 0
        return {"format": "vaelib-train-state-1", "step": self.step, "total": self.total,
                "config": asdict(self.cfg), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "generator": self.generator.get_state(), "order": getattr(self.batches, "order", None),
                "terms": self.terms[last:self.step].cpu(), "seconds": self.seconds, "history": asdict(self.history)}

    def restore(self, state: dict) -> None:
        if state["total"] != self.total or settings(state["config"]) != settings(asdict(self.cfg)):
            raise ValueError("the saved training state belongs to a run with other settings; resume it with its own")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        self.history = History(**state["history"])
        self.step, self.seconds = state["step"], state["seconds"]
        if state["order"] is not None:
            self.batches.order = state["order"].to(self.device)
        last = self.history.step[-1] if self.history.step else 0
        self.terms[last:self.step] = state["terms"].to(self.device)

    def record(self) -> None:
        """Close the epoch (or the run): check the losses, evaluate on the test set, add a History row."""
        last = self.history.step[-1] if self.history.step else 0
        recent = self.terms[last:self.step]
        check_finite(recent[:, 0], last, self.per_epoch)  # synchronises with the device
        test_neg_elbo, test_kl = evaluate_terms(self.model, self.test_x)
        train_neg_elbo, train_kl = recent.mean(0).tolist()
        self.history.train_seconds += self.seconds
        self.history.train_images += (self.step - last) * self.cfg.batch_size
        self.history.record(epoch=self.step / self.per_epoch, step=self.step, train_neg_elbo=train_neg_elbo,
                            train_kl=train_kl, test_neg_elbo=test_neg_elbo, test_kl=test_kl)
        self.seconds = 0.0


def train(model: torch.nn.Module, data: MNISTData, cfg: TrainConfig, optimizer: torch.optim.Optimizer | None = None,
          history: History | None = None, resume: dict | None = None, on_record=None) -> History:
    """Train `model` in place on data.train_x; evaluate on data.test_x after every epoch.

    resume: a state from on_record or TrainingInterrupted.state, to continue that run. on_record(state):
    called after every epoch with the whole training state. Ctrl-C raises TrainingInterrupted after the
    step in progress (press it again to stop at once).
    """
    run = Run(model, data, cfg, optimizer, history)
    if resume is not None:
        run.restore(resume)
    model.train()
    bar = tqdm(total=run.total, initial=run.step, desc="training", unit="step", disable=not cfg.progress)
    with deferred_interrupt() as interrupted:
        tick = time.perf_counter()
        while run.step < run.total:
            i = run.step % run.per_epoch
            if i == 0:
                run.batches.shuffle()
            run.terms[run.step] = train_step(model, run.optimizer, run.batches(i), run.generator, cfg)
            run.schedule.step()
            run.step += 1
            if i == run.per_epoch - 1 or run.step == run.total:
                synchronize(run.device)  # the steps' time, not only their launch
                run.seconds += time.perf_counter() - tick
                run.record()
                bar.update(run.step - bar.n)
                bar.set_postfix(train=f"{run.history.train_neg_elbo[-1]:.2f}", test=f"{run.history.test_neg_elbo[-1]:.2f}")
                if on_record is not None:
                    on_record(run.state())
                tick = time.perf_counter()
            if interrupted.is_set() and run.step < run.total:
                run.seconds += time.perf_counter() - tick
                bar.close()
                raise TrainingInterrupted(run.step, run.total, run.state())
    bar.close()
    return run.history


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on an accelerator (CUDA, MPS, XPU); nothing to wait for on the CPU."""
    if device.type == "cpu":
        return
    module = getattr(torch, device.type, None)
    if module is not None and hasattr(module, "synchronize"):
        module.synchronize()


@contextlib.contextmanager
def deferred_interrupt():
    """While inside, the first Ctrl-C (SIGINT) only sets the yielded event, so the loop can stop between two
    steps with a consistent state; a second Ctrl-C interrupts at once. Outside the main thread, nothing changes."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        event.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, handler)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


def check_finite(losses: torch.Tensor, first_step: int, per_epoch: int) -> None:
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        step = first_step + int(bad[0]) + 1
        raise TrainingDiverged(
            f"training diverged: the loss became {losses[int(bad[0])].item()} at step {step} "
            f"(epoch {math.ceil(step / per_epoch)}). Lower the learning rate (--lr) and train again; "
            f"the model was not saved.")


@torch.no_grad()
def per_image_elbo(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000,
                   seed: int = EVAL_SEED) -> torch.Tensor:
    """The one-sample ELBO of every image in x, with a fixed seed. Shapes: (N, D) -> (N,)."""
    return per_image_terms(model, x, batch_size, seed).elbo


@torch.no_grad()
def per_image_terms(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000, seed: int = EVAL_SEED):
    """elbo_terms of every image in x (elbo, log_px_z, kl), one sample of z each from a fixed seed.

    z is still sampled at evaluation: the ELBO is an expectation over q(z|x), and decoding the mean alone
    would score another quantity (notebook 4). Shapes: (N, D) -> ELBO of three (N,) tensors.
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=x.device).manual_seed(seed)
    parts = [elbo_terms(model, x[i:i + batch_size], generator) for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return type(parts[0])(*(torch.cat(t) for t in zip(*parts)))


def evaluate(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000) -> float:
    """Mean negative ELBO over every image of x, in nats (same value at every call)."""
    return -per_image_elbo(model, x, batch_size).mean().item()


def evaluate_terms(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """Mean negative ELBO and mean KL over every image of x, in nats (same values at every call)."""
    terms = per_image_terms(model, x, batch_size)
    return -terms.elbo.mean().item(), terms.kl.mean().item()


@torch.no_grad()
def per_image_iwae(model: torch.nn.Module, x: torch.Tensor, k: int, batch_size: int = 100,
                   seed: int = EVAL_SEED, progress: bool = False, return_se: bool = False):
    """Importance-weighted estimate of log p(x) for every image, K samples each. (N, D) -> (N,)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=x.device).manual_seed(seed)
    parts = [iwae_bound(model, x[i:i + batch_size], k, generator=generator, return_se=True)
             for i in tqdm(range(0, len(x), batch_size), desc=f"IWAE K={k}", disable=not progress)]
    model.train(was_training)
    estimate, se = (torch.cat(p) for p in zip(*parts))
    return (estimate, se) if return_se else estimate


def save_course_model(model: torch.nn.Module, histories: dict[str, History], **extra) -> "os.PathLike":
    """Notebook 4's hand-over to notebooks 5 to 7: model.pt (save_checkpoint, with `extra`) and
    history.json ({name: History}, the course model's under "course") in course_run_dir(); returns that folder."""
    run = course_run_dir()
    run.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run / "model.pt", model, **extra)  # CPU copies of the weights; the model stays put
    (run / "history.json").write_text(json.dumps({name: asdict(h) for name, h in histories.items()}))
    return run


def course_model(data: MNISTData, fallback_steps: int) -> tuple[torch.nn.Module, History]:
    """The model notebook 4 saved, with its training history; when notebook 4 has not been run, or
    ran on other data (the offline sample, say, while this notebook has full MNIST), says so and
    trains one here for `fallback_steps` steps with the course defaults (the saved one is kept)."""
    run = course_run_dir()
    if (run / "model.pt").exists():
        saved = read_checkpoint(run / "model.pt")
        saved_on = saved.get("data_source")
        if saved_on in (None, data.source):
            model = load_checkpoint(run / "model.pt", saved=saved).eval()
            try:
                history = History(**json.loads((run / "history.json").read_text())["course"])
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise CheckpointError(f"runs/{run.name}/history.json is missing or damaged ({type(err).__name__}: "
                                      f"{err}): run notebook 4 again to recreate it") from err
            print(f"loaded the model notebook 4 saved in runs/{run.name}")
            return model, history
        why = (f"the model in runs/{run.name} was trained on {saved_on!r} data, not on the {data.source!r} "
               f"data this notebook has (run notebook 4 again to replace it)")
    else:
        why = f"no model in runs/{run.name}: notebook 4 has not been run"
    print(f"{why}, so a small one is trained here ({fallback_steps} steps)")
    cfg = TrainConfig(steps=fallback_steps)
    seed_everything(cfg.seed)
    model = VAE(cfg.model)
    history = train(model, data, cfg)
    return model.eval(), history
