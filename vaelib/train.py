"""One training loop and one evaluation loop for the VAE, with optional tqdm progress bars.

Training maximises the mean one-sample ELBO of dynamically binarised minibatches. The loop
keeps every per-step loss on the device and looks at them only once per epoch, so the device
never waits for the host in between; a loss that is not finite stops training with the step at
which it happened.

The step is written for speed (benchmarks/README.md measures each choice): fused optimiser
kernels, batches binarised into reused buffers, the loss summed once with a hand-written
log-likelihood. Its math is elbo_terms', step for step, as tests/test_fast_path.py checks.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from .config import TrainConfig, course_run_dir, seed_everything
from .data import MNISTData
from .elbo import elbo_terms, iwae_bound, kl_standard_normal
from .model import VAE, load_checkpoint, save_checkpoint

EVAL_SEED = 1234  # the eps of the evaluation ELBO: fixed, so the test loss is the same every time


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step."""


@dataclass
class History:
    epoch: list[float] = field(default_factory=list)  # epochs completed at each record (fractional with --steps)
    step: list[int] = field(default_factory=list)
    train_neg_elbo: list[float] = field(default_factory=list)  # mean over the steps since the last record
    test_neg_elbo: list[float] = field(default_factory=list)
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
    return max(1, n_train // batch_size)  # full batches only: each step averages B images


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


def fast_loss(model: torch.nn.Module, x: torch.Tensor,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """The training loss -elbo.mean() of elbo_terms, in one reduction over the batch.

    (sum_bd -log p(x_bd|z_b) + sum_b KL_b) / B = -mean_b(log p(x_b|z_b) - KL_b), with the same
    draw of eps for the same generator; tests/test_fast_path.py checks loss and gradients.
    Shapes: (B, D) -> ().
    """
    logits, mu, logvar = model(x, generator=generator)
    return (NegLogLikelihood.apply(logits, x) + kl_standard_normal(mu, logvar).sum()) / x.shape[0]


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


def train_step(model, optimizer, x: torch.Tensor, generator: torch.Generator,
               loss_fn=fast_loss) -> torch.Tensor:
    """One optimiser step on batch x; returns the loss, left on the device."""
    loss = loss_fn(model, x, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train(model: torch.nn.Module, data: MNISTData, cfg: TrainConfig,
          optimizer: torch.optim.Optimizer | None = None, history: History | None = None) -> History:
    """Train `model` in place on data.train_x; evaluate on data.test_x after every epoch."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    train_x, test_x = data.train_x.to(device), data.test_x.to(device)
    N, B = len(train_x), cfg.batch_size
    per_epoch = steps_per_epoch(N, B)
    total = cfg.steps or cfg.epochs * per_epoch
    optimizer = optimizer or make_optimizer(model, cfg.optimizer, cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, cfg.lr_schedule))
    batches, history = Batches(train_x, B, generator), history or History()
    losses = torch.zeros(total, device=device)
    model.train()
    bar = tqdm(total=total, desc="training", unit="step", disable=not cfg.progress)
    started, last = time.perf_counter(), 0
    for step in range(total):
        i = step % per_epoch
        if i == 0:
            batches.shuffle()
        losses[step] = train_step(model, optimizer, batches(i), generator)
        schedule.step()
        if i == per_epoch - 1 or step == total - 1:
            recent = losses[last:step + 1]
            check_finite(recent, last, per_epoch)  # synchronises with the device
            history.train_seconds += time.perf_counter() - started
            history.train_images += (step + 1 - last) * B
            test = evaluate(model, test_x)
            history.record(epoch=(step + 1) / per_epoch, step=step + 1,
                           train_neg_elbo=recent.mean().item(), test_neg_elbo=test)
            bar.update(step + 1 - last)
            bar.set_postfix(train=f"{history.train_neg_elbo[-1]:.2f}", test=f"{test:.2f}")
            started, last = time.perf_counter(), step + 1
    bar.close()
    return history


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
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=x.device).manual_seed(seed)
    out = torch.cat([elbo_terms(model, x[i:i + batch_size], generator).elbo
                     for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def evaluate(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000) -> float:
    """Mean negative ELBO over every image of x, in nats (same value at every call)."""
    return -per_image_elbo(model, x, batch_size).mean().item()


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
    """Notebook 4's hand-over to notebooks 5 and 6: model.pt (save_checkpoint, with `extra`) and
    history.json ({optimiser name: History}) in course_run_dir(); returns that folder."""
    run = course_run_dir()
    run.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run / "model.pt", model.cpu(), **extra)
    (run / "history.json").write_text(json.dumps({name: asdict(h) for name, h in histories.items()}))
    return run


def course_model(data: MNISTData, fallback_steps: int) -> tuple[torch.nn.Module, History]:
    """The model notebook 4 saved, with its Adam training history; when notebook 4 has not been run,
    says so and trains one here for `fallback_steps` steps with the course defaults."""
    run = course_run_dir()
    if (run / "model.pt").exists():
        print(f"loaded the model notebook 4 saved in {run}")
        history = History(**json.loads((run / "history.json").read_text())["adam"])
        return load_checkpoint(run / "model.pt").eval(), history
    print(f"no model in {run}: notebook 4 has not been run, so a small one is trained here ({fallback_steps} steps)")
    cfg = TrainConfig(steps=fallback_steps)
    seed_everything(cfg.seed)
    model = VAE(cfg.model)
    history = train(model, data, cfg)
    return model.eval(), history
