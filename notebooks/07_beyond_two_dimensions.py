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
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 7. Beyond two dimensions
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/07_beyond_two_dimensions.ipynb)
#
# Every model so far had a two-dimensional latent space: notebook 5 could draw it and notebook 6 could
# integrate over it. VAEs in practice use more dimensions. Here we train the course architecture
# (784–256–128 with ReLU, Adam, as in notebook 4) with more latent dimensions and ask:
#
# 1. how the test log-likelihood and its two parts, the *distortion* and the *rate*, change with the
#    number of latent dimensions $L$;
# 2. how many of 50 dimensions the model actually uses (active units, posterior collapse);
# 3. what weighting the KL term by $\beta$ does, and why a loss averaged over pixels, as found in many VAE
#    scripts, trains with $\beta = 784$ without saying so;
# 4. what a fixed (static) binarisation of the training set costs against the dynamic one we have used;
# 5. where a model of the size Burda et al. (2016) used stands beside their published 86.76 nats.
#
# Along the way we convert nats per image into the bits per dimension that papers on images quote.

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
from dataclasses import asdict

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from vaelib.config import ModelConfig, TrainConfig, pick_device, seed_everything, smoke
from vaelib.data import MNISTData, binarise, describe, load_mnist
from vaelib.diagnostics import active_units, benchmark_results, bits_per_dim, encode_all, kl_per_dimension
from vaelib.elbo import bernoulli_log_likelihood, kl_standard_normal, log_normal
from vaelib.exercises import check_collapsed_dims
from vaelib.model import VAE, load_checkpoint, reparameterize
from vaelib.plot import image_grid
from vaelib.runs import trained
from vaelib.train import fast_loss, make_optimizer, per_image_iwae, per_image_terms, train
from vaelib.train import settings as train_settings

SMOKE = smoke()
data = load_mnist("auto")

# %% [markdown]
# Every model below trains for the same number of Adam steps of 100 images (except the 784-200-200-50
# model of section 5, loaded from a longer run, and exercise 4's warm-up), with the course defaults
# (learning rate $10^{-3}$, decayed to 0 over the last quarter of the steps; dynamic binarisation; seed 0).
# Each is scored on the test set: the ELBO and its two terms on every test image, and $\log p_\theta(x)$ by
# the importance-weighted bound $\mathrm{IWAE}_K$ on the first test images (notebook 6 showed how close
# it comes). The next cell prints the budget.

# %%
steps = 40 if SMOKE else 6000  # Adam steps per model
n_iwae, K = (100, 20) if SMOKE else (1000, 250)  # test images and importance samples for log p(x)
device = pick_device()  # $VAELIB_DEVICE, else the accelerator PyTorch reports (CUDA, MPS), else the CPU
test_x = data.test_x.to(device)
print(f"{describe(data)}; every model: {steps:,} steps of 100 images = "
      f"{steps * 100 / len(data.train_x):.1f} epochs")
print(f"log p(x): IWAE with K = {K} importance samples on the first {n_iwae:,} test images")

# %% [markdown]
# ## Nats and bits per dimension
#
# $-\log p_\theta(x)$ in nats is a sum over the 784 pixels of the image. Papers on images often divide it
# by the number of pixels and change the logarithm's base to 2:
#
# $$\text{bits/dim} = \frac{-\log p_\theta(x)}{784 \ln 2}.$$
#
# One bit per dimension is a coin flip per pixel. A decoder whose logits are all 0 gives every pixel the
# probability ½, so $-\log p_\theta(x\mid z) = 784 \ln 2$ nats for every image, exactly 1 bit per dimension:

# %% tags=["nbval-check-output"]
coin_flip = torch.zeros(1, 784)  # logits 0: probability 1/2 for every pixel
nats = -bernoulli_log_likelihood(coin_flip, data.test_x[:1]).item()
print(f"-log p(x|z) = {nats:.2f} nats = 784 ln 2 = {784 * math.log(2):.2f} nats = {bits_per_dim(nats):.4f} bits/dim")
print(f"Burda et al.'s 86.76 nats per image = {bits_per_dim(86.76):.4f} bits/dim")

# %% [markdown]
# ## 1. How many latent dimensions?
#
# We train five models that differ only in $L$: 2, 5, 10, 20 and 50. `fit` trains one model of a given
# shape with the course defaults and the budget above, from the same seed; `beta` weights the KL term
# (section 3). Each model is trained once: `trained` (from `vaelib.runs`) loads it when a model with
# exactly these settings was trained before, from the models committed with the course or from
# `runs/cache/`, and says which happened; a changed setting trains anew.

