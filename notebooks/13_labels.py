# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 13. Labels and conditions: the semi-supervised and the conditional VAE
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/13_labels.ipynb)
#
# What is a VAE *for*? One answer: learning from a few labels. Kingma, Rezende, Mohamed and Welling (2014) made
# the label a second latent variable, seen for a few images and inferred for the rest. We give their M2 100
# labelled images and 50,000 unlabelled ones. In brief:
#
# 1. **The unlabelled images teach the classifier.** M2's classifier beats the same network trained on the
#    100 labels alone, by 11 to 13 points in each of five label draws.
# 2. **Weighting the labels more reaches Pyro's accuracy.** Stanford CS236's recipe with $\alpha = 300$ averages
#    94.3 %, above Pyro's 93.2 %.
# 3. **Two pieces of the loss do that work:** the gradient through the label, which the sum over all ten gives,
#    and the classifier's own term.
# 4. **M2 generates digits to order.** Keep $z$ and change $y$: mostly, the style stays and the digit changes.
# 5. **In two dimensions the model is its own classifier.** Bayes' rule over ten exact integrals is right
#    slightly more often than the trained $q_\phi(y|x)$.
# 6. **A conditional VAE completes digits.** By Pyro's own measure, each of our three seeds scores lower than
#    Pyro's published run.
#
# You will write M2's unlabelled loss, an unbiased one-label estimate of it, and Bayes' rule over the labels.

# %%
# On Colab, install the course's library (vaelib) first; anywhere else this cell does nothing.
import importlib.util
import os
import subprocess
import sys

if "google.colab" in sys.modules and importlib.util.find_spec("vaelib") is None:
    # Colab has PyTorch, torchvision, matplotlib and tqdm already: --no-deps keeps its GPU build of PyTorch.
    source = os.environ.get("VAELIB_SOURCE", "git+https://github.com/OWNER/REPO")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", source], check=True)

# %%
import json
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from vaelib import cvae, m2
from vaelib.config import ModelConfig, pick_device, smoke
from vaelib.data import binarise, describe, load_full_mnist, load_mnist, load_sample
from vaelib.diagnostics import benchmark_results, timed_run
from vaelib.evidence import holds
from vaelib.exercises import check_class_posterior, check_one_draw_loss, check_unlabelled_loss
from vaelib.plot import image_grid
from vaelib.study import fit, over_seeds

SMOKE = smoke()
data = load_mnist("auto")
device = pick_device()  # $VAELIB_DEVICE, else the accelerator PyTorch reports (CUDA, MPS), else the CPU
C, LABELS, ALPHA = 10, 100, 5000.0
MAIN = ModelConfig(kind="m2", hidden=(500, 500), z_dim=50)  # the headline models: 30 passes, 31 to 50 minutes each
MAIN_BUDGET = dict(epochs=30) if not SMOKE else dict(steps=20)
MAIN_DRAWS = (0, 1, 2, 3, 4)
results = {name: json.loads(benchmark_results(name).read_text()) if benchmark_results(name).exists() else None
           for name in ("m2_sweep.json", "m2_exact_2d.json", "cvae_pyro.json")}
exact_run = results["m2_exact_2d.json"]
MISSING = ("the committed runs (benchmarks/results) are not in this installation: open this notebook from a clone "
           "of the repository or on Binder to see them")
print(describe(data))

# %% [markdown]
# ## The model: a label is a latent variable you sometimes see
#
# M2 draws a digit in three steps. Pick the label, $y \sim p(y)$, uniform over the ten digits. Pick the style,
# $z \sim \mathcal{N}(0, I)$. Then draw the pixels from a decoder that reads both, $p_\theta(x|y, z)$.
#
# For a labelled image, only $z$ is hidden. The ELBO is notebook 1's, with $y$ given to the encoder
# $q_\phi(z|x, y)$ and to the decoder:
#
# $$\log p_\theta(x, y) \ge \mathbb{E}_{q_\phi(z|x,y)}[\log p_\theta(x|y,z)] + \log p(y)
#   - \mathrm{KL}(q_\phi(z|x,y) \,\|\, p(z)) = \mathrm{ELBO}(x, y).$$
#
# For an unlabelled image, $y$ is hidden too. A classifier $q_\phi(y|x)$ guesses it, and the posterior is
# $q_\phi(y, z|x) = q_\phi(y|x)\, q_\phi(z|x,y)$. The ELBO of the pair is an expectation over $y$ first:
#
# $$\log p_\theta(x) \ge \mathbb{E}_{q_\phi(y|x)}\big[\mathrm{ELBO}(x, y) - \log q_\phi(y|x)\big]
#   = \sum_{y} q_\phi(y|x)\, \mathrm{ELBO}(x, y) + \mathcal{H}(q_\phi(y|x)) = -U(x).$$
#
# With ten labels the sum is exact.
#
# The labelled bound never uses $q_\phi(y|x)$, so the labels do not teach the classifier.
# Kingma et al. add its cross-entropy on the labelled images, weighted by $\alpha$:
#
# $$\text{loss} = \text{mean}_{\text{unlabelled}}\, U(x) + \text{mean}_{\text{labelled}}
#   \big[-\mathrm{ELBO}(x, y) - \alpha \log q_\phi(y|x)\big].$$
#
# Our $\alpha$ is not the paper's. Kingma et al. (eq. 9) sum the labelled terms once per pass. We pair every
# unlabelled batch with the 100 labelled images, as the semi-supervised-pytorch code does. So our $\alpha = 5000$
# weighs the cross-entropy 50,000 times more than eq. 9 against the unlabelled loss. With eq. 9's weighting, a
# smaller M2 ended at 29 % on held-out images. We chose $\alpha$ on held-out images (`benchmarks/m2_sweep.py`;
# one seed; 5,000 is the edge of the grid).
#
# Here is M2 in code. The label enters as a one-hot vector beside the image or code:

