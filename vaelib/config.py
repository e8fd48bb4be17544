"""Settings, seeding and device choice for vaelib.

Everything a run depends on lives in two dataclasses, `ModelConfig` (the shape
of the network) and `TrainConfig` (how it is trained), so that a checkpoint can
store them and a notebook can print them. The smoke setting used by `make check`
is read here and nowhere else.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field, fields

import torch


@dataclass
class ModelConfig:
    x_dim: int = 784  # D: pixels of a 28 x 28 image
    hidden: tuple[int, ...] = (256, 128)  # encoder widths; the decoder mirrors them
    z_dim: int = 2  # L: latent dimensions (2 lets us draw the latent space)
    activation: str = "relu"  # "relu" | "tanh" (Burda et al. 2016's 784-200-200-50 model uses tanh)
    posterior: str = "gaussian"  # q(z|x): "gaussian" | "planar" (that Gaussian, then planar flow layers)
    flow_layers: int = 4  # planar layers, with posterior="planar"
    prior: str = "normal"  # p(z): "normal" N(0, I) | "mog" a learned mixture of Gaussians | "vamp" the VampPrior
    prior_components: int = 10  # C: Gaussians of the "mog" prior, pseudo-inputs of the "vamp" prior

    def __post_init__(self):
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.x_dim < 1 or self.z_dim < 1 or any(h < 1 for h in self.hidden):
            raise ValueError(f"all sizes must be positive, got {self}")
        if self.activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' or 'tanh', got {self.activation!r}")
        if self.posterior not in ("gaussian", "planar"):
            raise ValueError(f"posterior must be 'gaussian' or 'planar', got {self.posterior!r}")
        if self.prior not in ("normal", "mog", "vamp"):
            raise ValueError(f"prior must be 'normal', 'mog' or 'vamp', got {self.prior!r}")
        if self.flow_layers < 1 or self.prior_components < 1:
            raise ValueError(f"flow_layers and prior_components must be at least 1, got {self.flow_layers} "
                             f"and {self.prior_components}")


@dataclass
class TrainConfig:
    data: str = "auto"  # "auto" | "mnist" | "sample" (see vaelib.data)
    epochs: int = 20  # passes over the training set (ignored when steps is set)
    steps: int | None = None  # optimiser steps; overrides epochs when given
    batch_size: int = 100  # B, as in the original notebook
    lr: float = 1e-3  # Adam's usual step size; plain SGD wants about 5e-3
    optimizer: str = "adam"  # "adam" | "sgd" (the original's hand-written descent)
    lr_schedule: str = "decay"  # "decay": constant, then linear to 0 over the last quarter | "constant"
    seed: int = 0  # seeds the weights, the shuffling, the binarisation and eps
    device: str | None = None  # None: $VAELIB_DEVICE, else the accelerator here (CUDA, MPS), else CPU
    beta: float = 1.0  # weight of the KL term in the loss; 1 is the ELBO (notebook 7 varies it)
    iwae_k: int = 1000  # importance samples for the final log p(x) estimate
    progress: bool = field(default_factory=lambda: progress_bars())  # tqdm bars unless VAELIB_PROGRESS=0
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: str = "elbo"  # what training maximises: "elbo" | "iwae", the K-sample bound of Burda et al. 2016
    iwae_train_k: int = 5  # K, importance samples per image of the "iwae" objective
    gradient: str = "plain"  # the "iwae" objective's encoder gradient: "plain" | "dreg" (vaelib.elbo says which when)

    def __post_init__(self):
        if isinstance(self.model, dict):  # as saved in a checkpoint or metrics.json
            self.model = ModelConfig(**self.model)
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.lr_schedule not in ("decay", "constant"):
            raise ValueError(f"lr_schedule must be 'decay' or 'constant', got {self.lr_schedule!r}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.beta < 0:
            raise ValueError("epochs, batch_size and lr must be positive, and beta not negative")
        if self.objective not in ("elbo", "iwae") or self.gradient not in ("plain", "dreg") or self.iwae_train_k < 1:
            raise ValueError(f"objective must be 'elbo' or 'iwae', gradient 'plain' or 'dreg', and iwae_train_k at "
                             f"least 1; got {self.objective!r}, {self.gradient!r} and {self.iwae_train_k}")
        if self.objective == "iwae" and self.beta != 1:
            raise ValueError("beta weights the ELBO's KL term, which the IWAE bound does not have: "
                             "leave beta at 1 with objective 'iwae' (--objective iwae)")
        if self.gradient == "dreg" and self.objective != "iwae":
            raise ValueError("gradient 'dreg' estimates the gradient of the IWAE bound: "
                             "use it with objective 'iwae' (--objective iwae)")
        if self.gradient == "dreg" and self.model.posterior != "gaussian":
            raise ValueError("gradient 'dreg' needs log q(z|x) at a given z with q's parameters held fixed, which "
                             "a planar flow gives only by inverting it: use gradient 'plain' (--gradient plain) "
                             "with posterior 'planar'")


# Fields added after trained models were committed and keyed by a hash of their settings (vaelib.runs):
# settings and checkpoints leave them out while they hold their defaults, so that every key stays the same.
LATER_FIELDS = ("posterior", "flow_layers", "prior", "prior_components", "objective", "iwae_train_k", "gradient")


def without_later_defaults(config: dict) -> dict:
    """A TrainConfig or ModelConfig as a dict (dataclasses.asdict), less the LATER_FIELDS at their defaults."""
    later = {f.name: f.default for c in (ModelConfig, TrainConfig) for f in fields(c) if f.name in LATER_FIELDS}
    kept = {key: value for key, value in config.items() if key not in later or value != later[key]}
    if isinstance(kept.get("model"), dict):
        kept["model"] = without_later_defaults(kept["model"])
    return kept


def smoke() -> bool:
    """True when VAELIB_SMOKE=1: notebooks then use tiny budgets (as `make check` does)."""
    return os.environ.get("VAELIB_SMOKE", "0") not in ("", "0", "false", "False")


def progress_bars() -> bool:
    """False when VAELIB_PROGRESS=0: `make notebooks` and `make check` set it, so that committed notebooks
    show a table of numbers instead of a progress bar frozen at its first state."""
    return os.environ.get("VAELIB_PROGRESS", "1") not in ("", "0", "false", "False")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python and torch; return a CPU generator for the explicit random draws."""
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def accelerator() -> torch.device | None:
    """The accelerator PyTorch reports here (CUDA, Apple's MPS, Intel's XPU, ...), or None.

    torch.accelerator (PyTorch >= 2.6) is PyTorch's own answer; older versions are asked about CUDA and MPS.
    """
    if hasattr(torch, "accelerator"):
        try:
            found = torch.accelerator.current_accelerator(check_available=True)
        except TypeError:  # PyTorch 2.6: no check_available yet
            found = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
        return None if found is None else torch.device(found.type)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    return torch.device("mps") if mps is not None and mps.is_available() else None