# %%
def fit(data, config, beta=1.0, binarisation="dynamic"):
    """A VAE of shape `config` trained on data.train_x for `steps` steps, its KL term weighted by beta."""
    cfg = TrainConfig(steps=steps, beta=beta, model=config)

    def train_now():
        seed_everything(cfg.seed)
        model = VAE(cfg.model).to(device)
        return model, train(model, data, cfg)

    settings = {**train_settings(asdict(cfg)), "data": data.source, "binarisation": binarisation}
    label = f"L = {config.z_dim}, beta = {beta:g}, {binarisation} binarisation"
    model, history, _ = trained(settings, train_now, label)
    return model.to(device).eval(), history


# %% [markdown]
# `score` measures a trained model: the means over the test images of the ELBO, of its two terms and of
# $\mathrm{IWAE}_K$, with the standard error of that last mean, and the number of active units (section 2).
# It keeps the per-image IWAE estimates too, to compare two models on the same images.

# %%
def score(model):
    """Test-set means in nats per image, the IWAE estimates of the first n_iwae images, and the active units."""
    terms = per_image_terms(model, test_x)  # one sample of z per image, fixed seed
    log_px = per_image_iwae(model, test_x[:n_iwae], K)  # (n_iwae,)
    return {"elbo": terms.elbo.mean().item(), "distortion": -terms.log_px_z.mean().item(),
            "rate": terms.kl.mean().item(), "log_px": log_px.mean().item(),
            "log_px_se": log_px.std().item() / math.sqrt(n_iwae), "log_px_each": log_px,
            "iwae_gain": (log_px - terms.elbo[:n_iwae]).mean().item(),
            "active": active_units(model, test_x).count, "L": model.config.z_dim}


# %% [markdown]
# Training the five models is the first long cell of this notebook:

# %%
latent_sizes = [2, 5, 10, 20, 50]
models, histories, scores = {}, {}, {}
for L in latent_sizes:
    models[L], histories[L] = fit(data, ModelConfig(z_dim=L))
    scores[L] = score(models[L])

# %% [markdown]
# The table gives, in nats per image, the negative ELBO, $-\log p_\theta(x)$ estimated by
# $-\mathrm{IWAE}_K$ with its standard error, the distortion $-\mathbb E_q[\log p_\theta(x\mid z)]$ and the
# rate $\mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z))$ (negative ELBO = distortion + rate); then the active
# units, and the two negative log-likelihoods again in bits per dimension.

# %%
def print_table(rows, name):
    """One line per model: nats per image, active units, then bits per dimension."""
    print(f"{name:>5s} {'-ELBO':>7s} {'-log p(x) ± se':>15s} {'distortion':>10s} {'rate':>6s} {'active':>7s}"
          f"   bits/dim: {'-ELBO':>6s} {'-log p(x)':>9s}")
    for key, s in rows.items():
        label = key if isinstance(key, str) else f"{key:g}"
        print(f"{label:>5s} {-s['elbo']:7.2f} {-s['log_px']:9.2f} ± {s['log_px_se']:3.1f} {s['distortion']:10.2f} "
              f"{s['rate']:6.2f} {s['active']:3d}/{s['L']:<3d}   {'':9s} {bits_per_dim(-s['elbo']):6.3f} "
              f"{bits_per_dim(-s['log_px']):9.3f}")


print_table(scores, "L")

# %% [markdown]
# The standard error is that of a mean over the test images, and much of it comes from the images
# themselves: some digits are harder than others. Two models scored on the *same* images share that part,
# so we compare neighbours in the table image by image, with the standard error of the mean difference:

# %%
for small, large in zip(latent_sizes, latent_sizes[1:]):
    diff = scores[large]["log_px_each"] - scores[small]["log_px_each"]  # (n_iwae,): the same test images
    print(f"L = {small:2d} -> {large:2d}: log p(x) {diff.mean():+6.2f} ± {diff.std() / math.sqrt(n_iwae):.2f} nats, "
          f"rate {scores[large]['rate'] - scores[small]['rate']:+6.2f}, "
          f"distortion {scores[large]['distortion'] - scores[small]['distortion']:+7.2f}")
gains = [s["iwae_gain"] for s in scores.values()]
print(f"IWAE_{K} minus the ELBO on the same images: {', '.join(f'{g:+.2f}' for g in gains)} nats "
      f"({'larger for every model' if min(gains) > 0 else 'not larger for every model here'})")

# %% [markdown]
# Figure 1 draws the table. The left panel has bits per dimension on its right-hand axis.

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
column = lambda key, sign=1: [sign * scores[L][key] for L in latent_sizes]  # noqa: E731
axes[0].plot(latent_sizes, column("elbo", -1), "o-", label="-ELBO (all test images)")
axes[0].errorbar(latent_sizes, column("log_px", -1), yerr=[2 * se for se in column("log_px_se")], fmt="s-",
                 capsize=3, label=f"-IWAE$_{{{K}}}$ ≈ -log p(x) (±2 se)")
