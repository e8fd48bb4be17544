"""Settings, seeding and device choice for vaelib.

Everything a run depends on lives in two dataclasses, `ModelConfig` (the shape
of the network) and `TrainConfig` (how it is trained), so that a checkpoint can
store them and a notebook can print them. The smoke setting used by `make check`
is read here and nowhere else.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from . import registry


def option(default, help: str = "", *, choices=None, later: bool = False, flag: str | None = None,
           cli: bool = True, **argparse_extra):
    """A settings field that is also a command-line option (vaelib.__main__ derives its parser from these).
    choices: a tuple, or the name of a vaelib.registry table whose keys they are; later: added after trained models
    were committed, so left out of settings and checkpoints at its default (their keys stay the same, vaelib.runs);
    flag: the option's name when not --field-name; cli: False for fields that are not options.
    """
    factory = {"default_factory": default} if callable(default) else {"default": default}
    metadata = dict(help=help, choices=choices, later=later, flag=flag, cli=cli, argparse=argparse_extra)
    return field(**factory, metadata=metadata)


def allowed(spec) -> tuple:
    """The values an option's `choices` allows: the tuple itself, or the keys of a vaelib.registry table."""
    if isinstance(spec, str):
        return tuple(getattr(registry, spec.upper()))
    return tuple(spec)


def validate_choices(config) -> None:
    """Refuse a field whose value is not among its choices, naming them."""
    for f in fields(config):
        if f.metadata.get("choices") is None:
            continue
        values, value = allowed(f.metadata["choices"]), getattr(config, f.name)
        if value not in values:
            names = " or ".join(", ".join(map(repr, values)).rsplit(", ", 1))
            raise ValueError(f"{f.name} must be {names}, got {value!r}")


@dataclass
class ModelConfig:
    x_dim: int = option(784, "D: pixels of a 28 x 28 image", cli=False)
    hidden: tuple[int, ...] = option((256, 128), "encoder widths; the decoder mirrors them (Burda et al. 2016's "
                                     "784-200-200-50: --hidden 200 200 --z-dim 50 --activation tanh)",
                                     nargs="+", type=int, metavar="H")
    z_dim: int = option(2, "L, the latent dimensions (2 lets us draw the latent space)")
    activation: str = option("relu", "between the layers (Burda et al.'s model uses tanh)",
                             choices=("relu", "tanh", "elu"))
    posterior: str = option("gaussian", "q(z|x): the encoder's Gaussian, or that Gaussian followed by planar "
                            "flow layers", choices=("gaussian", "planar"), later=True)
    flow_layers: int = option(4, "planar layers, with --posterior planar", later=True, metavar="N")
    prior: str = option("normal", "p(z): N(0, I), a learned mixture of Gaussians (mog), or the VampPrior "
                        "(learned pseudo-inputs)", choices=("normal", "mog", "vamp"), later=True)
    prior_components: int = option(10, "C: Gaussians of the mog prior, pseudo-inputs of the vamp prior",
                                   later=True, metavar="C")
    arch: str = option("mlp", "the encoder's and decoder's network (vaelib.registry.NETWORKS): mlp, conv (both "
                       "convolutional, vaelib.conv), conv-mlp or mlp-conv (encoder first)", choices="networks",
                       later=True)
    channels: tuple[int, ...] = option((32, 64), "C1 C2: the convolutional network's channels (--arch conv)",
                                       later=True, nargs=2, type=int, metavar="C")
    kind: str = option("vae", "the kind of model (vaelib.registry.KINDS)", choices="kinds", later=True,
                       flag="--model")
    classifier_activation: str = option("same", "--model m2: between the classifier's layers; same: --activation "
                                        "(Stanford CS236's recipe: relu, with --activation elu)",
                                        choices=("same", "relu", "tanh", "elu"), later=True)

    def __post_init__(self):
        self.hidden = tuple(int(h) for h in self.hidden)
        self.channels = tuple(int(c) for c in (self.channels if isinstance(self.channels, (tuple, list))
                                               else (self.channels,)))
        if self.x_dim < 1 or self.z_dim < 1 or any(h < 1 for h in self.hidden + self.channels):
            raise ValueError(f"all sizes must be positive, got {self}")
        validate_choices(self)
        if self.flow_layers < 1 or self.prior_components < 1:
            raise ValueError(f"flow_layers and prior_components must be at least 1, got {self.flow_layers} "
                             f"and {self.prior_components}")
        if self.kind != "m2" and self.classifier_activation != "same":
            raise ValueError(f"classifier_activation sets the classifier of model 'm2', which model {self.kind!r} "
                             f"does not have: leave --classifier-activation out, or add --model m2")
        if self.classifier_activation == self.activation:  # the same network as "same": the same settings and key
            self.classifier_activation = "same"
        refuse = registry.KINDS[self.kind].refuse  # settings the model kind would ignore (vaelib.m2's, for one)
        if refuse is not None:
            refuse(self)
        self.refuse_unused_shapes()

    def refuse_unused_shapes(self) -> None:
        """channels shape only a convolutional half, hidden only an MLP half: a setting no half uses would still
        change the model's settings and key, so it is refused with what to do."""
        if len(self.channels) != 2:
            raise ValueError(f"channels takes two numbers, C1 and C2 (--channels 32 64), got {self.channels}")
        default = {f.name: f.default for f in fields(ModelConfig) if f.name in ("hidden", "channels")}
        if self.arch == "mlp" and self.channels != default["channels"]:
            raise ValueError("channels shape a convolutional network: use them with --arch conv, conv-mlp or "
                             "mlp-conv, or leave them out with --arch mlp")
        if self.arch == "conv" and self.hidden != default["hidden"]:
            raise ValueError("hidden sets an MLP's widths, and --arch conv has none: use --channels, or --arch "
                             "conv-mlp or mlp-conv for one MLP half")