def device_available(device: torch.device) -> bool:
    """Whether this PyTorch can run on `device` here (the CPU always can)."""
    if device.type == "cpu":
        return True
    if device.type == "mps":
        return torch.backends.mps.is_available()
    module = getattr(torch, device.type, None)  # torch.cuda, torch.xpu, ...
    return bool(module is not None and hasattr(module, "is_available") and module.is_available())


def pick_device(device: str | None = None) -> torch.device:
    """Where to compute: `device` if given, else $VAELIB_DEVICE, else the accelerator PyTorch reports
    (`accelerator()`), else the CPU. A device asked for but missing here is refused with what to do."""
    asked = device or os.environ.get("VAELIB_DEVICE") or None
    if asked is None:
        return accelerator() or torch.device("cpu")
    source = "asked for" if device else "asked for by $VAELIB_DEVICE"
    try:
        dev = torch.device(asked)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"device {asked!r} {source} is not a device name PyTorch knows ({err}); "
                         f"use cpu, cuda, cuda:1 or mps") from err
    if not device_available(dev):
        here = accelerator()
        instead = f"use --device {here.type} (found here) or --device cpu" if here else "use --device cpu"
        raise ValueError(f"device {asked!r} {source}, but this PyTorch cannot use {dev.type} on this machine; {instead}")
    count = getattr(getattr(torch, dev.type, None), "device_count", None)
    if dev.index is not None and count is not None and dev.index >= count():
        raise ValueError(f"device {asked!r} {source}, but this machine has {count()} {dev.type} device(s), "
                         f"numbered from 0; use --device {dev.type}:0")
    return dev


def float64_device(device: torch.device) -> torch.device:
    """`device` where it computes in float64, else the CPU: Apple's MPS has no float64, and the course's
    exact and diagnostic sums need it. Tensors are copied there, never moved in place."""
    return torch.device("cpu") if device.type == "mps" else device


def runs_dir() -> "os.PathLike":
    """Where notebooks keep trained models: $VAELIB_RUNS, else runs/ in the source checkout,
    else ~/vaelib-runs (an installed, non-editable vaelib)."""
    from pathlib import Path

    if os.environ.get("VAELIB_RUNS"):
        return Path(os.environ["VAELIB_RUNS"])
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").exists():
        return checkout / "runs"
    return Path.home() / "vaelib-runs"


def course_run_dir() -> "os.PathLike":
    """Where notebook 4 saves the course model for notebooks 5 and 6: runs/course, or runs/course-smoke
    in the smoke setting, so that `make check` never replaces the model a student trained."""
    return runs_dir() / ("course-smoke" if smoke() else "course")