axes[0].secondary_yaxis("right", functions=(bits_per_dim, lambda b: b * 784 * math.log(2))).set_ylabel("bits/dim")
axes[1].plot(latent_sizes, column("distortion"), "o-", color="tab:green")
axes[2].plot(latent_sizes, column("rate"), "o-", color="tab:red")
titles = ["negative log-likelihood", "distortion -E[log p(x|z)]", "rate KL(q(z|x) || p(z))"]
for ax, title in zip(axes, titles):
    ax.set(xscale="log", xlabel="latent dimensions L", ylabel="nats per image", title=title)
    ax.set_xticks(latent_sizes, [str(L) for L in latent_sizes], minor=False), ax.minorticks_off()
    ax.grid(alpha=0.3)
axes[0].legend(loc="upper right", fontsize=8)
fig.suptitle(f"Figure 1. Test scores against the latent size ({data.source} data, {steps:,} steps per model)");

# %% [markdown]
# More latent dimensions let the encoder pass more about each image to the decoder, so we expect the rate
# to go up and the distortion to go down. Whether they do at every step, and at which $L$ the
# log-likelihood is best, the next cell says for this run:

# %%
best = max(scores, key=lambda L: scores[L]["log_px"])
rates, distortions = column("rate"), column("distortion")
falls = distortions == sorted(distortions, reverse=True)
print(f"the rate {'rises' if rates == sorted(rates) else 'does not rise'} at every step in L, "
      f"the distortion {'falls' if falls else 'does not fall'} at every step")
gain = scores[best]["log_px"] - scores[2]["log_px"]
print(f"the best log p(x) is at L = {best}" + (f", {gain:.2f} nats ({bits_per_dim(gain):.4f} bits/dim) above L = 2"
                                               if best != 2 else ""))

# %% [markdown]
# ## 2. Posterior collapse: how many dimensions are used?
#
# A latent dimension $j$ carries information about the image only if the encoder puts different images in
# different places along it. Burda et al. (2016) call dimension $j$ *active* when the mean of
# $q_\phi(z_j\mid x)$ varies across the data:
#
# $$A_j = \operatorname{Var}_x\big(\mathbb E_{q_\phi}[z_j\mid x]\big) = \operatorname{Var}_x\big(\mu_j(x)\big) > 0.01 .$$
#
# We compute it for the model with $L = 50$ over the test images, from the encoder's outputs, and check
# the library's `active_units` against it:

# %%
model50 = models[50]
with torch.no_grad():
    mu, logvar = (t.double() for t in model50.encode(test_x))  # (N, L) each, in float64 (see below)
variance = mu.var(0, correction=0)  # (L,): how much mu_j(x) moves from image to image
units = active_units(model50, test_x)
torch.testing.assert_close(units.variance, variance)
print(f"{units.count} of {model50.config.z_dim} latent dimensions are active (Var_x mu_j(x) > 0.01)")

# %% [markdown]
# What does an inactive dimension cost? The KL term of notebook 2 is a sum over dimensions, so each
# has its own share of the rate, averaged over the images (exercise 1 asks you to write it). The
# library's `kl_per_dimension` computes it in float64: for a dimension whose $\log\sigma_j^2$ is close
# to 0, $e^{\log\sigma_j^2} - 1 - \log\sigma_j^2$ is the difference of nearly equal numbers. The shares
# add up to the KL of `vaelib.elbo`:

# %%
kl_each = kl_per_dimension(model50, test_x)  # (L,): mean over images, one per dimension, float64
torch.testing.assert_close(kl_each.sum(), kl_standard_normal(mu, logvar).mean(), rtol=1e-4, atol=1e-4)
inactive = ~units.active
print(f"the {int(inactive.sum())} inactive dimensions cost {kl_each[inactive].sum():.4f} nats per image "
      f"together; the {units.count} active ones {kl_each[units.active].sum():.2f} nats")

# %% [markdown]
# Figure 2 shows both criteria for each of the 50 dimensions, sorted by their KL.

# %%
def plot_units(units, kl_each, title):
    """Each latent dimension, sorted by its KL: Var_x mu_j(x) against the threshold, and its share of the rate."""
    order = kl_each.argsort(descending=True)
    colours = ["tab:blue" if active else "tab:gray" for active in units.active[order]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 3.6), layout="constrained")
    for ax, values, ylabel, name in [(left, units.variance, "Var over images of $\\mu_j(x)$", "activity"),
                                     (right, kl_each, "KL share (nats per image)", "share of the rate")]:
        ax.bar(range(1, len(order) + 1), values[order].cpu(), color=colours)
        ax.set(yscale="log", ylabel=ylabel, title=name, xlabel="latent dimension j, sorted by its KL (largest first)")
    left.axhline(0.01, color="crimson", ls="--", label="threshold 0.01")
    left.legend()
    fig.suptitle(f"{title} (blue: active, grey: inactive)")


plot_units(units, kl_each, "Figure 2. The 50 latent dimensions of the L = 50 model")