# %%
def mlp(sizes, relu_after_last):
    """Linear layers with a ReLU between them (and after the last one, for a network that feeds a head)."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if relu_after_last or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class PageM2(nn.Module):
    """q(y|x): classifier. q(z|x, y): encoder and two heads. p(x|y, z): decoder."""

    def __init__(self, hidden=(500, 500), z_dim=50, D=784):
        super().__init__()
        self.classifier = nn.Sequential(mlp([D, *hidden], True), nn.Linear(hidden[-1], C))
        self.encoder = mlp([D + C, *hidden], True)
        self.mu_head = nn.Linear(hidden[-1], z_dim)
        self.logvar_head = nn.Linear(hidden[-1], z_dim)
        self.decoder = mlp([z_dim + C, *reversed(hidden), D], False)


def beside(a, y):
    """[a, y] along the last axis, their leading axes broadcast: an image or a code with its one-hot label."""
    shape = torch.broadcast_shapes(a.shape[:-1], y.shape[:-1])
    return torch.cat([a.expand(*shape, a.shape[-1]), y.expand(*shape, C)], -1)


def labelled_elbo(model, x, y, eps):
    """ELBO(x, y) with one draw z = mu + sigma * eps. x (B, D); y one-hot (..., B, C); eps (..., B, L) -> (..., B)."""
    h = model.encoder(beside(x, y))
    mu, logvar = model.mu_head(h), model.logvar_head(h)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = model.decoder(beside(z, y))
    log_px_z = (x * logits - F.softplus(logits)).sum(-1)  # Bernoulli log-likelihood, as in notebook 1
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)  # KL(q(z|x, y) || N(0, I)), notebook 2's closed form
    return log_px_z + math.log(1 / C) - kl


EVERY_LABEL = torch.eye(C)[:, None, :]  # (C, 1, C): broadcast against a batch, every label for every image

# %% [markdown]
# Given the same weights and draws, the page's M2 and the library's compute the same ELBO:

# %%
torch.manual_seed(0)
library_m2 = m2.M2(MAIN)
page_m2 = PageM2()
page_m2.load_state_dict(dict(zip(page_m2.state_dict(), library_m2.state_dict().values())))  # the same order
pick = torch.randperm(len(data.test_x), generator=torch.Generator().manual_seed(0))[:8]
x_check = data.test_x[pick]
with torch.no_grad():
    eps = torch.randn(C, 8, 50, generator=torch.Generator().manual_seed(1))
    page_elbos = labelled_elbo(page_m2, x_check, EVERY_LABEL, eps)  # (C, 8)
    library_elbos = m2.labelled_elbo(library_m2, x_check, m2.all_labels(x_check), torch.Generator().manual_seed(1))
holds(torch.allclose(page_elbos, library_elbos.elbo, atol=1e-3),
      "the page's ELBO(x, y) is vaelib's, for every label of every image")

# %% [markdown]
# ## The unlabelled loss
#
# **Exercise 1.** Write $U(x) = \sum_y q_\phi(y|x)\,(-\mathrm{ELBO}(x, y)) - \mathcal{H}(q_\phi(y|x))$.
# You get the classifier's logits, shape $(B, 10)$, and every label's ELBO, shape $(10, B)$.

# %% tags=["solution"]
def unlabelled_loss(logits, elbos):
    """U(x) per image, (B,): logits (B, C) of q(y|x), elbos (C, B) the ELBO of each image under each label."""
    raise NotImplementedError(
        'Hint: softmax and log_softmax over the labels give q and log q; the entropy is'
        ' -sum q log q.'
    )


# %%
unlabelled_loss = check_unlabelled_loss(unlabelled_loss).use()

# %% [markdown]
# With your loss, the page's training loss for one step matches the library's, value and gradient:

# %%
def m2_loss(model, x, x_labelled, y, alpha, generator):
    """The loss of one step: mean U over the unlabelled batch, plus mean (-ELBO - alpha log q(y|x)) over the
    labelled one. The draws come from `generator` in the library's order: unlabelled first."""
    L = model.mu_head.out_features
    eps = torch.randn(C, len(x), L, generator=generator)
    eps_labelled = torch.randn(len(x_labelled), L, generator=generator)
    U = unlabelled_loss(model.classifier(x), labelled_elbo(model, x, EVERY_LABEL, eps))
    labelled = -labelled_elbo(model, x_labelled, F.one_hot(y, C).float(), eps_labelled)
    cross_entropy = F.cross_entropy(model.classifier(x_labelled), y, reduction="none")
    return U.mean() + (labelled + alpha * cross_entropy).mean()


parts = m2.split(data.train_y, LABELS, 1 / 6, seed=0)
x_unlabelled = binarise(data.train_x[parts.unlabelled[:100]], torch.Generator().manual_seed(2))
x_labelled = binarise(data.train_x[parts.labelled], torch.Generator().manual_seed(3))
y_labelled = data.train_y[parts.labelled]
page_loss = m2_loss(page_m2, x_unlabelled, x_labelled, y_labelled, ALPHA, torch.Generator().manual_seed(4))
batch = m2.M2Batch(x_unlabelled, x_labelled, y_labelled, ALPHA)
library_loss = m2.m2_loss(library_m2, batch, torch.Generator().manual_seed(4))[0]
page_grad = torch.autograd.grad(page_loss, list(page_m2.parameters()))
library_grad = torch.autograd.grad(library_loss, list(library_m2.parameters()))
print(f"loss of one step: page {page_loss.item():.2f}, vaelib {library_loss.item():.2f} (most of it alpha times "
      f"the untrained classifier's cross-entropy: {ALPHA:g} x log 10 = {ALPHA * math.log(C):,.0f})")
holds(torch.allclose(page_loss, library_loss, rtol=1e-4)
      and all(torch.allclose(a, b, rtol=1e-3, atol=1e-4) for a, b in zip(page_grad, library_grad)),
      "the page's M2 loss is vaelib's, value and gradient")

# %% [markdown]
# The library trains M2 on a seeded draw of ten labelled images per digit. Another 10,000 training images are
# held out to choose $\alpha$; the test images choose nothing. Seed $s$ draws the labels, the held-out images
# and the weights. The models come committed:

# %%
# From a terminal, draw 0:
#   python -m vaelib train --model m2 --labels 100 --hidden 500 500 --z-dim 50 --alpha 5000 --epochs 30 --seed 0
main_runs = [fit(data, MAIN, MAIN_BUDGET.get("steps"), device=device, labels=LABELS, alpha=ALPHA, seed=draw,
                 **{k: v for k, v in MAIN_BUDGET.items() if k != "steps"}) for draw in MAIN_DRAWS]
