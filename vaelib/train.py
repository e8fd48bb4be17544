"""One training loop for every model and objective, with optional tqdm progress bars.

A step maximises TrainConfig.objective's bound (vaelib.registry.OBJECTIVES: the one-sample ELBO, its KL
weighted by beta, or the K-sample IWAE bound) on what the model's kind (vaelib.registry.KINDS) hands it: a
dynamically binarised batch for the VAE; a labelled kind may add a stream of labelled batches. Per-step
losses stay on the device until the end of the epoch, so the device never waits for the host; a loss that
is not finite stops training at its step. Fused optimiser kernels and batches binarised into reused buffers
make the step fast (benchmarks/README.md).

A run can stop and go on: after every epoch `on_record` receives the whole training state, and Ctrl-C stops
the loop after the current step with a `TrainingInterrupted` carrying it; `train(..., resume=state)` ends
with the weights an uninterrupted run would have (tests/test_train.py).
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

from . import registry
from .config import TrainConfig, course_run_dir, seed_everything, without_later_defaults
from .data import MNISTData
from .elbo import elbo_terms, iwae_dreg_terms, iwae_terms
from .evaluate import evaluate_terms
from .model import CheckpointError, build_model, load_checkpoint, read_checkpoint, save_checkpoint


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
    train_neg_elbo: list[float] = field(default_factory=list)  # mean since the last record; -IWAE_K with objective iwae
    train_kl: list[float] = field(default_factory=list)  # its KL term (the rate); -ELBO - KL is the distortion
    test_neg_elbo: list[float] = field(default_factory=list)  # the whole test set, nats per image
    test_kl: list[float] = field(default_factory=list)
    train_seconds: float = 0.0  # wall time of the optimiser steps alone, evaluation excluded
    train_images: int = 0  # images the steps trained on, B per step: for M2 the unlabelled ones only (vaelib.m2)
    metrics: dict = field(default_factory=dict)  # {name: one value per record}: the model kind's own (Kind.record)

    def record(self, **values):
        for key, value in values.items():
            getattr(self, key).append(value)

    def asdict(self) -> dict:
        """The history as written to history.json, metrics.json and train_state.pt: dataclasses.asdict, less
        `metrics` when it is empty, so that a plain VAE's files read exactly as before the key existed. History(**d)
        reads files with or without it."""
        written = asdict(self)
        if not written["metrics"]:
            del written["metrics"]
        return written


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


class Batches:
    """Dynamically binarised minibatches of `images`, drawn without replacement, in reused buffers.

    Pixel x_d = 1 when u_d < grey level, u_d ~ U[0, 1): the draw torch.bernoulli makes (bit for bit
    on the CPU, with the same generator), but writing into the same three (B, D) buffers each step.
    """

    def __init__(self, images: torch.Tensor, batch_size: int, generator: torch.Generator):
        self.images, self.B, self.generator = images, batch_size, generator
        self.grey, self.uniform, self.x = (images.new_empty(batch_size, images.shape[1]) for _ in range(3))
        self.order: torch.Tensor | None = None  # the current epoch's order (shuffle), part of the training state

    def __len__(self) -> int:
        """Images in an epoch."""
        return len(self.images)

    def shuffle(self) -> None:
        self.order = torch.randperm(len(self.images), generator=self.generator, device=self.images.device)

    def __call__(self, i: int) -> torch.Tensor:
        """The i-th batch of the current order, binarised afresh. Shape: (B, D)."""
        torch.index_select(self.images, 0, self.order[i * self.B:(i + 1) * self.B], out=self.grey)
        torch.rand(self.grey.shape, generator=self.generator, out=self.uniform)
        return torch.lt(self.uniform, self.grey, out=self.x)


def make_batches(data: MNISTData, cfg: TrainConfig, generator: torch.Generator):
    """The batches a step of cfg's model kind reads: its own (vaelib.registry.Kind.batches), else Batches of
    data.train_x. A setting that does not fit the data (a batch or a label count too large) raises ValueError."""
    own = registry.KINDS[cfg.model.kind].batches
    batches = own(data, cfg, generator) if own else Batches(data.train_x, cfg.batch_size, generator)
    steps_per_epoch(len(batches), cfg.batch_size)
    return batches


def elbo_objective(model, x: torch.Tensor, generator: torch.Generator, cfg: TrainConfig):
    """-ELBO with its KL weighted by cfg.beta, the batch mean; and (-ELBO, KL) of the batch, nats per image."""
    terms = elbo_terms(model, x, generator)
    loss = -(terms.log_px_z - cfg.beta * terms.kl).mean()
    return loss, torch.stack([-terms.elbo.mean(), terms.kl.mean()])


IWAE_GRADIENTS = {"plain": iwae_terms, "dreg": iwae_dreg_terms}  # TrainConfig.gradient (vaelib.elbo says which when)


def iwae_objective(model, x: torch.Tensor, generator: torch.Generator, cfg: TrainConfig):
    """-IWAE_K with K = cfg.iwae_train_k and the encoder gradient cfg.gradient; and (-IWAE_K, KL) of the batch."""
    terms = IWAE_GRADIENTS[cfg.gradient](model, x, cfg.iwae_train_k, generator)
    return -terms.iwae.mean(), torch.stack([-terms.iwae.mean(), terms.kl.mean()])


registry.OBJECTIVES.update(elbo=elbo_objective, iwae=iwae_objective)


def train_step(model, optimizer, batch, generator: torch.Generator, cfg: TrainConfig) -> torch.Tensor:
    """One optimiser step on a batch with cfg.objective's loss (or the model kind's own); returns (-bound, KL) of the
    batch in nats per image, left on the device."""
    objective = registry.KINDS[cfg.model.kind].loss or registry.OBJECTIVES[cfg.objective]
    loss, terms = objective(model, batch, generator, cfg)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return terms.detach()


def settings(config: dict) -> dict:
    """The settings that decide a run's numbers: all of TrainConfig but where it runs and whether it shows bars,
    less the fields added since models were committed while at their defaults (without_later_defaults)."""
    return without_later_defaults({key: value for key, value in config.items() if key not in ("device", "progress")})


class Run:
    """What a training run carries from step to step, and how to save and restore it."""

    def __init__(self, model, data: MNISTData, cfg: TrainConfig, optimizer, history: History | None):
        self.model, self.cfg, self.device = model, cfg, next(model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.data = data.to(self.device)
        self.batches, self.history = make_batches(self.data, cfg, self.generator), history or History()
        self.per_epoch = steps_per_epoch(len(self.batches), cfg.batch_size)
        self.total = cfg.steps or cfg.epochs * self.per_epoch
        self.optimizer = optimizer or make_optimizer(model, cfg.optimizer, cfg.lr)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, self.total, cfg.lr_schedule))
        self.terms = torch.zeros(self.total, 2, device=self.device)  # per step: -ELBO and KL, nats per image
        self.step, self.seconds = 0, 0.0  # steps done; training seconds since the last record

    def state(self) -> dict:
        """Everything `restore` needs, as tensors, numbers, lists and dicts (torch.load(weights_only=True))."""
        last = self.history.step[-1] if self.history.step else 0
        return {"format": "vaelib-train-state-1", "step": self.step, "total": self.total,
                "config": asdict(self.cfg), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "generator": self.generator.get_state(), "order": self.batches.order,
                "terms": self.terms[last:self.step].cpu(), "seconds": self.seconds, "history": self.history.asdict()}

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

    def advance(self) -> bool:
        """One optimiser step on the next batch (a new epoch shuffles first); True when it ends an epoch or the run."""
        i = self.step % self.per_epoch
        if i == 0:
            self.batches.shuffle()
        self.terms[self.step] = train_step(self.model, self.optimizer, self.batches(i), self.generator, self.cfg)
        self.schedule.step()
        self.step += 1
        return i == self.per_epoch - 1 or self.step == self.total

    def record(self) -> None:
        """Close the epoch (or the run): check the losses, evaluate on the test set, add a History row."""
        last = self.history.step[-1] if self.history.step else 0
        recent = self.terms[last:self.step]
        check_finite(recent[:, 0], last, self.per_epoch)  # synchronises with the device
        test_neg_elbo, test_kl = evaluate_terms(self.model, self.data.test_x)
        train_neg_elbo, train_kl = recent.mean(0).tolist()
        self.history.train_seconds += self.seconds
        self.history.train_images += (self.step - last) * self.cfg.batch_size
        self.history.record(epoch=self.step / self.per_epoch, step=self.step, train_neg_elbo=train_neg_elbo,
                            train_kl=train_kl, test_neg_elbo=test_neg_elbo, test_kl=test_kl)
        kind_metrics = registry.KINDS[self.cfg.model.kind].record
        for name, value in (kind_metrics(self.model, self.data, self.cfg) if kind_metrics else {}).items():
            self.history.metrics.setdefault(name, []).append(value)
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
    with bar, deferred_interrupt() as interrupted:
        tick = time.perf_counter()
        while run.step < run.total:
            if run.advance():
                synchronize(run.device)  # the steps' time, not only their launch
                run.seconds += time.perf_counter() - tick
                close_epoch(run, bar, on_record)
                tick = time.perf_counter()
            if interrupted.is_set() and run.step < run.total:
                run.seconds += time.perf_counter() - tick
                raise TrainingInterrupted(run.step, run.total, run.state())
    return run.history


def close_epoch(run: Run, bar, on_record) -> None:
    """Record the epoch (or the run's end), show it, and hand the training state to on_record."""
    run.record()
    bar.update(run.step - bar.n)
    bar.set_postfix(train=f"{run.history.train_neg_elbo[-1]:.2f}", test=f"{run.history.test_neg_elbo[-1]:.2f}")
    if on_record is not None:
        on_record(run.state())


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


def save_course_model(model: torch.nn.Module, histories: dict[str, History], **extra) -> "os.PathLike":
    """Notebook 4's hand-over to notebooks 5 to 7: model.pt (save_checkpoint, with `extra`) and
    history.json ({name: History}, the course model's under "course") in course_run_dir(); returns that folder."""
    run = course_run_dir()
    run.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run / "model.pt", model, **extra)  # CPU copies of the weights; the model stays put
    (run / "history.json").write_text(json.dumps({name: h.asdict() for name, h in histories.items()}))
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
    model = build_model(cfg.model)
    history = train(model, data, cfg)
    return model.eval(), history