# %% [markdown]
# Do the two criteria agree? A dimension that carries no information has no reason to spend KL: the ELBO
# is best when its $q_\phi(z_j\mid x)$ is the prior $\mathcal N(0, 1)$ for every image, which costs
# nothing, and when the decoder ignores $z_j$, which is then pure noise. The next cell measures all three
# (each dimension's KL, how close its $q_\phi(z_j\mid x)$ is to the prior, and how strongly the decoder
# reads it), the decoder by the norm of the weights with which its first layer reads each $z_j$:

# %%
weight = model50.decoder[0].weight.norm(dim=0)  # (L,): how strongly the decoder reads each z_j
if inactive.any() and units.active.any():
    mean_mu, mean_var = mu[:, inactive].mean(0), logvar[:, inactive].exp().mean(0)
    separated = kl_each[inactive].max() < kl_each[units.active].min()
    print("every inactive dimension spends less KL than every active one" if separated else
          "some inactive dimensions spend more KL than some active ones")
    print(f"inactive dimensions: mean of mu_j within ±{mean_mu.abs().max():.3f}, mean of sigma_j^2 from "
          f"{mean_var.min():.3f} to {mean_var.max():.3f} (the prior: 0 and 1)")
    print(f"decoder weights from z_j: median norm {weight[units.active].median():.3f} for the active "
          f"dimensions, {weight[inactive].median():.3f} for the inactive ones")
else:
    print(f"{units.count} of 50 dimensions are active in this run: nothing to compare")

# %% [markdown]
# The table of section 1 gives the count for every $L$. A dimension is worth using only if what it saves
# in distortion pays for its KL, and the count says for how many dimensions that held:

# %%
counts = {L: scores[L]["active"] for L in latent_sizes}
all_used = [L for L in latent_sizes if counts[L] == L]
print(f"active units: {counts}; every dimension is used for L = {', '.join(map(str, all_used)) or 'none of these'}")
print(f"at L = 50 the model leaves {50 - counts[50]} of 50 dimensions unused")

# %% [markdown]
# ## 3. Rate and distortion: weighting the KL term
#
# The two terms of the negative ELBO have names in the rate–distortion view of Alemi et al. (2018):
#
# $$-\mathrm{ELBO} = \underbrace{-\mathbb E_{q_\phi}[\log p_\theta(x\mid z)]}_{\text{distortion}}
#   + \underbrace{\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big)}_{\text{rate}} .$$
#
# The rate is what the encoder spends, in nats, to tell the decoder about the image (it bounds the mutual
# information between $x$ and $z$ from above); the distortion is what the decoder still cannot predict.
# The $\beta$-VAE (Higgins et al. 2017) minimises distortion $+\ \beta\,\cdot$ rate: $\beta > 1$ makes each
# nat of rate dearer, $\beta < 1$ cheaper, and only $\beta = 1$ is the ELBO. Whatever $\beta$ it was
# trained with, the model's encoder is still a valid proposal for $\mathrm{IWAE}_K$, so we can estimate
# $\log p_\theta(x)$ of every decoder the same way.
#
# ### The mean-reduced loss is $\beta = 784$
#
# Many VAE scripts write the loss as one mean: the binary cross-entropy averaged over the $B \times D$
# pixel values, plus the KL averaged over the batch. With $D = 784$,
#
# $$\ell_\text{mean} = \frac{1}{BD}\sum_{b,d}\mathrm{BCE}_{bd} + \frac1B\sum_b \mathrm{KL}_b
#   = \frac1D\cdot\frac1B\sum_b\Big(\sum_d \mathrm{BCE}_{bd} + D\,\mathrm{KL}_b\Big),$$
#
# which is $1/D$ times the $\beta$-VAE loss with $\beta = D$. The factor $1/D$ scales every gradient alike,
# and Adam, which divides each step by a running estimate of the gradient's size, hardly notices it. We
# check the identity on one batch, gradients and all, and also the variant that averages the KL over the
# $L$ latent dimensions too, which is $\beta = D/L$:

# %%
def gradient(model, loss):
    """d loss / d parameters, flattened into one vector."""
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


x = binarise(data.train_x[:100], torch.Generator().manual_seed(0)).to(device)  # one batch, B = 100
same_eps = lambda: torch.Generator(device).manual_seed(1)  # noqa: E731  (the same z in every loss)
logits, mu_x, logvar_x = model50(x, generator=same_eps())
per_dim = 0.5 * (logvar_x.exp() + mu_x**2 - 1 - logvar_x)  # (B, L)
g_mean = gradient(model50, F.binary_cross_entropy_with_logits(logits, x) + per_dim.sum(1).mean())
logits, mu_x, logvar_x = model50(x, generator=same_eps())
per_dim = 0.5 * (logvar_x.exp() + mu_x**2 - 1 - logvar_x)
g_mean_l = gradient(model50, F.binary_cross_entropy_with_logits(logits, x) + per_dim.mean())  # mean over B and L

