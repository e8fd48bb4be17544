"""The semi-supervised VAE "M2" of Kingma, Rezende, Mohamed & Welling (2014), "Semi-supervised learning with deep
generative models", registered as the model kind "m2" (`python -m vaelib train --model m2 --labels 100`).

Generative model: p(y) = 1/C uniform over the C = 10 digits, p(z) = N(0, I), p(x|y, z) Bernoulli with logits from
a decoder on [z, onehot(y)]. Inference model: a classifier q(y|x) = softmax(logits(x)) and an encoder
q(z|x, y) = N(mu, diag(exp(logvar))) on [x, onehot(y)]. The networks are the MLP's, built for the wider inputs
(the classifier may have its own activation); ModelConfig refuses, for kind m2, any other network, prior, posterior
or their settings (refuse_ignored_settings, through vaelib.registry.Kind.refuse).
Two bounds [Kingma et al. 2014, eqs. 6 and 7]:

    labelled     log p(x, y) >= E_q(z|x,y)[log p(x|y, z)] + log p(y) - KL(q(z|x, y) || p(z)) = ELBO(x, y) = -L(x, y)
    unlabelled   log p(x)    >= sum_y q(y|x) ELBO(x, y) + H(q(y|x)) = -U(x)

-U(x) is the ELBO of a VAE whose latent is the pair (y, z), q(y, z|x) = q(y|x) q(z|x, y); the sum over y is done
exactly, all C labels in one batched pass. The labelled bound does not train q(y|x), so the loss adds its
cross-entropy on the labelled images, weighted by alpha (`labelled_loss`, and TrainConfig.alpha says what we use).

Training (`Split`, `M2Batches`, `m2_loss`): a seeded, class-balanced draw of the labelled images from the training
set less a seeded validation split; every step takes a batch of the unlabelled images (every training image outside
the validation split, the labelled ones included with their labels hidden) and a batch of the labelled ones.
The run's images/s (metrics.json's train_images_per_second) counts the unlabelled images alone: not the labelled
batch, nor the C decoder passes per unlabelled image, so it does not compare with a VAE's.
"""

from __future__ import annotations

import math
import operator
import weakref
from dataclasses import replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import registry
from .config import ModelConfig, TrainConfig
from .data import TEST_BINARISATION_SEED, MNISTData, binarise
from .elbo import ELBO, bernoulli_log_likelihood, gaussian_draw, kl_standard_normal
from .evaluate import evaluating
from .exact import converged_log_px, decoded_log_px_z
from .model import require_2d
from .priors import StandardNormal
from .train import Batches

C = 10  # classes: the ten digits
SPLIT_SEED = 22_2014  # added to TrainConfig.seed: the split's draws are not the training stream's first numbers


class M2(nn.Module):
    """Classifier x -> logits of q(y|x); encoder [x, onehot(y)] -> (mu, logvar); decoder [z, onehot(y)] -> logits."""

    closed_form_kl = True

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig(kind="m2")
        if config.kind != "m2":
            raise ValueError(f"M2 is built from a ModelConfig of kind 'm2', got {config.kind!r}")
        network = registry.NETWORKS[config.arch]
        act = config.activation if config.classifier_activation == "same" else config.classifier_activation
        features, width = network.encoder(replace(config, activation=act))  # built in this order: the order
        # draws the initial weights
        self.classifier = nn.Sequential(features, nn.Linear(width, C))
        self.encoder, width = network.encoder(replace(config, x_dim=config.x_dim + C))
        self.mu_head = nn.Linear(width, config.z_dim)
        self.logvar_head = nn.Linear(width, config.z_dim)
        self.decoder = network.decoder(replace(config, z_dim=config.z_dim + C))
        self.prior = StandardNormal(config.z_dim)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of q(y|x) (softmax gives the probabilities). Shapes: (..., D) -> (..., C)."""
        return self.classifier(x)

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mu, logvar of q(z|x, y); y one-hot, x broadcast against it. Shapes: (..., D), (..., C) -> 2 x (..., L).
        The first layer's product [x, y] W^T is computed as x W_x^T + y W_y^T: x's part once per image, not once
        per label (the unlabelled loss asks for all C labels; benchmarks/bench_m2_step.py measures the gain). The
        same function; its roundoff differs from the concatenation's, which models trained before this change
        used. On MPS, the concatenation (a product with a slice of the weight is not trusted there)."""
        first = self.encoder[0] if isinstance(self.encoder, nn.Sequential) else None
        if isinstance(first, nn.Linear) and x.device.type != "mps":
            D = x.shape[-1]
            h = F.linear(x, first.weight[:, :D], first.bias) + F.linear(y, first.weight[:, D:])
            h = self.encoder[1:](h)
        else:
            h = self.encoder(concat(x, y))
        return self.mu_head(h), self.logvar_head(h)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Logits of p(x|y, z); y one-hot, broadcast against z. Shapes: (..., L), (..., C) -> (..., D)."""
        return self.decoder(concat(z, y))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixel probabilities for n draws y ~ p(y), z ~ p(z), both made on the generator's device (as
        StandardNormal.sample does: the same draws for a seed on every device). Shape: (n, D)."""
        device = next(self.parameters()).device
        drawn_on = generator.device if generator is not None else "cpu"
        y = torch.randint(C, (n,), generator=generator, device=drawn_on).to(device)
        z = self.prior.sample(n, generator).to(device)
        return torch.sigmoid(self.decode(z, F.one_hot(y, C).to(z.dtype)))