@dataclass
class TrainConfig:
    data: str = option("auto", "auto: full MNIST if present or downloadable, else the offline sample "
                       "(vaelib.data)", choices=("auto", "mnist", "sample"))
    epochs: int = option(20, "passes over the training set (ignored when steps is set)")
    steps: int | None = option(None, "optimiser steps; overrides epochs when given", type=int)
    batch_size: int = option(100, "B, as in the original notebook")
    lr: float = option(1e-3, "Adam's usual step size; plain SGD wants about 5e-3 (default on the command line: "
                       "1e-3 for adam, 5e-3 for sgd)")
    optimizer: str = option("adam", "adam, or sgd (the original's hand-written descent)", choices=("adam", "sgd"))
    lr_schedule: str = option("decay", "decay: constant, then linear to 0 over the last quarter of the steps",
                              choices=("decay", "constant"))
    seed: int = option(0, "seeds the weights, the shuffling, the binarisation and eps")
    device: str | None = option(None, "cpu, cuda, cuda:1, mps ... (default: $VAELIB_DEVICE, else the "
                                "accelerator PyTorch reports, else cpu)")
    beta: float = option(1.0, "weight of the KL term in the loss; 1 is the ELBO (notebook 7 varies it)")
    iwae_k: int = option(1000, "importance samples for the final log p(x) estimate")
    progress: bool = option(lambda: progress_bars(), "tqdm bars unless VAELIB_PROGRESS=0", cli=False)
    model: ModelConfig = option(ModelConfig, cli=False)
    objective: str = option("elbo", "what training maximises: the ELBO, or the K-sample IWAE bound of Burda et "
                            "al. 2016 (vaelib.registry.OBJECTIVES)", choices="objectives", later=True)
    iwae_train_k: int = option(5, "K, importance samples per image of the iwae objective", later=True,
                               metavar="K")
    gradient: str = option("plain", "the iwae objective's encoder gradient: plain, or doubly reparametrised "
                           "(dreg: Tucker et al. 2019; better for large K, Gaussian posterior only)",
                           choices=("plain", "dreg"), later=True)
    labels: int | None = option(None, "labelled training images for --model m2, an equal number per class (100, "
                                "600, 1000, 3000), a seeded draw", later=True, type=int, metavar="N")
    alpha: float | None = option(None, "--model m2: weight of the classifier's cross-entropy on the labelled images "
                                 "(default 0.1 x unlabelled / labelled images; vaelib.m2)", later=True, type=float)
    validation_share: float = option(1 / 6, "--model m2: share of the training images held out to choose alpha "
                                     "and the budget on (1/6: 10,000 of full MNIST's 60,000)", later=True)
    labelled_bound: float = option(1.0, "--model m2: weight of the labelled bound -ELBO(x, y) beside alpha's "
                                   "cross-entropy in the labelled loss (vaelib.m2.labelled_loss); 0: the labels "
                                   "train the classifier alone, as in Stanford CS236's recipe (notebook 13 gives "
                                   "its other settings)", later=True, type=float, metavar="W")

    def __post_init__(self):
        if isinstance(self.model, dict):  # as saved in a checkpoint or metrics.json
            self.model = ModelConfig(**self.model)
        validate_choices(self)
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.beta < 0:
            raise ValueError("epochs, batch_size and lr must be positive, and beta not negative")
        if self.iwae_train_k < 1:
            raise ValueError(f"the iwae objective needs iwae_train_k at least 1, got {self.iwae_train_k}")
        self.refuse_mismatches()

    def refuse_mismatches(self) -> None:
        """Settings that do not go together, refused with what to do."""
        if self.objective == "iwae" and self.beta != 1:
            raise ValueError("beta weights the ELBO's KL term, which the IWAE bound does not have: "
                             "leave beta at 1 with objective 'iwae' (--objective iwae)")
        if self.objective != "iwae" and self.iwae_train_k != TrainConfig.iwae_train_k:
            raise ValueError("iwae_train_k sets the IWAE objective's samples per image: leave it out with objective "
                             f"{self.objective!r}, or pass objective='iwae' (--objective iwae)")
        if self.gradient == "dreg" and self.objective != "iwae":
            raise ValueError("gradient 'dreg' estimates the gradient of the IWAE bound: "
                             "use it with objective 'iwae' (--objective iwae)")
        self.refuse_label_mismatches()
        if self.gradient == "dreg" and self.model.posterior != "gaussian":
            raise ValueError("gradient 'dreg' needs log q(z|x) at a given z with q's parameters held fixed, which "
                             "a planar flow gives only by inverting it: use gradient 'plain' (--gradient plain) "
                             "with posterior 'planar'")

    def refuse_label_mismatches(self) -> None:
        """The semi-supervised settings go with model kind 'm2' and only with it."""
        m2, defaults = self.model.kind == "m2", TrainConfig.__dataclass_fields__
        if not m2 and (self.labels is not None or self.alpha is not None
                       or self.validation_share != defaults["validation_share"].default
                       or self.labelled_bound != defaults["labelled_bound"].default):
            raise ValueError("labels, alpha, validation_share and labelled_bound are settings of the "
                             "semi-supervised model: "
                             "add --model m2 (ModelConfig(kind='m2')), or leave them out")
        if not m2:
            return
        if self.labels is None:
            raise ValueError("model 'm2' learns from a few labelled images: say how many with --labels N "
                             "(TrainConfig(labels=N)), e.g. --labels 100")
        if self.labels < 10 or self.labels % 10:
            raise ValueError(f"labels must be a positive multiple of 10, an equal number of each digit, got "
                             f"{self.labels}: use e.g. --labels {max(10, self.labels // 10 * 10)}")
        if self.objective != "elbo" or self.beta != 1:
            raise ValueError("model 'm2' trains on its own bounds (vaelib.m2.m2_loss): leave --objective and "
                             "--beta at their defaults")
        if not 0 < self.validation_share < 1 or (self.alpha is not None and self.alpha < 0):
            raise ValueError(f"validation_share must lie in (0, 1) and alpha must not be negative, got "
                             f"{self.validation_share} and {self.alpha}")
        self.labelled_bound = float(self.labelled_bound)  # 0 and 0.0: one setting, one key
        if not 0 <= self.labelled_bound < math.inf:
            raise ValueError(f"labelled_bound weights the labelled bound in the loss and must be finite and not "
                             f"negative, got {self.labelled_bound}: use 1 (the default) or 0 (the labels train the "
                             f"classifier alone)")
        if self.labelled_bound == 0 and self.alpha == 0:
            raise ValueError("with labelled_bound 0 and alpha 0 the labels train nothing: give alpha a positive "
                             "weight (--alpha, e.g. 100 in CS236's recipe), or leave --labelled-bound at 1")


def without_later_defaults(config: dict) -> dict:
    """A TrainConfig or ModelConfig as a dict (dataclasses.asdict), less the `later` fields at their defaults,
    so that the settings, checkpoints and keys of models committed before those fields existed stay the same."""
    later = {f.name: f.default for c in (ModelConfig, TrainConfig) for f in fields(c) if f.metadata.get("later")}
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
        raise ValueError(f"device {asked!r} {source}, but this PyTorch cannot use {dev.type} here; {instead}")
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