# %% [markdown]
# The same gradients from the library's $\beta$-weighted loss, with the same draw of $z$:

# %% tags=["nbval-check-output"]
g_beta = {beta: gradient(model50, fast_loss(model50, x, same_eps(), beta)) for beta in (1.0, 784.0, 784.0 / 50)}
model50.zero_grad(set_to_none=True)
torch.testing.assert_close(784 * g_mean, g_beta[784.0], rtol=1e-4, atol=1e-5)
torch.testing.assert_close(784 * g_mean_l, g_beta[784.0 / 50], rtol=1e-4, atol=1e-5)
print("784 x gradient of the mean-reduced loss == gradient of the loss with beta = 784: True")
print("784 x gradient with the KL averaged over L = 50 dimensions too == gradient with beta = 784 / 50: True")

# %% [markdown]
# How far is that from the ELBO's own gradient? The cosine between the two directions, at the weights of
# our trained $L = 50$ model:

# %%
cosine = F.cosine_similarity(g_mean, g_beta[1.0], dim=0).item()
direction = ("nearly orthogonal" if abs(cosine) < 0.3 else
             "much the same direction" if cosine > 0.9 else "another direction")
print(f"cosine between the gradients of the mean-reduced loss and of the ELBO (beta = 1): {cosine:.3f}, {direction}")

# %% [markdown]
# Now we train the $L = 50$ model with $\beta$ = 0.5, 2, 4 and 784 (the mean-reduced loss); $\beta = 1$
# is the model of section 1.

# %%
betas = [0.5, 2.0, 4.0, 784.0]
beta_models, beta_scores = {1.0: models[50]}, {1.0: scores[50]}
for beta in betas:
    beta_models[beta], _ = fit(data, ModelConfig(z_dim=50), beta)
    beta_scores[beta] = score(beta_models[beta])
beta_models, beta_scores = dict(sorted(beta_models.items())), dict(sorted(beta_scores.items()))
print_table(beta_scores, "beta")

# %% [markdown]
# In words, for this run:

# %%
rates = [s["rate"] for s in beta_scores.values()]
distortions = [s["distortion"] for s in beta_scores.values()]
best_beta = max(beta_scores, key=lambda b: beta_scores[b]["log_px"])
print(f"as beta grows, the rate {'falls' if rates == sorted(rates, reverse=True) else 'does not fall'} at every step "
      f"and the distortion {'rises' if distortions == sorted(distortions) else 'does not rise'} at every step")
slope = (distortions[-1] - distortions[-2]) / (rates[-2] - rates[-1])  # beta = 784 against the one below it
print(f"from beta = 784 to beta = {betas[-2]:g}, each nat of rate saves {slope:.1f} nats of distortion on average")
loss = scores[50]["log_px"] - beta_scores[784.0]["log_px"]
active = [s["active"] for s in beta_scores.values()]
print(f"active units {'fall' if active == sorted(active, reverse=True) else 'do not fall steadily'} as beta grows "
      f"({', '.join(map(str, active))}): the activity criterion and the rate need not move together (section 2)")
print(f"the best log p(x) is at beta = {best_beta:g}; beta = 784 is {abs(loss):.1f} nats "
      f"{'worse' if loss > 0 else 'better'} than beta = 1, with {beta_scores[784.0]['active']} active units and "
      f"a rate of {beta_scores[784.0]['rate']:.3f} nats")

# %% [markdown]
# Figure 3 puts every model of this notebook in the rate–distortion plane. Along a grey dashed line the
# negative ELBO, distortion + rate, is constant; the two drawn pass through the $L = 2$ model and the
# model with the best ELBO (the two axes have different scales, so the slope $-1$ looks shallow). A model
# on a lower dashed line has a better ELBO.

# %%
fig, ax = plt.subplots(figsize=(8, 5.5), layout="constrained")
for rows, name, marker in [(beta_scores, "β", "o"), (scores, "L", "s")]:
    rate, distortion = [s["rate"] for s in rows.values()], [s["distortion"] for s in rows.values()]
    ax.plot(rate, distortion, marker + "-", label=f"{name} varies" + (" (L = 50)" if name == "β" else " (β = 1)"))
    for i, (key, r, d) in enumerate(zip(rows, rate, distortion)):
        if (name, key) != ("β", 1.0):  # the same model as L = 50; labels of L alternate above and below
            offset = {("L", 20): (-44, 4), ("L", 50): (6, -12)}.get((name, key), (6, -12 if name == "L" and i % 2 else 4))
            ax.annotate("L = 50, β = 1" if (name, key) == ("L", 50) else f"{name} = {key:g}", (r, d),
                        textcoords="offset points", xytext=offset, fontsize=8)
best_elbo = max([*scores.values(), *beta_scores.values()], key=lambda s: s["elbo"])
for i, s in enumerate((scores[2], best_elbo)):
    ax.axline((0, -s["elbo"]), slope=-1, color="gray", ls="--", lw=0.8, label="constant -ELBO" if i == 0 else None)