main_models = [model for model, _ in main_runs]
fig, ax = plt.subplots(figsize=(7.5, 3.2))
for draw, (_, history) in zip(MAIN_DRAWS, main_runs):
    ax.plot(history.epoch, history.metrics["validation_accuracy"], marker=".", label=str(draw))
ax.set_xlabel("passes over the unlabelled images")
ax.set_ylabel("accuracy, held-out images")
ax.set_title("Figure 1. M2's classifier while it trains")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), title="label draw")
fig.tight_layout()
plt.show()

# %% [markdown]
# **Accuracy dips sharply in every draw, and recovers.** It rose 1.7 to 3.5 points from pass 23 to 30, as the
# learning rate decayed.

# %% [markdown]
# ## What 100 labels buy
#
# Beside M2, we train its classifier network on the 100 labelled images alone. Each is scored on
# all 10,000 test images:

# %%
def labelled_only(hidden, draw, steps=1000):
    """M2's classifier network trained on the draw's 100 labelled images alone (Adam, binarised afresh each step)."""
    torch.manual_seed(draw)
    classifier = nn.Sequential(mlp([784, *hidden], True), nn.Linear(hidden[-1], C)).to(device)
    where = m2.split(data.train_y, LABELS, 1 / 6, seed=draw).labelled
    x, y = data.train_x[where], data.train_y[where].to(device)
    optimiser = torch.optim.Adam(classifier.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(draw)  # drawn on the CPU: the same images on every device
    for _ in range(20 if SMOKE else steps):
        loss = F.cross_entropy(classifier(binarise(x, generator).to(device)), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return classifier.eval()


@torch.no_grad()
def accuracy(classify, images=None):
    """The share of all 10,000 test images (binarised, or `images`) whose most probable label is theirs."""
    images = data.test_x if images is None else images
    right = sum((classify(x.to(device)).argmax(-1).cpu() == y).sum().item()
                for x, y in zip(images.split(1000), data.test_y.split(1000)))
    return right / len(images)


main_accuracy = torch.tensor([accuracy(model.classify) for model in main_models])
alone_accuracy = torch.tensor([accuracy(labelled_only(MAIN.hidden, draw)) for draw in MAIN_DRAWS])
for draw, a, b in zip(MAIN_DRAWS, main_accuracy, alone_accuracy):
    print(f"labels drawn with seed {draw}: M2 {a:.4f}, the same classifier on the 100 labels alone {b:.4f}")
print(f"mean ± standard deviation over the {len(MAIN_DRAWS)} draws: M2 {main_accuracy.mean():.4f} ± "
      f"{main_accuracy.std():.4f}, labels alone {alone_accuracy.mean():.4f} ± {alone_accuracy.std():.4f}")

# %% [markdown]
# **The unlabelled images teach the classifier.** M2 is right on 86 to 90 in every 100 test digits. The same
# network trained on the 100 labels alone is right on 74 to 78.
#
# **This M2 matches the paper's, not Pyro's.** Our mean over five draws, 88.0 %, is Kingma et al.'s (2014,
# Table 1) for M2, give or take their 1.7 points. Pyro's tutorial reports 93.2 %.

# %%
holds((main_accuracy > alone_accuracy + 0.10).all(),
      "M2's classifier beats the same network trained on the labels alone by more than 10 points, for every draw",
      full_only=True)
holds(abs(main_accuracy.mean() - 0.8803) < 0.0171,
      "our mean over the draws lies within Kingma et al.'s spread of their M2's 88.03 %", full_only=True)
holds(main_accuracy.max() < 0.932, "no draw reaches Pyro's 93.2 %", full_only=True)

# %% [markdown]
# ## Another recipe: Stanford CS236's
#
# CS236's homework 2 trains M2 differently. Its labels train only the classifier: no labelled ELBO, and
# $\alpha = 100$ (ours: 5,000). Its networks are smaller (300-300), with ELUs in the encoder and decoder;
# $z$ has 64 dimensions. We trained it for 90 passes (ours: 30). Pyro scores grey test images;
# we score both:

# %%
# From a terminal, draw 0 (benchmarks/README.md lists what differs from CS236's code):
#   python -m vaelib train --model m2 --labels 100 --hidden 300 300 --z-dim 64 --activation elu \
#       --classifier-activation relu --alpha 100 --labelled-bound 0 --epochs 90 --seed 0
cs236_runs = [fit(data, m2.CS236, 20 if SMOKE else None, device=device, seed=draw, **m2.CS236_TRAINING)
              for draw in MAIN_DRAWS]  # the smoke test: 20 steps instead of the epochs
grey_test_x = load_full_mnist(splits=("t10k",))[0] if data.source == "mnist" else load_sample()[2]  # same images
assert grey_test_x.shape == data.test_x.shape
cs236_accuracy = torch.tensor([accuracy(model.classify) for model, _ in cs236_runs])
cs236_grey = torch.tensor([accuracy(model.classify, grey_test_x) for model, _ in cs236_runs])
for draw, a, b, m, (_, history) in zip(MAIN_DRAWS, cs236_accuracy, cs236_grey, main_accuracy, cs236_runs):
    print(f"labels drawn with seed {draw}: {a:.4f} on binarised test images ({a - m:+.4f} against M2 above), "
          f"{b:.4f} on grey ones; {history.train_seconds / 60:.0f} minutes of training steps, recorded on 2 threads")
print(f"mean ± standard deviation over the {len(MAIN_DRAWS)} draws: {cs236_accuracy.mean():.4f} ± "
      f"{cs236_accuracy.std():.4f} binarised, {cs236_grey.mean():.4f} ± {cs236_grey.std():.4f} grey")
print("published, 100 labels: Kingma et al. (2014, Table 1) M2 0.8803 ± 0.0171, M1 + M2 0.9667 ± 0.0014; Pyro's "
      "tutorial 0.9319 ± 0.0060 (95 % interval, 5 draws, grey); CS236's autograder accepts 0.92 ± 0.035 (one label "
      "set, grey)")

# %% [markdown]
# **CS236's recipe beats our M2 on every draw, by 3 to 7 points.** Which change matters is untested.

# %%
gain = cs236_accuracy - main_accuracy
holds(((gain > 0.025) & (gain < 0.07)).all(), "on every label draw CS236's recipe beats our M2, by 3 to 7 points",
      full_only=True)

# %%
# Draws 3 and 4 score lowest for both recipes (the accuracies above). Count the test fives each model reads as threes.
@torch.no_grad()
def fives_as_threes(model):
    """The share of the test fives whose most probable label under q(y|x) is 3."""
    fives = data.test_x[data.test_y == 5]
    return (model.classify(fives.to(device)).argmax(-1) == 3).float().mean().item()


threes = torch.tensor([[fives_as_threes(model) for model in models]
                       for models in (main_models, [model for model, _ in cs236_runs])])
for draw, ours, theirs in zip(MAIN_DRAWS, *threes):
    print(f"labels drawn with seed {draw}: test fives read as threes, our M2 {ours:.1%}, CS236's recipe {theirs:.1%}")

# %% [markdown]
# **Both recipes have the same weak draws.** Draws 3 and 4 score lowest in each. Both read more test fives
# as threes there than on any other draw. Which of the seed's draws matters is untested.

# %%
weak, strong = [3, 4], [0, 1, 2]
for name, accuracies in (("our M2", main_accuracy), ("CS236's recipe", cs236_accuracy)):
    holds(accuracies[weak].max() < accuracies[strong].min(), f"draws 3 and 4 are the weakest for {name}",
          full_only=True)
holds((threes[:, weak].min(1).values > threes[:, strong].max(1).values).all(),
      "in each recipe, draws 3 and 4 read more test fives as threes than any other draw", full_only=True)

# %% [markdown]
# ## A larger $\alpha$ lifts the mean
#
# We had not chosen CS236's $\alpha = 100$. On draw 3's held-out images, 300 and 1,000 tie, 4 points above it; we
# take the smaller:

# %%
# Draw 3's accuracy on its held-out images after the last pass, for each alpha (alpha 100: the model above; the
# others: benchmarks/m2_sweep.py's runs, rows cs236_a*_s3). The test images play no part.
held_out = {100: (cs236_runs[3][1].metrics.get("validation_accuracy") or [float("nan")])[-1]}
if results["m2_sweep.json"]:
    sweep_rows = {row["name"]: row for row in results["m2_sweep.json"]["runs"]}
    held_out |= {alpha: sweep_rows[f"cs236_a{alpha}_s3"]["final_validation"] for alpha in (30, 300, 1000)}
    print(", ".join(f"alpha {alpha}: {held_out[alpha]:.4f}" for alpha in sorted(held_out)))
    last_ten = {alpha: sweep_rows[f"cs236_a{alpha}_s3"]["validation_per_epoch"][-10:] for alpha in (300, 1000)}
    print("range over the last ten passes: " + ", ".join(f"alpha {alpha} {min(v):.4f} to {max(v):.4f}"
                                                         for alpha, v in last_ten.items()))
    holds(min(held_out[300], held_out[1000]) > max(held_out[30], held_out[100]) + 0.035,
          "alpha 300 and 1,000 both score 4 points above 100 (and 30) on draw 3's held-out images", full_only=True)
    holds(min(last_ten[300]) <= max(last_ten[1000]) and min(last_ten[1000]) <= max(last_ten[300]),
          "alpha 300 and 1,000 tie: their ranges over the last ten passes overlap", full_only=True)
else:
    print(MISSING)

# %%
# From a terminal, draw 0: the command above with --alpha 300.
alpha300_runs = [fit(data, m2.CS236, 20 if SMOKE else None, device=device, seed=draw, **m2.CS236_ALPHA300_TRAINING)
                 for draw in MAIN_DRAWS]
alpha300_accuracy = torch.tensor([accuracy(model.classify) for model, _ in alpha300_runs])
alpha300_grey = torch.tensor([accuracy(model.classify, grey_test_x) for model, _ in alpha300_runs])
alpha300_threes = torch.tensor([fives_as_threes(model) for model, _ in alpha300_runs])
for draw, a, b, t, old, (_, history) in zip(MAIN_DRAWS, alpha300_accuracy, alpha300_grey, alpha300_threes,
                                            cs236_accuracy, alpha300_runs):
    print(f"labels drawn with seed {draw}: {a:.4f} on binarised test images ({a - old:+.4f} against alpha 100), "
          f"{b:.4f} on grey ones; test fives read as threes {t:.1%}; {history.train_seconds / 60:.0f} minutes of "
          f"training steps, recorded on one thread beside another run")
print(f"mean ± standard deviation over the {len(MAIN_DRAWS)} draws: {alpha300_accuracy.mean():.4f} ± "
      f"{alpha300_accuracy.std():.4f} binarised, {alpha300_grey.mean():.4f} ± {alpha300_grey.std():.4f} grey")

# %% [markdown]
# **Here $\alpha = 300$ lifts both weak draws.**
#
# **Its mean, 94.3 %, is above Pyro's 93.2 %,** and so is its 95 % interval.
#
# **A rerun can undo a lift.** Retrained on 2 cores, draw 3 kept its gain; draw 4 lost it. The mean stays above
# 93.2 %, but its 95 % interval no longer does. Each retrain took under 30 minutes.

# %%
lift = alpha300_accuracy - cs236_accuracy
holds((lift[weak] > 0.02).all(), "alpha 300 lifts draws 3 and 4 by over 2 points each (the models loaded here)",
      full_only=True)
holds((lift[[0, 2]].abs() < 0.005).all() and 0.005 < lift[1] < 0.015,
      "draws 0 and 2 move by under half a point; draw 1 gains between half a point and 1.5 points", full_only=True)
holds((alpha300_threes[weak] < threes[1, weak] / 2).all(),
      "on draws 3 and 4, alpha 300 reads under half as many test fives as threes as alpha 100", full_only=True)
T95 = 2.776  # Student's t, its 97.5 % quantile at 4 degrees of freedom: a 95 % interval from five draws
for name, values in (("binarised", alpha300_accuracy), ("grey", alpha300_grey)):
    half_width = T95 * values.std() / math.sqrt(len(MAIN_DRAWS))
    holds(values.mean() - half_width > 0.932, f"on {name} test images the mean's 95 % interval, "
          f"{values.mean():.4f} ± {half_width:.4f}, lies above 93.2 %", full_only=True)


# Draws retrained alone on 2 threads with `/usr/bin/time -v` (not the models above): their whole run's minutes,
# evaluation included, and the test accuracy the trainer printed (binarised, all 10,000 images)
logs = {draw: benchmark_results(f"m2_cs236/alpha300_s{draw}_2threads.log") for draw in MAIN_DRAWS}
retrained = {draw: timed_run(log.read_text()) for draw, log in logs.items() if log.exists()}
if {3, 4} <= retrained.keys():  # the committed logs of the weak draws' retrains
    for draw, run in retrained.items():
        print(f"label draw {draw} retrained: {run.wall_minutes:.1f} minutes, test accuracy {run.test_accuracy:.4f} "
              f"(committed run {alpha300_accuracy[draw]:.4f}, alpha 100 {cs236_accuracy[draw]:.4f})")
    mixed = alpha300_accuracy.clone()
    for draw, run in retrained.items():
        mixed[draw] = run.test_accuracy
    holds(retrained[3].test_accuracy > cs236_accuracy[3] + 0.03,
          "retrained, draw 3 keeps its gain over alpha 100 (over 3 points)", full_only=True)
    holds(abs(retrained[4].test_accuracy - cs236_accuracy[4]) < 0.01,
          "retrained, draw 4 loses its gain: within a point of alpha 100", full_only=True)
    half_width = T95 * mixed.std() / math.sqrt(len(MAIN_DRAWS))
    holds(mixed.mean() > 0.932 > mixed.mean() - half_width, f"with the retrained runs in place, the mean over the "
          f"five draws, {mixed.mean():.4f}, stays above 93.2 %, but its 95 % interval (± {half_width:.4f}) does not",
          full_only=True)
    holds(max(run.wall_minutes for run in retrained.values()) < 30,
          f"each of the {len(retrained)} draws retrained alone on 2 threads took under 30 minutes, evaluation included")
else:
    print(MISSING)

# %% [markdown]
# ## What fails, measured
#
# Each setting below was trained by `benchmarks/m2_sweep.py` for 8 passes, with a $256, 128$ network. The
# labels alone are trained here, on M2's five draws; the failures, on the first three.
#
# - **M2** with Kingma et al.'s loss, as above.
# - **One label drawn, naively**: $U(x)$ estimated with one $y \sim q_\phi(y|x)$ instead of the sum. Its value is
#   right on average, but the draw passes no gradient to the classifier (exercise 2 makes it unbiased).
# - **No $\alpha$ term**: the classifier learns from the unlabelled loss alone.

# %%
STUDY = {"M2": "study_m2", "one label drawn": "study_sampled", "no alpha term": "study_alpha0"}
DRAWS = {"M2": (0, 1, 2, 3, 4), "one label drawn": (0, 1, 2), "no alpha term": (0, 1, 2),
         "labels alone": (0, 1, 2, 3, 4)}
sweep = results["m2_sweep.json"]
if sweep:
    rows = {row["name"]: row for row in sweep["runs"]}
    study = {name: torch.tensor([rows[f"{prefix}_s{d}"]["test_accuracy"] for d in DRAWS[name]])
             for name, prefix in STUDY.items()}
    study["labels alone"] = torch.tensor([accuracy(labelled_only((256, 128), d)) for d in DRAWS["labels alone"]])
    for name, values in study.items():
        print(f"{name:16s} test accuracy {values.mean():.3f} ± {values.std():.3f} over {len(values)} draws: "
              + ", ".join(f"{v:.3f}" for v in values))
else:
    print(MISSING)

# %% [markdown]
# **A gradient through the label is what teaches the classifier.** The sum over labels gives it exactly. With one
# label drawn naively, the classifier's only gradient from the unlabelled images is the entropy's, which rewards
# spreading $q_\phi(y|x)$ over the labels. Each such run peaked on held-out images after one pass, and ends
# below the labels alone.
#
# **Without $\alpha$ the labels reach the classifier only through the decoder.** The labelled bound teaches the
# decoder what each label looks like. The unlabelled sum then rewards a classifier that agrees with it. That
# helps, but it scores about 20 points below M2.

# %%
if sweep:
    holds((study["M2"][:3] > study["one label drawn"]).all() and (study["M2"] > study["labels alone"]).all(),
          "at the short budget M2 beats one drawn label and the labels alone, draw by draw", full_only=True)
    holds(all(rows[f"study_{name}_s{d}"]["best_epoch"] == 1 for name in ("sampled", "alpha0") for d in (0, 1, 2)),
          "with one label drawn, and with no alpha term, every run was best on the validation images after its "
          "first pass")
    holds((study["one label drawn"] < study["labels alone"][:3]).all(),
          "with one label drawn the classifier does worse than on the labels alone, draw by draw", full_only=True)
    holds((study["no alpha term"] < study["M2"][:3] - 0.15).all(),
          "without the alpha term accuracy falls by more than 15 points, draw by draw")

# %% [markdown]
# ## One drawn label, unbiased
#
# **Exercise 2.** The naive one-label estimate gave the classifier only the entropy's gradient. Notebook 3's
# score function gives it the rest. Here $U(x) = \mathbb{E}_{q_\phi(y|x)}[f(y)]$ with
# $f(y) = -\mathrm{ELBO}(x, y) + \log q_\phi(y|x)$. Its gradient is
# $\mathbb{E}_{q_\phi}[\nabla f(y) + f(y)\, \nabla \log q_\phi(y|x)]$. For one label $y_s$ drawn per image, return
# a loss whose gradient is the term inside. You get the logits $(B, 10)$, $\mathrm{ELBO}(x, y_s)$ $(B,)$ and the
# labels $y_s$, integers $(B,)$.

# %% tags=["solution"]
def one_draw_loss(logits, elbo, y):
    """A surrogate for U(x) from one drawn label per image, (B,): only its gradient matters."""
    raise NotImplementedError(
        'Hint: for a weight c with its gradient stopped (c.detach()), c * log q(y|x) '
        'has the gradient c grad log q(y|x).'
    )


# %%
one_draw_loss = check_one_draw_loss(one_draw_loss).use()

# %% [markdown]
# We take the first check's untrained M2 and its eight test images. With ten labels, every
# average over $y_s$ is exact: weight each label's gradient by $q_\phi(y|x)$.

# %%
with torch.no_grad():
    start_logits = library_m2.classify(x_check).double()  # (8, C), nearly uniform before training
    start_elbos = library_elbos.elbo.double()  # (C, 8), from the first check
leaf = start_logits.clone().requires_grad_()
exact_grad = torch.autograd.grad(unlabelled_loss(leaf, start_elbos).sum(), leaf)[0]  # the sum over labels
naive_grad = torch.autograd.grad(-m2.entropy(leaf).sum(), leaf)[0]  # -ELBO(x, y_s) - H: the entropy's alone
q_start = start_logits.softmax(-1).T[:, :, None]  # (C, 8, 1)
f_start = -start_elbos + start_logits.log_softmax(-1).T  # f(y), (C, 8)
f_mean = (q_start[..., 0] * f_start).sum(0)  # a baseline: each image's average f, the same for every label


def by_label(baseline=0.0):
    """The surrogate's gradient when every image draws label c, for each c, (C, 8, C); with f shifted by the
    baseline (adding b to the ELBO gives f - b)."""
    grads = []
    for c in range(C):
        leaf = start_logits.clone().requires_grad_()
        y_c = torch.full((len(leaf),), c)
        grads.append(torch.autograd.grad(one_draw_loss(leaf, start_elbos[c] + baseline, y_c).sum(), leaf)[0])
    return torch.stack(grads)


def spread(grads):
    """One draw's spread around the average, per image: sqrt(E_y |grad(y) - E grad|^2), y ~ q(y|x)."""
    return (q_start * (grads - (q_start * grads).sum(0)) ** 2).sum((0, 2)).sqrt()


per_label, with_baseline = by_label(), by_label(f_mean)
mean_grad = (q_start * per_label).sum(0)
size = exact_grad.norm(dim=-1)
print(f"f(y) from {f_start.min():.0f} to {f_start.max():.0f} nats; the exact gradient's length "
      f"{size.min():.2f} to {size.max():.2f}")
print(f"score function: its average over y_s differs from the exact gradient by {(mean_grad - exact_grad).abs().max():.1e}")
print(f"naive estimate: misses {((naive_grad - exact_grad).norm(dim=-1) / size).min():.0%} of the exact gradient or more")
for name, grads in (("score function", per_label), ("with the baseline", with_baseline)):
    ratio = spread(grads) / size
    print(f"{name}: one draw spreads {ratio.min():,.1f} to {ratio.max():,.1f} times the gradient's length; draws for "
          f"a standard error that long: {ratio.min() ** 2:,.2g} or more")

# %%
holds(torch.allclose(mean_grad, exact_grad, atol=1e-8),
      "averaged over the drawn label, the score function's gradient is the exact one")
holds(((naive_grad - exact_grad).norm(dim=-1) > 0.9 * size).all(),
      "at the start of training the naive gradient misses more than 90 % of the exact one, for every image")
holds(torch.allclose((q_start * with_baseline).sum(0), exact_grad, atol=1e-8),
      "with the baseline the average is still the exact gradient")
holds((spread(per_label) > 100 * size).all() and (spread(with_baseline) < spread(per_label) / 50).all()
      and (spread(with_baseline) > size).all(),
      "one draw spreads over more than 100 times the gradient's length; the baseline cuts that more than 50-fold, "
      "but not below the length itself, for every image")

# %% [markdown]
# **The score function is unbiased but noisy; the naive estimate is biased.** At the start, the naive estimate's
# gradient is near zero. The score function's average is exact. But $f$ is about 545 nats for every label, so one
# draw strays over a thousand times the gradient's length. Our baseline, the average of $f$, removes most of that.
# The sum has no noise from $y$, for ten encoder and decoder passes.

# %% [markdown]
# ## Digits to order
#
# Decode one $z$ under each of the ten labels: the style should stay while the digit changes. Each row is one
# $z \sim \mathcal{N}(0, I)$:

# %%
model = main_models[0]
with torch.no_grad():
    z = torch.randn(6, 1, MAIN.z_dim, generator=torch.Generator().manual_seed(0)).to(device)
    labels = torch.eye(C, device=device)[None]  # (1, C, C): every label for every z
    drawn = torch.sigmoid(model.decode(z, labels)).reshape(-1, 784)  # (6 * C, D), row by row
fig, ax = plt.subplots(figsize=(8, 5))
ax.imshow(image_grid(drawn, rows=6).numpy(), cmap="gray_r", vmin=0, vmax=1)
ax.set_xticks([28 * c + 14 for c in range(C)], labels=range(C))
ax.set_yticks([])
ax.set_xlabel("label y given to the decoder")
ax.set_ylabel("one style z per row")
ax.set_title("Figure 2. One z, ten labels: p(x|y, z)'s pixel probabilities")
plt.show()

# %% [markdown]
# **The style mostly carries across labels.** Slant, stroke width and size stay along most rows. One style draws
# its 9 as a 4. Now encode test digits with their own labels, keep $z$ and change the label:

# %%
chosen = data.test_x[pick[:5]].to(device)
with torch.no_grad():
    own = F.one_hot(data.test_y[pick[:5]], C).float().to(device)
    mu, _ = model.encode(chosen, own)  # the mean of q(z|x, y) under the digit's own label
    redrawn = torch.sigmoid(model.decode(mu[:, None], labels)).reshape(-1, 784)
both = torch.cat([torch.cat([chosen[i:i + 1], redrawn[C * i:C * (i + 1)]]) for i in range(5)])
fig, ax = plt.subplots(figsize=(8.8, 4.6))
ax.imshow(image_grid(both, rows=5).numpy(), cmap="gray_r", vmin=0, vmax=1)
ax.set_xticks([14] + [28 * (c + 1) + 14 for c in range(C)], labels=["test digit", *range(C)])
ax.set_yticks([])
ax.set_xlabel("label y given to the decoder, with the test digit's own z")
ax.set_title("Figure 3. Five test digits re-drawn as every digit")
plt.show()

# %% [markdown]
# **A test digit's style mostly carries over too.** Each row keeps much of its left digit's boldness and slant.
# Some labels fail: three rows draw their 2 as an 8-like blob, and one its 4 as a 9.

# %% [markdown]
# ## In two dimensions, the model's own classifier
#
# Besides the trained $q_\phi(y|x)$, the model has a classifier of its own: Bayes' rule.
#
# $$p_\theta(y|x) = \frac{p(y)\, p_\theta(x|y)}{\sum_{y'} p(y')\, p_\theta(x|y')}, \qquad
#   p_\theta(x|y) = \int p_\theta(x|y, z)\, p(z)\, dz.$$
#
# With $z$ in two dimensions, notebook 6's quadrature computes each integral to 0.01 nats. Our 2-D M2 has the
# same loss and $\alpha$, the $256, 128$ network and 20 passes.
#
# **Exercise 3.** Write Bayes' rule over the labels. You get $\log p_\theta(x|y)$, shape $(10, N)$. Return
# $p_\theta(y|x)$, shape $(N, 10)$. The log-likelihoods are near $-100$ nats: mind the exponentials.

# %% tags=["solution"]
def class_posterior(log_px_given_y):
    """p(y|x) (N, C) from log p(x|y) (C, N), with the uniform p(y)."""
    raise NotImplementedError(
        'Hint: p(y) is the same for every label. Exponentiate only after subtracting '
        "each image's largest value."
    )


# %%
class_posterior = check_class_posterior(class_posterior).use()

# %% [markdown]
# The quadrature takes under a minute on 1,000 random test images. We check them against
# `benchmarks/m2_exact_2d.py`'s run on all 10,000.

# %%
TWO_D, TWO_D_EPOCHS, HALF_WIDTH = ModelConfig(kind="m2", z_dim=2), 20, 12.0  # as m2_exact_2d.json records
two_d = fit(data, TWO_D, 20 if SMOKE else None, device=device, labels=LABELS, alpha=ALPHA, seed=0,
            **({} if SMOKE else dict(epochs=TWO_D_EPOCHS)))[0]
few = torch.randperm(len(data.test_x), generator=torch.Generator().manual_seed(1))[:20 if SMOKE else 1000]
x_few, y_few = data.test_x[few].to(device), data.test_y[few]
log_px_given_y, reports = m2.exact_log_px_given_y(two_d, x_few, half_width=HALF_WIDTH)
bayes = class_posterior(log_px_given_y.cpu()).argmax(-1)
with torch.no_grad():
    amortised = two_d.classify(x_few).argmax(-1).cpu()
print(f"{len(few):,} test images: q(y|x) right on {(amortised == y_few).double().mean():.3f}, "
      f"Bayes' p(y|x) on {(bayes == y_few).double().mean():.3f}; they disagree on {(amortised != bayes).sum()}")

# %%
if exact_run and not SMOKE:  # a near tie may fall the other way on a GPU: 99.5 % of the labels must agree
    same = min((torch.tensor(exact_run["bayes_label"])[few] == bayes).double().mean(),
               (torch.tensor(exact_run["q_label"])[few] == amortised).double().mean())
    recorded = exact_run["settings"]
    holds(recorded["config"]["z_dim"] == TWO_D.z_dim and tuple(recorded["config"]["hidden"]) == tuple(TWO_D.hidden)
          and (recorded["epochs"], recorded["alpha"], recorded["seed"], recorded["labels"]) == (TWO_D_EPOCHS, ALPHA, 0, LABELS)
          and exact_run["quadrature"]["half_width"] == HALF_WIDTH,
          "the committed run recorded this model's z size, network, passes, alpha, seed, labels and half-width")
    holds(same >= 0.995 and all(report["converged"] for report in reports),
          "the quadrature converged, and both classifiers name the labels the committed run names for these images")
else:
    print(MISSING if not exact_run else "the smoke setting's model is not the committed one: nothing to compare")

# %% [markdown]
# The committed run, on all 10,000 test images:

# %%
if exact_run:
    print(f"q(y|x) right on {exact_run['accuracy_q']:.4f}, Bayes' p(y|x) on {exact_run['accuracy_bayes']:.4f}; they "
          f"disagree on {exact_run['n_disagree']}: q right on {exact_run['right_q_when_disagree']}, Bayes on "
          f"{exact_run['right_bayes_when_disagree']}, neither on "
          f"{exact_run['n_disagree'] - exact_run['right_q_when_disagree'] - exact_run['right_bayes_when_disagree']}")
    holds(exact_run["accuracy_bayes"] > exact_run["accuracy_q"]
          and exact_run["right_bayes_when_disagree"] > exact_run["right_q_when_disagree"],
          "on all 10,000 test digits Bayes' rule is right more often than q(y|x), and more often where they disagree")
else:
    print(MISSING)

# %% [markdown]
# **The model's own classifier is slightly better.** On all 10,000 test digits, Bayes' rule is right on 84.2 %
# and $q_\phi(y|x)$ on 83.0 %. Where they disagree, Bayes' rule is right on 395 and
# $q_\phi$ on 284; on 182 neither is. One trained model; twelve disagreements at random:

# %%
if exact_run and not SMOKE:
    disagree = torch.tensor(exact_run["disagree"])
    shown = disagree[torch.randperm(len(disagree), generator=torch.Generator().manual_seed(0))[:12]]
    fig, axes = plt.subplots(2, 6, figsize=(9, 4.2))
    for ax, i in zip(axes.flat, shown.tolist()):
        ax.imshow(data.test_x[i].reshape(28, 28).cpu(), cmap="gray_r")
        guesses = f"q {exact_run['q_label'][i]}, Bayes {exact_run['bayes_label'][i]}"
        ax.set_title(f"true {data.test_y[i].item()}\n{guesses}", fontsize=9)
        ax.axis("off")
    fig.suptitle("Figure 4. Test digits where q(y|x) and Bayes' p(y|x) disagree")
    plt.show()
else:
    print(MISSING if not exact_run else "the smoke setting's model is not the committed one: nothing to show")

# %% [markdown]
# ## Completing a digit: the conditional VAE
#
# Sohn et al. (2015) condition on part of the image instead. Given one to three quadrants of a digit, $x$, the
# model draws the rest, $y$. A network predicting each missing pixel must average over every digit the quadrants
# could start. The conditional VAE draws a code from a prior that reads $x$, then the pixels.
# Its bound is notebook 1's, conditioned on $x$ (here $y$ is the missing pixels, not a label):
#
# $$\log p_\theta(y|x) \ge \mathbb{E}_{q_\phi(z|x,y)}[\log p_\theta(y|z)]
#   - \mathrm{KL}(q_\phi(z|x,y) \,\|\, p_\theta(z|x)).$$
#
# As in Pyro's model, the pixels are drawn from $z$ alone; $x$ reaches them through the prior, which reads $x$
# with its missing part filled in by the baseline network's guess.
#
# `benchmarks/cvae_pyro.py` trains Pyro's baseline and CVAE for each number of quadrants, from three
# seeds; `benchmarks/cvae_protocol.md` lists every difference from Pyro's tutorial. The
# main ones: our pixels are binary, Pyro's grey; Pyro stopped training on the test set. Pyro's number is a
# 10-draw negative ELBO. We add $-\log p_\theta(y|x)$ itself, estimated by importance sampling with 1,000 draws.

# %% tags=["nbval-check-output"]
completion = results["cvae_pyro.json"]
if completion:
    runs = {}  # runs[quadrants given][training seed]
    for run in completion["runs"]:
        if run["seed"] in runs.setdefault(run["quadrants"], {}):
            raise ValueError(f"cvae_pyro.json holds two runs for {run['quadrants']} quadrants, seed {run['seed']}")
        runs[run["quadrants"]][run["seed"]] = run
    seeds = sorted(runs[min(runs)])
    if any(sorted(by_seed) != seeds for by_seed in runs.values()):
        raise ValueError("cvae_pyro.json must hold the same training seeds for every count of given quadrants")

    def mean_sd(q, key):
        """One cell of the table: the mean ± standard deviation over the seeds (vaelib.study.over_seeds)."""
        return "{:6.1f} ± {:.1f}".format(*over_seeds([runs[q][seed] for seed in seeds], key))

    print(f"nats per test image, all {completion['n_test']:,}; mean ± standard deviation over the training seeds "
          f"{seeds}")
    print(f"{'':28s}" + "".join(f"{f'{q} given':>28s}" for q in sorted(runs)))
    for label, key, pyro in (("baseline network", "baseline_pyro_table", "baseline"),
                             ("CVAE, Pyro's number", "cvae_pyro_table", "cvae"),
                             ("CVAE, -log p(y|x), K = 1000", "cvae_is_nll", None)):
        print(f"{label:28s}" + "".join(
            f"{mean_sd(q, key):>15s}" + (f" (Pyro {completion['pyro_reported'][pyro][str(q)]:5.1f})" if pyro
                                             else " " * 13) for q in sorted(runs)))
else:
    print(MISSING)

# %% [markdown]
# With one quadrant given, the committed CVAE and the baseline complete random test digits, one per column:

# %%
saved = benchmark_results("cvae_q1_seed0.pt")
if saved.exists():
    completer = cvae.load(saved).to(device)  # the bottom-left quadrant given
    chosen_ones = data.test_x[torch.randperm(len(data.test_x), generator=torch.Generator().manual_seed(2))[:8]]
    x_eight = chosen_ones.to(device)
    with torch.no_grad():
        given = completer.given(x_eight)
        averaged = torch.where(completer.missing, torch.sigmoid(completer.baseline(given)), x_eight)
        drawn = completer.complete(x_eight, 3, torch.Generator().manual_seed(0))  # (3, 8, D), z ~ p(z|x)
    rows = [torch.where(completer.missing, torch.full_like(x_eight, 0.15), x_eight), averaged, *drawn, x_eight]
    fig, ax = plt.subplots(figsize=(7, 5.6))
    ax.imshow(image_grid(torch.cat(rows), rows=len(rows)).numpy(), cmap="gray_r", vmin=0, vmax=1)
    ax.set_yticks([28 * r + 14 for r in range(len(rows))],
                  labels=["given", "baseline", "CVAE draw 1", "CVAE draw 2", "CVAE draw 3", "the test digit"])
    ax.set_xticks([])
    ax.set_title("Figure 5. Completing a digit from its bottom-left quadrant\n"
                 "(baseline and CVAE rows: pixel probabilities)")
    plt.show()
else:
    print(MISSING)

# %% [markdown]
# **The baseline averages; the CVAE chooses.** The baseline's completions are grey blurs wherever the quadrant
# leaves the digit open. Each CVAE draw commits to one digit. The draws can all commit
# to the wrong digit: a bottom-left quadrant says little.

# %% [markdown]
# **By Pyro's own number, our CVAE scores lower than Pyro's published one.** Every seed is lower, by 1.8 to 4.1
# nats; the CVAE's seeds differ by under a nat. Our baseline scores 3 to 7 nats above Pyro's; we have not found why.
#
# **Pyro's number is a bound; importance sampling puts $-\log p_\theta(y|x)$ a few nats lower.**
#
# **The CVAE gains most where most is missing.** With one quadrant given, it beats the baseline by about 44 nats.
# With three given, the lead is about 8.

# %%
if completion:
    for q in sorted(runs):
        print(f"{q} given: below Pyro's number by " + ", ".join(
            f"{completion['pyro_reported']['cvae'][str(q)] - runs[q][seed]['cvae_pyro_table']:.1f}" for seed in seeds)
              + f" nats (seeds {', '.join(map(str, seeds))})")
    holds(len(seeds) >= 3, "the CVAE's table comes from three or more training seeds", full_only=True)
    holds(all(runs[q][seed]["cvae_pyro_table"] < completion["pyro_reported"]["cvae"][str(q)]
              for q in runs for seed in seeds),
          "by Pyro's own number, every seed's CVAE scores lower than Pyro's published numbers for 1, 2 and 3 "
          "given quadrants")
    holds(all(runs[q][seed]["cvae_is_nll"] < runs[q][seed]["cvae_pyro_mean"] - 1 for q in runs for seed in seeds),
          "the importance-sampled -log p(y|x) lies more than a nat below Pyro's number, for each count and seed")
    gains = {seed: [runs[q][seed]["baseline_nll"] - runs[q][seed]["cvae_is_nll"] for q in sorted(runs)]
             for seed in seeds}
    holds(all(a > b > c > 0 for a, b, c in gains.values()),
          "for every seed, the CVAE's lead over the baseline shrinks as more quadrants are given")

# %% [markdown]
# ## Summary
#
# - M2 makes the label a latent variable, summed over for unlabelled images; $\alpha$ adds the labels'
#   cross-entropy.
# - With 100 labels, M2's classifier beats the same network on the labels alone. CS236's recipe beats it on every
#   draw; with $\alpha = 300$ it clears Pyro's.
# - One $z$ decodes as most digits. In 2-D, Bayes' rule over exact integrals is the model's own classifier.
# - The conditional VAE draws completions; a network averages.

# %% [markdown]
# ## Exercises
#
# 4. Show that exercise 2's gradient stays unbiased when the score term's $f(y)$ becomes $f(y) - b$, for any $b$
#    independent of $y$.