def concat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[a, b] along the last dimension, their leading dimensions broadcast.
    Shapes: (..., m), (..., n) -> (..., m + n)."""
    shape = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    return torch.cat([a.expand(*shape, a.shape[-1]), b.expand(*shape, b.shape[-1])], -1)


def one_hot(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Labels as one-hot rows in the dtype and device of `like`. Shapes: (...,) -> (..., C)."""
    return F.one_hot(y.to(like.device), C).to(like.dtype)


def all_labels(x: torch.Tensor) -> torch.Tensor:
    """Every label for every image, one-hot: y[c, b] = onehot(c). Shapes: (B, D) -> (C, B, C)."""
    return torch.eye(C, dtype=x.dtype, device=x.device)[:, None, :].expand(C, len(x), C)


def labelled_elbo(model: M2, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> ELBO:
    """ELBO(x, y) = log p(x|y, z) + log p(y) - KL(q(z|x, y) || N(0, I)), one reparametrised z ~ q(z|x, y) per row,
    the KL in closed form [Kingma et al. 2014, eq. 6]; `elbo` includes log p(y) = -log C, `kl` is the z part alone.
    y one-hot, with as many leading dimensions as needed (all C labels at once: `all_labels`).
    Shapes: x (B, D), y (..., B, C) -> three (..., B) tensors.
    """
    mu, logvar = model.encode(x, y)  # (..., B, L)
    z, _ = gaussian_draw(mu, logvar, generator=generator)
    log_px_z = bernoulli_log_likelihood(model.decode(z, y), x)
    kl = kl_standard_normal(mu, logvar)
    return ELBO(log_px_z - math.log(C) - kl, log_px_z, kl)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(q(y|x)) = -sum_y q(y|x) log q(y|x) in nats, from the classifier's logits. Shapes: (B, C) -> (B,)."""
    log_q = F.log_softmax(logits, -1)
    return -(log_q.exp() * log_q).sum(-1)


def unlabelled_terms(model: M2, x: torch.Tensor, generator: torch.Generator | None = None) -> ELBO:
    """-U(x) = sum_y q(y|x) ELBO(x, y) + H(q(y|x)) [Kingma et al. 2014, eq. 7], summed over the C labels exactly in
    one batched pass (one z per label and image), as the ELBO of the latent pair (y, z):
    log_px_z = sum_y q(y|x) log p(x|y, z_y), kl = sum_y q(y|x) KL(q(z|x, y) || p(z)) + KL(q(y|x) || p(y)), where
    KL(q(y|x) || p(y)) = log C - H(q(y|x)). Shapes: (B, D) -> three (B,) tensors.
    """
    logits = model.classify(x)
    q = F.softmax(logits, -1).T  # (C, B)
    terms = labelled_elbo(model, x, all_labels(x), generator)  # (C, B) each
    log_px_z = (q * terms.log_px_z).sum(0)
    kl = (q * terms.kl).sum(0) + math.log(C) - entropy(logits)
    return ELBO(log_px_z - kl, log_px_z, kl)


def unlabelled_loss(model: M2, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """U(x) = sum_y q(y|x) (-ELBO(x, y)) - H(q(y|x)), per image (unlabelled_terms). Shapes: (B, D) -> (B,)."""
    return -unlabelled_terms(model, x, generator).elbo


def labelled_loss(model: M2, x: torch.Tensor, y: torch.Tensor, alpha: float, generator: torch.Generator | None = None,
                  labelled_weight: float = 1.0) -> torch.Tensor:
    """-w ELBO(x, y) - alpha log q(y|x) per image, y the labels (integers), w = `labelled_weight`, the labelled
    bound's weight (TrainConfig.labelled_bound, 1 by default) [Kingma et al. 2014, eq. 9, weighted as below]. With w = 0
    (as in Stanford CS236's recipe) only the classifier's term is left: the labels train q(y|x) alone (the labelled
    images, their labels hidden, still train all three networks through U), and no z is drawn for them.

    What the paper trains on (Sec. 3.1.2, eq. 9), with N_l labelled and N_u unlabelled images:
        J^alpha = sum_l L(x, y) + sum_u U(x) + alpha_paper E_l[-log q(y|x)]
                = sum_l L(x, y) + sum_u U(x) + (alpha_paper / N_l) sum_l CE(x, y),    alpha_paper = 0.1 N.
    What we train on is NOT that objective rescaled. Each step takes the mean of U over an unlabelled batch plus the
    mean of this loss over a labelled batch (m2_loss); over an epoch of N_u / B steps that is, times B,
        sum_u U(x) + w (N_u / N_l) sum_l L(x, y) + alpha (N_u / N_l) sum_l CE(x, y)
    (in expectation: N_u / B steps, each drawing a labelled image with probability B_l / N_l and weighting it
    1 / B_l). Relative to eq. 9, the labelled bound L is weighted w N_u / N_l times as much: at w = 1, 500 times for
    100 labels and 50,000 unlabelled images (w = N_l / N_u would give eq. 9's weight). This is the common
    reimplementation: semi-supervised-pytorch pairs every unlabelled batch with a labelled one, takes both means and
    uses alpha = 0.1 N_u / N_l, as we do (with w = 1). (Pyro's ss-vae example differs: it visits each labelled batch
    once per epoch, so its L has eq. 9's weight, and it weights the classifier's term by its own aux_loss_multiplier.)
    alpha = TrainConfig.alpha, by default 0.1 N_u / N_l (resolve_alpha; 50 for 100 labels). At w = 1 it keeps
    the paper's ratio of CE to L per labelled image (0.1 N / N_l with N = N_u); the ratio of CE to U is N_u / N_l
    times the paper's, and in eq. 9's own terms our default is alpha_paper = 0.1 N_u^2 / N_l, with L up-weighted
    as above. It is a setting to choose on the validation split.
    Shapes: (B, D), (B,) -> (B,).
    """
    cross_entropy = F.cross_entropy(model.classify(x), y, reduction="none")
    if labelled_weight == 0:
        return alpha * cross_entropy
    return -labelled_weight * labelled_elbo(model, x, one_hot(y, x), generator).elbo + alpha * cross_entropy


def label_log_px_z(model: M2, label: int):
    """The function (x, z) -> log p(x|y, z) for one label y (an integer, 0 to C - 1), every image at every grid
    point, in the form vaelib.exact's quadrature takes (vaelib.exact.decoded_log_px_z).
    Shapes of the function: (N, D), (G, L) -> (N, G)."""
    try:
        index = operator.index(label)  # ints, NumPy's and 0-d integer tensors; not floats
    except TypeError:
        index = None
    if index is None or isinstance(label, bool) or not 0 <= index < C:
        raise ValueError(f"label must be an integer from 0 to {C - 1}, got {label!r}")
    y = torch.tensor(index)
    return decoded_log_px_z(lambda z: model.decode(z, one_hot(y, z)))


@torch.no_grad()
def exact_log_px_given_y(model: M2, x: torch.Tensor, **options) -> tuple[torch.Tensor, list[dict]]:
    """log p(x|y) = log int p(x|y, z) p(z) dz for every label y, by vaelib.exact.converged_log_px (its `options`),
    for a model with a 2-D z. Then log p(x) = logsumexp_y log p(x|y) - log C, and the model's own classifier is
    Bayes' rule, p(y|x) = softmax_y log p(x|y) (p(y) uniform). Returns (C, N) and the quadrature's ten reports.
    Shapes: (N, D) -> (C, N), list of C dicts."""
    require_2d(model, "the exact log p(x|y) by quadrature")
    runs = [converged_log_px(label_log_px_z(model, label), x, **options) for label in range(C)]
    return torch.stack([log_px for log_px, _, _ in runs]), [report for _, _, report in runs]


class M2Batch(NamedTuple):
    """What a training step of M2 reads."""
    x: torch.Tensor  # (B, D) unlabelled images, binarised
    x_labelled: torch.Tensor  # (B_l, D) labelled images, binarised
    y: torch.Tensor  # (B_l,) their labels
    alpha: float  # the cross-entropy's weight (resolve_alpha)
    labelled_weight: float = 1.0  # the labelled bound's weight w (TrainConfig.labelled_bound)


def m2_loss(model: M2, batch: M2Batch, generator: torch.Generator | None = None, cfg: TrainConfig | None = None):
    """mean U(x) over the unlabelled batch + mean (w L(x, y) - alpha log q(y|x)) over the labelled one, w the
    labelled bound's weight batch.labelled_weight (no labelled rows: that term is 0); and (mean U, mean KL) of the
    unlabelled batch, nats per image (vaelib.registry.Kind.loss)."""
    terms = unlabelled_terms(model, batch.x, generator)
    loss = -terms.elbo.mean()
    if len(batch.y):
        loss = loss + labelled_loss(model, batch.x_labelled, batch.y, batch.alpha, generator,
                                     batch.labelled_weight).mean()
    return loss, torch.stack([-terms.elbo.mean(), terms.kl.mean()]).detach()


@torch.no_grad()
def accuracy(model: M2, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """The share of images whose most probable class under q(y|x) is their label. Shapes: (N, D), (N,) -> float."""
    device = next(model.parameters()).device  # x is copied there in batches; the caller's tensors stay put
    with evaluating(model):
        right = sum((model.classify(xb.to(device)).argmax(-1).cpu() == yb.cpu()).sum().item()
                    for xb, yb in zip(x.split(batch_size), y.split(batch_size)))
    return right / len(x)


class Split(NamedTuple):
    """Positions in the training set: the held-out validation images, the labelled ones, the unlabelled ones."""
    validation: torch.Tensor  # (N_val,)
    labelled: torch.Tensor  # (labels,), labels / C of each class
    unlabelled: torch.Tensor  # (N_train - N_val,): every image outside the validation split


MIN_VALIDATION = 100  # images: fewer give a validation accuracy too coarse to choose alpha or the budget on


def split(train_y: torch.Tensor, labels: int, validation_share: float, seed: int) -> Split:
    """A seeded split of the training set: round(share N) validation images at random, then labels / C images of
    each class drawn at random from the rest; the unlabelled set is the whole rest. The same seed gives the same
    images. A share that holds out fewer than MIN_VALIDATION images is refused. Shapes: (N,) -> Split."""
    n_val = round(validation_share * len(train_y))
    if n_val < MIN_VALIDATION:
        share = math.ceil(MIN_VALIDATION / len(train_y) * 1000) / 1000
        raise ValueError(f"validation_share {validation_share:g} holds out {n_val} of the {len(train_y):,} training "
                         f"images; the validation accuracy needs at least {MIN_VALIDATION}: use --validation-share "
                         f"{share:g} or more (the default 1/6 holds out {round(len(train_y) / 6):,})")
    generator = torch.Generator().manual_seed(seed + SPLIT_SEED)
    y = train_y.cpu()
    order = torch.randperm(len(y), generator=generator)
    validation, rest = order[:n_val], order[n_val:]
    counts = torch.bincount(y[rest], minlength=C)
    if labels // C > counts.min():
        raise ValueError(f"{labels} labels need {labels // C} images of every digit outside the validation split, "
                         f"but digit {int(counts.argmin())} has only {int(counts.min())} of {len(rest):,} images "
                         f"there: use --labels {C * int(counts.min())} or fewer")
    shuffled = rest[torch.randperm(len(rest), generator=generator)]
    labelled = torch.cat([shuffled[y[shuffled] == c][:labels // C] for c in range(C)])
    return Split(validation.sort().values, labelled.sort().values, rest.sort().values)


def resolve_alpha(cfg: TrainConfig, parts: Split) -> float:
    """cfg.alpha, or by default 0.1 N_unlabelled / N_labelled (50 for 100 labels and 50,000 unlabelled images)."""
    return cfg.alpha if cfg.alpha is not None else 0.1 * len(parts.unlabelled) / len(parts.labelled)


class M2Batches(Batches):
    """Each step: a batch of the unlabelled images (an epoch is a pass over them) and a labelled batch of
    min(B, labels) images drawn afresh without replacement, both binarised afresh (vaelib.registry.Kind.batches)."""

    def __init__(self, data: MNISTData, cfg: TrainConfig, generator: torch.Generator):
        parts = split(data.train_y, cfg.labels, cfg.validation_share, cfg.seed)
        device = data.train_x.device
        super().__init__(data.train_x, cfg.batch_size, generator)  # drawn from self.unlabelled only: no copy
        self.unlabelled = parts.unlabelled.to(device)
        self.labelled = Batches(data.train_x[parts.labelled.to(device)], min(cfg.batch_size, cfg.labels), generator)
        self.labels, self.alpha = data.train_y[parts.labelled.to(device)], resolve_alpha(cfg, parts)
        self.labelled_weight = cfg.labelled_bound

    def __len__(self) -> int:
        return len(self.unlabelled)

    def shuffle(self) -> None:
        order = torch.randperm(len(self.unlabelled), generator=self.generator, device=self.unlabelled.device)
        self.order = self.unlabelled[order]

    def __call__(self, i: int) -> M2Batch:
        self.labelled.order = torch.randperm(len(self.labels), generator=self.generator,
                                             device=self.labels.device)[:self.labelled.B]
        return M2Batch(super().__call__(i), self.labelled(0), self.labels[self.labelled.order], self.alpha,
                       self.labelled_weight)


_validation: dict[int, tuple[weakref.ref, dict]] = {}  # id(train_x): (a weak reference to it, {settings: images})


def validation_images(data: MNISTData, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation split's images, binarised once with the test set's fixed seed, and their labels, on the CPU.
    Made once per training set and split settings (kept while data.train_x lives): only the validation images are
    copied from the device. Shapes: -> (N_val, D), (N_val,)."""
    images = id(data.train_x)
    held = _validation.get(images)
    if held is None or held[0]() is not data.train_x:  # dropped when train_x is freed
        held = _validation[images] = (weakref.ref(data.train_x, lambda _: _validation.pop(images, None)), {})
    made, settings = held[1], (cfg.labels, cfg.validation_share, cfg.seed)
    if settings not in made:
        where = split(data.train_y, cfg.labels, cfg.validation_share, cfg.seed).validation
        x = data.train_x[where.to(data.train_x.device)].cpu()
        y = data.train_y[where.to(data.train_y.device)].cpu()
        made[settings] = binarise(x, torch.Generator().manual_seed(TEST_BINARISATION_SEED)), y
    return made[settings]


def epoch_metrics(model: M2, data: MNISTData, cfg: TrainConfig) -> dict:
    """After every epoch: the accuracy of q(y|x) on the validation split, what alpha and the budget are chosen on."""
    return {"validation_accuracy": accuracy(model, *validation_images(data, cfg))}


def final_metrics(model: M2, data: MNISTData, cfg: TrainConfig) -> dict:
    """At the end of a run: the accuracy of q(y|x) on every test image and on the validation split, and the
    labelled, validation and unlabelled counts, alpha and the labelled bound's weight the run used."""
    parts = split(data.train_y, cfg.labels, cfg.validation_share, cfg.seed)
    return {"test_accuracy": accuracy(model, data.test_x, data.test_y), **epoch_metrics(model, data, cfg),
            "labels": len(parts.labelled), "n_validation": len(parts.validation),
            "n_unlabelled": len(parts.unlabelled), "alpha": resolve_alpha(cfg, parts),
            "labelled_bound": cfg.labelled_bound}


def figures(model: M2, data: MNISTData, history) -> dict:
    """The run's figures: its training curves, and images drawn from the model."""
    from . import plot

    return {"elbo_history": plot.plot_history(history), "prior_samples": plot.plot_prior_samples(model)}


def refuse_ignored_settings(config) -> None:
    """Model kind 'm2' (vaelib.m2) has the MLP networks, a Gaussian q(z|x, y) and p(z) = N(0, I), whatever
    else is asked for: a setting it would ignore is refused, so that its checkpoint and settings never name
    a prior, a posterior or a network it does not have."""
    defaults = type(config).__dataclass_fields__
    if config.arch != "mlp":  # the encoder and decoder take [x, onehot(y)] and [z, onehot(y)]: flat vectors
        raise ValueError(f"model 'm2' is built on the mlp network only, got arch {config.arch!r}: use --arch mlp "
                         f"(ModelConfig(arch='mlp')), or leave --arch out")
    if config.channels != defaults["channels"].default:
        raise ValueError("channels sets the convolutional network, which model 'm2' does not use (it is built on "
                         "the mlp network): leave --channels out")
    if config.posterior != "gaussian":
        raise ValueError(f"model 'm2' has a Gaussian q(z|x, y) with no flow, got posterior {config.posterior!r}: "
                         f"leave --posterior out (posterior 'gaussian')")
    if config.flow_layers != defaults["flow_layers"].default:
        raise ValueError("flow_layers sets the planar flow of --posterior planar, which model 'm2' does not have: "
                         "leave --flow-layers out")
    if config.prior != "normal":
        raise ValueError(f"model 'm2' has the prior p(z) = N(0, I), got prior {config.prior!r}: leave --prior out "
                         f"(prior 'normal')")
    if config.prior_components != defaults["prior_components"].default:
        raise ValueError("prior_components sets the mog and vamp priors, which model 'm2' does not have: "
                         "leave --prior-components out")


registry.KINDS["m2"] = registry.Kind(build=M2, refuse=refuse_ignored_settings, batches=M2Batches, loss=m2_loss,
                                     terms=unlabelled_terms, record=epoch_metrics, final=final_metrics,
                                     figures=figures, evaluates=False)


# Stanford CS236's SSVAE recipe (homework 2), as notebook 13 and benchmarks/m2_cs236_table.py train and load it
# (built once kind "m2" is registered): 300-300 networks, ELUs in the encoder and decoder, ReLUs in the classifier,
# z of 64; the labels train the classifier alone (no labelled bound), alpha 100; 90 passes, chosen to fit 30
# minutes on this project's 2 cores with the faster step (benchmarks/README.md gives each draw's time).
CS236 = ModelConfig(kind="m2", hidden=(300, 300), z_dim=64, activation="elu", classifier_activation="relu")
CS236_TRAINING = {"labels": 100, "alpha": 100.0, "labelled_bound": 0.0, "epochs": 90}
# The same recipe with alpha 300 instead of CS236's 100, chosen on held-out images of the training set (label draw
# 3's validation split, the weakest draw at alpha 100) from 30, 100, 300 and 1,000, where 300 and 1,000 tie and the
# smaller is taken: benchmarks/README.md, "A larger alpha, chosen on the validation split". Notebook 13 loads its
# five draws, trained on one thread beside another run; the times of draws retrained alone on 2 threads are in
# benchmarks/results/m2_cs236/alpha300_s*_2threads.log.
CS236_ALPHA300_TRAINING = {**CS236_TRAINING, "alpha": 300.0}