ax.set(xlabel="rate KL(q(z|x) || p(z)) (nats per image)", ylabel="distortion -E[log p(x|z)] (nats per image)",
       title="Figure 3. Rate against distortion on the test set")
ax.margins(x=0.12)  # room for the labels at the right
ax.legend(), ax.grid(alpha=0.3);

# %% [markdown]
# What does $\beta$ do to the samples? Figure 4 decodes the same ten draws $z \sim \mathcal N(0, I)$ with
# each model (pixel probabilities, as in notebook 5):

# %%
z = torch.randn(100, 50, generator=torch.Generator().manual_seed(0)).to(device)
fig, axes = plt.subplots(len(beta_models), 1, figsize=(9, 1.05 * len(beta_models)), layout="constrained")
spread = {}
for ax, (beta, model) in zip(axes, beta_models.items()):
    with torch.no_grad():
        probs = torch.sigmoid(model.decode(z)).cpu()  # (100, D)
    spread[beta] = probs.std(0).mean().item()  # how much the samples differ from one another
    ax.imshow(image_grid(probs[:10], rows=1), cmap="gray_r", vmin=0, vmax=1)
    ax.set(xticks=[], yticks=[])
    ax.set_ylabel(f"β = {beta:g}", rotation=0, ha="right", va="center")
fig.suptitle("Figure 4. The same ten draws z ~ N(0, I) decoded by each model");

# %% [markdown]
# A number for how different the samples of each model are from one another: the standard deviation of
# each pixel's probability over 100 samples, averaged over the pixels.

# %%
ratio = spread[784.0] / spread[1.0]
print("spread of 100 samples: " + ", ".join(f"beta = {b:g}: {s:.3f}" for b, s in spread.items()))
print(f"the beta = 784 model's samples spread {ratio:.2f} times as much as beta = 1's: "
      f"{'nearly one image for every z' if ratio < 0.2 else 'they still differ'}")

# %% [markdown]
# With $\beta = 784$ a nat of rate costs 784 nats of loss, and the printout below the $\beta$ table says
# how many nats of distortion a nat of rate saves at that end of the curve, on average between the two
# lowest rates (a chord: right at rate 0 the curve may be steeper). When a nat of rate saves less
# than 784 nats of distortion all along the curve, the loss is lowest when the encoder gives up,
# $q_\phi(z\mid x)$ the prior for every image, and the decoder draws one image for every $z$, the average
# digit: the printouts above say how far this run went. If a VAE draws the same blurry digit for every
# input, look first at how its loss is reduced: summing over the pixels, as `vaelib` does, is the ELBO.

# %% [markdown]
# ## 4. Static versus dynamic binarisation
#
# Notebook 4 binarised every training image afresh each time it was used: dynamic binarisation. Much of
# the literature instead uses one fixed binarisation of the training set, such as the binarised MNIST of
# Larochelle & Murray (2011). We make our own: the training set binarised once, with seed 0. The trainer
# draws each pixel as $u < \text{grey level}$ with $u \sim U[0, 1)$, which leaves grey levels of exactly
# 0 and 1 as they are, so training on it is static binarisation with no change to the library:

# %%
static_x = binarise(data.train_x, torch.Generator().manual_seed(0))  # (N, D) in {0, 1}, once for good
u = torch.rand(1000, 784)
assert torch.equal((u < static_x[:1000]).float(), static_x[:1000])  # the trainer's draw changes nothing
static = MNISTData(static_x, data.train_y, data.test_x, data.test_y, data.source, "binarised once, seed 0")
bin_models, bin_histories = {"dynamic": models[50]}, {"dynamic": histories[50]}
bin_models["static"], bin_histories["static"] = fit(static, ModelConfig(z_dim=50), binarisation="static")
bin_scores = {"dynamic": scores[50], "static": score(bin_models["static"])}

# %% [markdown]
# Same architecture ($L = 50$), same seed, same number of steps. On the same test images:

# %%
diff = bin_scores["static"]["log_px_each"] - bin_scores["dynamic"]["log_px_each"]  # (n_iwae,)
gap, gap_se = -diff.mean().item(), diff.std().item() / math.sqrt(n_iwae)
print(f"test log p(x): static {bin_scores['static']['log_px']:.2f}, dynamic {bin_scores['dynamic']['log_px']:.2f} "
      f"nats per image")
print(f"static binarisation is {abs(gap):.2f} ± {gap_se:.2f} nats ({bits_per_dim(abs(gap)):.4f} bits/dim) "
      f"{'worse' if gap > 0 else 'better'} than dynamic on the same test images")

# %% [markdown]
# Why? Compare each model's ELBO on images it was trained on with its ELBO on the test images. For the
# static model the training images are the fixed binary images it saw at every epoch; for the dynamic
# model, new binary draws of its training digits.

# %%
n_train = min(10_000, len(data.train_x))
seen = {"static": static_x[:n_train], "dynamic": binarise(data.train_x[:n_train], torch.Generator().manual_seed(1))}
overfit = {}
for name, model in bin_models.items():
    train_elbo = per_image_terms(model, seen[name].to(device)).elbo.mean().item()
    overfit[name] = train_elbo - bin_scores[name]["elbo"]  # how much better on training images than on test ones
    print(f"{name:8s} -ELBO on {n_train:,} training images {-train_elbo:7.2f}, on the test images "
          f"{-bin_scores[name]['elbo']:7.2f}: test - train = {overfit[name]:+.2f} nats")
print(f"the static model's gap is {'the larger' if overfit['static'] > overfit['dynamic'] else 'not the larger'}")

# %% [markdown]
# Figure 5 shows the test $-$ELBO through training. The training curves are the mean loss over each
# epoch's batches, taken while the weights changed (as in notebook 5): not the same quantity as the
# training-image ELBO above, which was measured with the final weights, so only the test curves compare
# directly.

# %%
fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
first = 1 if len(bin_histories["static"].epoch) > 2 else 0  # the first epoch, far above the rest, is left out
for name, history in bin_histories.items():
    line, = ax.plot(history.epoch[first:], history.train_neg_elbo[first:], "o-", ms=3, label=f"{name}: train")
    ax.plot(history.epoch[first:], history.test_neg_elbo[first:], "s--", ms=3, color=line.get_color(),
            label=f"{name}: test")
ax.set(xlabel="epoch", ylabel="negative ELBO (nats per image)",
       title=f"Figure 5. Static against dynamic binarisation (L = 50), "
             f"from epoch {bin_histories['static'].epoch[first]:.1f}")
ax.legend(), ax.grid(alpha=0.3);

# %% [markdown]
# With a fixed binarisation the model sees the same binary images at every epoch, and it can learn their
# particular pixels, the noise the binarisation put there included; that does not carry over to new
# images. Dynamic binarisation brings new binary images of the same digits at every epoch, free data
# augmentation, and its training images come from the same distribution as the test images, which are
# themselves one random binarisation (vaelib binarises the test set once, with a fixed seed). The authors of Burda et al. (2016) report in their code's README
# (github.com/yburda/iwae) that on the fixed binarisation of Larochelle & Murray their models overfit by
# about 3.5 nats (test against training log-likelihood) and reached test log-likelihoods about 2 nats
# lower than with random binarisation, after 3,280 passes over the data. Our budget is much shorter:

# %%
epochs = bin_histories["static"].epoch[-1]
print(f"after {epochs:.1f} epochs static binarisation costs {gap:+.2f} ± {gap_se:.2f} nats of test log p(x); "
      f"{'less than' if gap < 2 else 'as much as or more than'} the ≈2 nats reported after 3,280 passes")

# %% [markdown]
# ## 5. Beside the published number
#
# Burda et al. (2016, Table 1) trained a VAE with 50 latent dimensions and two layers of 200 tanh units
# in the encoder and in the decoder, on dynamically binarised MNIST, for 3,280 passes over the data (their
# code: $3^i$ epochs for $i = 0, \dots, 7$, batches of 20, the learning rate lowered from $10^{-3}$ to
# $10^{-4}$ over the eight stages). They report $-\log p(x) = 86.76$ nats on the test set, estimated by
# $\mathrm{IWAE}_K$ with $K = 5000$.
#
# `python -m vaelib train --hidden 200 200 --z-dim 50 --activation tanh` trains that architecture. A run of
# it committed in `benchmarks/results/burda` is loaded when it is there; otherwise the next cell trains a
# model of that shape here, on the budget of the others, and says so.

# %%
burda_dir, burda_config = benchmark_results("burda"), ModelConfig(hidden=(200, 200), z_dim=50, activation="tanh")
burda_metrics = None
if (burda_dir / "metrics.json").exists() and (burda_dir / "model.pt").exists():
    burda_metrics = json.loads((burda_dir / "metrics.json").read_text())
if burda_metrics and burda_metrics.get("complete"):
    burda = load_checkpoint(burda_dir / "model.pt", burda_config).to(device).eval()
    print(f"loaded the model of benchmarks/results/burda: {burda_metrics['epochs']:g} epochs on "
          f"{burda_metrics['data_source']} data")
else:
    burda_metrics = None
    print(f"no finished run in benchmarks/results/burda: training a 784-200-200-50 tanh model here ({steps:,} steps)")
    burda, _ = fit(data, burda_config)

# %% [markdown]
# Its active units and the share of the rate of each dimension, as in Figure 2:

# %%
burda_units = active_units(burda, test_x)
plot_units(burda_units, kl_per_dimension(burda, test_x),
           "Figure 6. The 50 latent dimensions of the 784-200-200-50 model")
print(f"{burda_units.count} of 50 latent dimensions are active")

# %% [markdown]
# Its log-likelihood: the number that `python -m vaelib train` wrote in `metrics.json` (all test images)
# when the model was loaded, and our own estimate on the first test images with a larger $K$ than above,
# with its standard error. $\mathrm{IWAE}_K$ is a lower bound that rises with $K$ in expectation, so on
# the same images a smaller $K$ gives a slightly higher $-\log p(x)$; our estimate also covers only the
# first test images, whose mean differs from the whole test set's by about its standard error. The
# figure to set beside the paper's is the one in `metrics.json`: $K = 5000$ on all test images.

# %%
K_burda = 50 if SMOKE else 1000
log_px = per_image_iwae(burda, test_x[:n_iwae], K_burda)  # (n_iwae,)
neg_log_px, se = -log_px.mean().item(), log_px.std().item() / math.sqrt(n_iwae)
print(f"-log p(x) ≈ -IWAE_{K_burda} on the first {n_iwae:,} test images: {neg_log_px:.2f} ± {se:.2f} nats "
      f"({bits_per_dim(neg_log_px):.4f} bits/dim)")
if burda_metrics:
    print(f"metrics.json: -IWAE_{burda_metrics['iwae_k']} on all {burda_metrics['n_test']:,} test images: "
          f"{burda_metrics['test_neg_log_px_iwae']:.2f} nats")
reference = burda_metrics["test_neg_log_px_iwae"] if burda_metrics else neg_log_px
epochs = burda_metrics["epochs"] if burda_metrics else steps * 100 / len(data.train_x)
print(f"against Burda et al.'s 86.76 nats: {reference - 86.76:+.2f} nats ({bits_per_dim(reference - 86.76):+.4f} "
      f"bits/dim), after {epochs:,.0f} of their 3,280 epochs")

# %% [markdown]
# ## Summary
#
# - More latent dimensions let the model spend more rate to lower the distortion; the table of section 1
#   and Figure 1 show how far that pays on this budget.
# - A dimension is active when its encoder mean moves with the image (Burda et al.'s criterion,
#   `vaelib.diagnostics.active_units`). The ELBO pushes an unused dimension's $q_\phi(z_j\mid x)$ onto the
#   prior, where it costs no KL (`kl_per_dimension`), and the decoder then has no reason to read it;
#   section 2 measures how far the $L = 50$ model got there.
# - $\beta$ trades rate against distortion (Figure 3). The loss averaged over pixels found in many scripts is
#   $\beta = 784$ in disguise: its gradient is the $\beta = 784$ loss's divided by 784 (checked above); the $\beta = 784$ row of
#   the table shows what it does to the rate.
# - Dynamic binarisation is free data augmentation; a fixed binarisation lets the model fit the training
#   images' noise.
# - $\log p(x)$ in nats per image divided by $784 \ln 2$ is bits per dimension; Burda et al.'s 86.76 nats
#   is 0.16 bits per dimension.

# %% [markdown]
# ## Exercises
#
# 1. The page counts active units by the variance of $\mu_j(x)$. Another criterion for collapse looks at
#    the KL instead: dimension $j$ has collapsed when its KL, averaged over the images, is below a
#    threshold. Write it for a batch of encoder outputs. The next cell checks it.

# %% tags=["solution"]
def my_collapsed_dims(mu, logvar, threshold):
    """Latent dims whose KL, averaged over the batch, is below threshold. Shapes: (B, L), (B, L) -> (L,) bool."""
    raise NotImplementedError(
        'Hint: the closed-form KL of notebook 2 is a sum over the latent dimensions; '
        'here you need its terms before that sum.'
    )


# %%
check_collapsed_dims(my_collapsed_dims)

# %% [markdown]
# 2. Burda et al.'s code removes the inactive units and scores the model again. Replace $q_\phi(z_j\mid x)$
#    by the prior for the inactive dimensions of the $L = 50$ model, and compute the test ELBO. Do the same
#    for the active dimension with the smallest KL, and for the one with the largest. What does each cost?

# %% [markdown]
# 3. Draw 64 samples from the prior with the $L = 2$ and the $L = 50$ models side by side. The $L = 50$ model
#    has the better log-likelihood: are its samples better? Estimate how much prior mass falls where no
#    image is encoded: $\mathrm{KL}\big(p(z)\,\|\,q(z)\big)$ with the aggregate posterior
#    $q(z) = \frac1N\sum_n q_\phi(z\mid x_n)$.

# %% [markdown]
# 4. KL warm-up (introduced as KL annealing by Bowman et al. 2016; used by Sønderby et al. 2016) multiplies the KL term by a $\beta$ that grows
#    from 0 to 1 over the first part of training, so that the encoder learns to use its dimensions before
#    the KL pushes them to the prior. Train the $L = 50$ model with a warm-up over the first half of the
#    steps. Does it keep more active units? Is its log-likelihood better?
