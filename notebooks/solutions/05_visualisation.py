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
# # 5. Looking at what the VAE learned
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/solutions/05_visualisation.ipynb)
#
# With two latent dimensions we can *see* the model. We look at what it reconstructs, what it
# generates from the prior $p(z)=\mathcal N(0, I)$, what the decoder draws at every point of the
# latent plane, and where the encoder puts each test digit. At the end, a plain autoencoder trained
# beside it shows what the KL term buys.
#
# It loads the model notebook 4 saved; if notebook 4 has not run, it trains a small one here.

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
import math
from dataclasses import asdict

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.patches import Circle

from vaelib import plot
from vaelib.config import ModelConfig, TrainConfig, seed_everything, smoke
from vaelib.data import describe, load_mnist
from vaelib.evaluate import evaluate_terms
from vaelib.evidence import holds
from vaelib.exercises import check_interpolate
from vaelib.model import VAE
from vaelib.runs import trained
from vaelib.study import compare, settled
from vaelib.train import History, course_model, lr_factor, train
from vaelib.train import settings as train_settings

SMOKE = smoke()
data = load_mnist("auto")

# %% [markdown]
# The model, its training history and its test ELBO:

# %%
model, history = course_model(data, fallback_steps=40 if SMOKE else 3000)
neg_elbo, kl = evaluate_terms(model, data.test_x)
print(f"test negative ELBO: {neg_elbo:.2f} nats per image, of which KL {kl:.2f} ({describe(data)})")

# %% [markdown]
# ## The training curve
#
# Left: the negative ELBO per image, on the training batches (the mean over each epoch) and on the
# test set after each epoch. Then the test set's two terms, each on its own scale: the distortion
# $-\mathbb E_q[\log p(x\mid z)]$ and the rate $\mathrm{KL}(q(z\mid x)\,\|\,p(z))$.

# %%
fig = plot.plot_history(history, title=f"Negative ELBO during training ({data.source} data)")
rate, total = history.test_kl[-1], history.test_neg_elbo[-1]
print(f"after {history.step[-1]:,} steps: distortion {total - rate:.2f} + rate {rate:.2f} nats per image; "
      f"the rate is {rate / total:.1%} of the total")

# %% [markdown]
# The rate bounds what the code can tell the decoder about an image, in nats. The distortion is what
# the decoder, given the code, is still unsure of.
#
# From here on, a test digit's *code* is its posterior mean $\mu_\phi(x)$.

# %%
with torch.no_grad():
    mu, logvar = model.encode(data.test_x)  # (N, L) each: q(z|x) for every test digit
N, L = mu.shape
print(f"N = {N:,} test digits, L = {L} latent dimensions")

# %% [markdown]
# ## Which class each code lies among
#
# Predict first: with two numbers per image, how much of a digit survives the trip through $z$?
# We measure it rather than judge by eye. Each code's 10 nearest neighbours among the other test
# codes vote on a label. When the vote is not the digit's own label, its code sits among another
# class's codes. The decoder sees only $z$, so it cannot tell that digit from them.

# %%
def nearest_codes(points, codes, count, skip_self=False):
    """Distances and indices of each point's `count` nearest codes, skipping a point's own code when
    the points are the codes. Shapes: (S, L), (N, L) -> (S, count), (S, count)."""
    found = []
    for start in range(0, len(points), 2000):  # 2000 rows of the distance matrix at a time
        distance = torch.cdist(points[start:start + 2000], codes)
        if skip_self:
            distance[:, start:start + 2000].fill_diagonal_(float("inf"))
        found.append(distance.topk(count, largest=False))
    return torch.cat([f.values for f in found]), torch.cat([f.indices for f in found])


# %% [markdown]
# The vote, and the pairs of classes it confuses most, in either direction:

# %%
neighbours = 10
vote = data.test_y[nearest_codes(mu, mu, neighbours, skip_self=True)[1]].mode(1).values  # (N,)
elsewhere = vote != data.test_y
confusion = torch.zeros(10, 10, dtype=torch.long)
confusion.index_put_((data.test_y, vote), torch.ones_like(vote), accumulate=True)
pairs = (confusion + confusion.T).triu(1)  # a 4 among 9s and a 9 among 4s count for the same pair
most = pairs.flatten().topk(4)
confused = [(i // 10, i % 10) for i in most.indices.tolist()]
print(f"{elsewhere.float().mean():.1%} of the test digits have codes among another class's")
print("most confused:", ", ".join(f"{a} and {b} ({n} digits)" for (a, b), n in zip(confused, most.values.tolist())))

# %% [markdown]
# Sixteen test digits drawn at random, each above its decoding at the posterior mean,
# $\sigma(\mathrm{logits}(\mu_\phi(x)))$. Each decoding is titled with its neighbours' vote, in red
# where the vote is not the digit's label.

# %%
shown = torch.randperm(N, generator=torch.Generator().manual_seed(0))[:16]  # (16,) indices in the test set
fig = plot.plot_reconstructions(model, data.test_x[shown], data.test_y[shown], code_labels=vote[shown])
print("their indices in the test set, row by row:", shown.tolist())
moved = [f"test image {i} (a {int(data.test_y[i])}) among {int(vote[i])}s" for i in shown.tolist() if elsewhere[i]]
print(f"{len(moved)} of these 16 codes lie among another class's" + (": " + ", ".join(moved) if moved else ""))

# %% [markdown]
# A red title means the digit was decoded from a region the decoder shares with another class. Such
# a reconstruction is no evidence that the model kept the digit's class. A black title says less than
# it seems: near a border the decoding can still blend two classes.

# %% [markdown]
# ## Decoding draws from the prior
#
# The generative model in action: draw $z\sim\mathcal N(0, I)$ and decode it. As is usual, we show
# the decoder's means, the pixel probabilities $\sigma(\mathrm{logits}(z))$, not binary images drawn
# from them.

# %%
fig = plot.plot_digits(model.sample(64, generator=torch.Generator().manual_seed(0)), rows=8,
                       title="decoder means σ(logits(z)) for 64 draws z ~ N(0, I)")

# %% [markdown]
# ## The latent space, decoded
#
# A $21\times 21$ grid of points $z=(z_1, z_2)$ over $[-4, 4]^2$, each decoded. $z_1$ grows to the
# right and $z_2$ upwards; each tile is centred on the point it decodes. (The original notebook put
# $z_1$ down the rows, through `torch.meshgrid` without `indexing=`.)

# %%
grid = plot.plot_latent_grid(model, n=21, half_width=4.0)

# %% [markdown]
# Does the figure show what the model does? We read three tiles off the figure and compare each with
# the decoding of its $z$. We also check that every tick marks a grid point.

# %%
image = grid.axes[0].images[0]
left, right, bottom, top = image.get_extent()
tile = (right - left) / 21  # the width of one tile, in units of z


def tile_at(z1, z2):
    """The 28 x 28 tile of the figure drawn where the axes read (z1, z2)."""
    col, row = int((z1 - left) // tile), int((top - z2) // tile)
    return torch.as_tensor(image.get_array()[28 * row:28 * (row + 1), 28 * col:28 * (col + 1)]).float()


# %% tags=["nbval-check-output"]
corners = [(-4.0, 4.0), (2.0, -1.2), (0.0, 0.0)]  # a corner, a point inside, the origin
with torch.no_grad():
    decoded = torch.sigmoid(model.decode(torch.tensor(corners))).reshape(-1, 28, 28)
points = torch.linspace(-4, 4, 21)
ticks = [t for t in grid.axes[0].get_xticks() if abs(t) <= 4] + [t for t in grid.axes[0].get_yticks() if abs(t) <= 4]
checks = {f"the tiles at z = {', '.join(map(str, corners))} are the decodings of those z":
              all(torch.allclose(tile_at(*z), d, atol=1e-5) for z, d in zip(corners, decoded)),
          "every tick marks a grid point": all((points - t).abs().min() < 1e-6 for t in ticks)}
for claim, condition in checks.items():  # a loop, not a last expression: nbval would print its value
    holds(condition, claim)

# %% [markdown]
# How much of the grid matters? The prior's mass in the middle square, beside the share of the test
# codes there:

# %%
prior_square = math.erf(2 / math.sqrt(2)) ** 2  # P(|z_1| < 2 and |z_2| < 2) under N(0, I)
codes_square = (mu.abs() < 2).all(1).float().mean()
print(f"in [-2, 2]^2: {prior_square:.1%} of the prior's mass, {codes_square:.1%} of the test codes")

# %% [markdown]
# Outside that square, the tiles show what the decoder draws where the prior puts little mass. Look
# in the grid for the most confused pairs printed above, and for where their tiles meet.

# %% [markdown]
# ## Where the encoder puts the test digits
#
# Each test image at its posterior mean, coloured by its label, which the model never saw. Each digit
# is written at the median of its class's codes. (The original notebook plotted one draw
# $z\sim q(z\mid x)$ per image instead.)

# %%
fig = plot.plot_embedding(model, data.test_x, data.test_y)

# %% [markdown]
# The codes of one class lie together, though no label was used in training. The ELBO rewards codes
# that let the decoder reconstruct, and digits of one class look alike. The evidence: the neighbours'
# vote against the same vote after shuffling the labels, which keeps the class sizes and breaks any
# link to the codes.

# %%
shuffled = data.test_y[torch.randperm(N, generator=torch.Generator().manual_seed(0))]
chance = (shuffled[nearest_codes(mu, mu, neighbours, skip_self=True)[1]].mode(1).values == shuffled).float().mean()
own = 1 - elsewhere.float().mean()
print(f"neighbours vote for the digit's own label: {own:.1%} of the test digits; with shuffled labels: {chance:.1%}")
holds(own > 5 * chance, "codes of one class lie together more than five times as often as chance", full_only=True);

# %% [markdown]
# ## How close is the embedding to the prior?
#
# A sample from the model needs the *aggregate posterior* $q(z) = \frac1N\sum_x q(z\mid x)$, the
# distribution of codes over the data, to match $p(z)$. Its mean is the mean of $\mu$. By the law of
# total variance, its variance in dimension $j$ is $\mathrm{Var}(\mu_j) + \mathbb E[\sigma_j^2]$: the
# spread of the means plus the mean spread around them.
#
# Each $q(z\mid x)$ turns out narrow, so the codes of different digits fill $q(z)$, not the noise
# around one. The variance is close to the prior's 1, but not equal to it.

# %%
variance_of_mu, mean_variance = mu.var(0), logvar.exp().mean(0)  # (L,) each
aggregate_variance = variance_of_mu + mean_variance
for j in range(L):
    print(f"z_{j + 1}: mean {mu[:, j].mean():+.3f} (prior 0); variance {aggregate_variance[j]:.3f} "
          f"(prior 1) = Var(mu) {variance_of_mu[j]:.3f} + E[sigma^2] {mean_variance[j]:.4f}")
share = variance_of_mu.sum() / aggregate_variance.sum()
holds(share > 0.9, f"the spread of the means is more than 90% of the aggregate variance ({share:.1%})", full_only=True)
holds((aggregate_variance - 1).abs().max() < 0.3, "the aggregate variance is within 0.3 of 1 in each dimension",
      full_only=True);

# %% [markdown]
# Nothing forces an exact match. Averaged over the data, the KL term is the mutual information between
# $x$ and $z$ under $q$ plus $\mathrm{KL}(q(z)\,\|\,p(z))$ (Hoffman & Johnson, 2016). A code that tells
# the decoder about $x$ costs nats even where $q(z)$ matches $p(z)$. Here almost all of the KL term is
# mutual information.
#
# The estimate: draw $S$ codes from $q(z)$ (a test digit at random, then $z\sim q(z\mid x)$), and
# average $\log q(z) - \log p(z)$, with $q(z)$ the mixture of all $N$ posteriors.

# %%
S = 500 if SMOKE else 2000
pick = torch.randint(N, (S,), generator=torch.Generator().manual_seed(2))
z_aggregate = mu[pick] + (0.5 * logvar[pick]).exp() * torch.randn(S, L, generator=torch.Generator().manual_seed(3))
posterior = torch.distributions.Normal(mu, (0.5 * logvar).exp())  # N Gaussians, each (L,)
log_qz = torch.stack([posterior.log_prob(z).sum(-1).logsumexp(0) for z in z_aggregate]) - math.log(N)  # (S,)
log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z_aggregate).sum(-1)
gap = log_qz - log_pz
print(f"KL(q(z) || p(z)) ≈ {gap.mean():.2f} ± {gap.std() / math.sqrt(S):.2f} nats of the mean KL term {kl:.2f}; "
      f"the rest, {kl - gap.mean():.2f} nats, is the mutual information between x and z")
holds(gap.mean() < 0.1 * kl, "KL(q(z) || p(z)) is less than a tenth of the KL term", full_only=True);

# %% [markdown]
# ## A plain autoencoder beside the VAE
#
# What does the VAE do that a plain autoencoder does not? Take the same layers, but use the encoder's
# mean as a deterministic code, $z = \mu_\phi(x)$: no sampling, no KL term. The loss is
# $-\log p(x\mid z = \mu_\phi(x))$, summed over pixels and averaged over the batch.

# %%
def autoencoder_loss(autoencoder, x):
    """-log p(x | z = mu(x)) averaged over the batch: no sampling, no KL. Shapes: (B, D) -> ()."""
    logits = autoencoder.decode(autoencoder.encode(x)[0])  # the VAE module's logvar_head stays unused
    log_px_z = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)  # (B,)
    return -log_px_z.mean()


# %% [markdown]
# It trains as the VAE did, and only the loss differs. It takes as many steps, on batches of
# $B = 100$ images binarised afresh, in a new order each epoch, with Adam and the course's schedule.
# It is trained once and loaded after; the line it prints says which.

# %%
ae_steps, B = (40 if SMOKE else history.step[-1]), 100


def fit_autoencoder(seed=0):
    """The VAE's training budget and schedule for the autoencoder: ae_steps Adam steps on freshly binarised
    batches, the learning rate held, then decayed linearly to 0 over the last quarter (vaelib.train.lr_factor)."""
    seed_everything(seed)
    autoencoder = VAE(ModelConfig())
    optimizer = torch.optim.Adam(autoencoder.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, ae_steps, "decay"))
    generator, losses, per_epoch = torch.Generator().manual_seed(seed), [], len(data.train_x) // B
    for step in range(ae_steps):
        if step % per_epoch == 0:
            order = torch.randperm(len(data.train_x), generator=generator)  # a new order each epoch
        index = order[(step % per_epoch) * B:(step % per_epoch + 1) * B]
        x = torch.bernoulli(data.train_x[index], generator=generator)  # binarised afresh
        loss = autoencoder_loss(autoencoder, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if (step + 1) % (ae_steps // 5) == 0:  # one batch alone varies by several nats: print means
            print(f"step {step + 1:6,}: -log p(x|z) {sum(losses) / len(losses):7.2f} nats per image, "
                  f"mean of the last {len(losses):,} batches")
            losses = []
    return autoencoder, History(step=[ae_steps])


def autoencoder_settings(seed):
    return {"model": "autoencoder", "steps": ae_steps, "batch_size": B, "lr": 1e-3, "lr_schedule": "decay",
            "batches": "epochs", "seed": seed, "data": data.source}


autoencoder = trained(autoencoder_settings(0), fit_autoencoder,
                      f"autoencoder, {ae_steps:,} steps (the VAE had {history.step[-1]:,})").model

# %% [markdown]
# Predict before you run the next cell: where will the autoencoder put its codes? The cell prints
# their scale, how well they reconstruct the test set, and how many fall inside the circle that holds
# 95% of $\mathcal N(0, I)$.

# %%
radius = math.sqrt(-2 * math.log(0.05))  # P(|z| < radius) = 0.95 under N(0, I) in two dimensions
with torch.no_grad():
    codes = {"VAE": mu, "autoencoder": autoencoder.encode(data.test_x)[0]}
    nets = {"VAE": model, "autoencoder": autoencoder}
    distortion = {name: autoencoder_loss(net, data.test_x).item() for name, net in nets.items()}  # same loss
inside = {name: (c.norm(dim=1) < radius).float().mean().item() for name, c in codes.items()}
for name in nets:
    print(f"{name:>11}: std of codes {[round(s, 2) for s in codes[name].std(0).tolist()]}, "
          f"test -log p(x|z = mu(x)) {distortion[name]:.2f} nats, {inside[name]:.1%} of codes inside the circle")

# %% [markdown]
# Side by side, with the prior's 95% circle dashed in both:

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 6), layout="constrained")
for ax, (name, net) in zip(axes, nets.items()):
    plot.plot_embedding(net, data.test_x, data.test_y, ax=ax, title=f"{name}: codes of the test digits",
                        legend=False)
    ax.add_patch(Circle((0, 0), radius, fill=False, linestyle="--", linewidth=2, color="black", zorder=5))
    ax.set(xlabel="$z_1$ (code)", ylabel="$z_2$ (code)")

# %% [markdown]
# Two more measures. How much of the region the codes span is a hole, far from every code? And how
# many draws from the prior land far from every code? Each embedding sets its own scale for "far"
# (the cell's comments say how).

# %%
G = 100
z_prior = torch.randn(S, L, generator=torch.Generator().manual_seed(1))
far, limit = {}, {}
for name, c in codes.items():
    # far: farther from the nearest code than 99% of the codes are from theirs
    limit[name] = nearest_codes(c, c, 1, skip_self=True)[0].quantile(0.99)
    # the region: a G x G grid over the box from the 1st to the 99th percentile of the codes in each dimension
    low, high = c.quantile(0.01, dim=0), c.quantile(0.99, dim=0)
    axis = [torch.linspace(low[j], high[j], G) for j in range(L)]
    box = torch.stack(torch.meshgrid(*axis, indexing="xy"), -1).reshape(-1, L)  # (G * G, L)
    holes = (nearest_codes(box, c, 1)[0] > limit[name]).float().mean()
    far[name] = (nearest_codes(z_prior, c, 1)[0] > limit[name]).float().mean()
    print(f"{name:>11}: {holes:.1%} of the box in holes; {far[name]:.1%} of prior draws far from every code")

# %% [markdown]
# The first number is about the codes alone. The second is about $\mathcal N(0, I)$ against the codes,
# and a draw near *some* code is not yet a good draw. Where the codes spread far wider than the prior,
# $\mathcal N(0, I)$ only ever draws the middle of the embedding. The same 36 draws, decoded by both:

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 6.3), layout="constrained")
for ax, (name, net) in zip(axes, nets.items()):
    means = net.sample(36, generator=torch.Generator().manual_seed(0))  # sigmoid(logits(z)), z ~ N(0, I)
    ax.imshow(plot.image_grid(means, rows=6).numpy(), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"{name}: decoder means for z ~ N(0, I)")
    ax.axis("off")

# %% [markdown]
# Which digits do the prior's draws land among? The neighbours' vote for each of the $S$ draws,
# against each digit's share of the test set. The total variation distance is half the sum of the
# differences (0: the same shares, 1: no overlap).

# %%
data_shares = torch.bincount(data.test_y, minlength=10) / N
print("digit         " + "".join(f"{d:>6}" for d in range(10)) + "   distance")
print("test set      " + "".join(f"{s:6.1%}" for s in data_shares.tolist()))
distance = {}
for name, c in codes.items():
    landed = data.test_y[nearest_codes(z_prior, c, neighbours)[1]].mode(1).values
    shares = torch.bincount(landed, minlength=10) / S
    distance[name] = 0.5 * (shares - data_shares).abs().sum()
    print(f"{name:<14}" + "".join(f"{s:6.1%}" for s in shares.tolist()) + f"   {distance[name]:.2f}")

# %% [markdown]
# One VAE and one autoencoder are one draw each of their training's randomness. Two more of each, from
# seeds 1 and 2, were trained once and are loaded here. For every seed, the autoencoder's codes spread
# several times as wide as the VAE's, and far fewer lie inside the prior's circle. Its prior draws land
# among the digits in shares far from the test set's; the VAE's come close.

# %%
def fit_vae(seed):
    """Notebook 4's course model, trained from another seed (python -m vaelib train's settings; appendix
    notebook 9 loads the same models)."""
    budget = {"steps": 40} if SMOKE else {"epochs": 20}
    cfg = TrainConfig(**budget, seed=seed)
    (unit, size), = budget.items()

    def train_now():
        seed_everything(seed)
        vae = VAE(cfg.model)
        return vae, train(vae, data, cfg)

    settings = {**train_settings(asdict(cfg)), "data": data.source}
    return trained(settings, train_now, f"course VAE, {size} {unit}, seed {seed}").model.eval()


def fit_autoencoder_seed(seed):
    return trained(autoencoder_settings(seed), lambda: fit_autoencoder(seed), f"autoencoder, {ae_steps:,} steps, "
                   f"seed {seed}").model


@torch.no_grad()
def measures(net):
    """The measures above for one trained net, on the test set and the same S prior draws."""
    c = net.encode(data.test_x)[0]  # (N, L) codes
    landed = data.test_y[nearest_codes(z_prior, c, neighbours)[1]].mode(1).values
    shares = torch.bincount(landed, minlength=10) / S
    recon_each = F.binary_cross_entropy_with_logits(net.decode(c), data.test_x, reduction="none").sum(-1)  # (N,)
    return {"spread": c.std(0).mean().item(), "inside": (c.norm(dim=1) < radius).float().mean().item(),
            "distance": 0.5 * (shares - data_shares).abs().sum().item(),
            "distortion": recon_each.mean().item(), "distortion_each": recon_each}


pairs = {0: (model, autoencoder), **{seed: (fit_vae(seed), fit_autoencoder_seed(seed)) for seed in (1, 2)}}
rows = {seed: [measures(net) for net in pair] for seed, pair in pairs.items()}  # [VAE, autoencoder] per seed
print(f"{'seed':>4}  {'spread of codes':>17}  {'inside the circle':>17}  {'distance of shares':>18}  "
      f"{'-log p(x|z = mu)':>17}      (VAE / autoencoder)")
for seed, (v, a) in rows.items():
    print(f"{seed:4d}  {v['spread']:7.2f} / {a['spread']:<7.2f}  {v['inside']:7.1%} / {a['inside']:<7.1%}  "
          f"{v['distance']:8.2f} / {a['distance']:<7.2f}  {v['distortion']:7.2f} / {a['distortion']:<7.2f}")
holds(all(a["spread"] > 3 * v["spread"] for v, a in rows.values()),
      "for every seed, the autoencoder's codes spread more than three times as wide", full_only=True)
holds(all(v["inside"] > a["inside"] + 0.3 for v, a in rows.values()),
      "for every seed, over 30 points more of the VAE's codes lie inside the circle", full_only=True)
holds(all(a["distance"] > 3 * v["distance"] for v, a in rows.values()),
      "for every seed, the autoencoder's prior draws land more than three times as far from the test set's shares",
      full_only=True);

# %% [markdown]
# In reconstruction the autoencoder is ahead on average, but not for every seed. Three seeds cannot
# settle which is better, so whatever the KL term costs in reconstruction lies within the spread
# between seeds.

# %%
better, se = compare([a for v, a in rows.values()], [v for v, a in rows.values()], key="distortion_each")
print(f"the autoencoder reconstructs better by {', '.join(f'{b:+.2f}' for b in better)} nats, seed by seed "
      f"(on the same test images; standard error over the images {se:.2f})")
# settled (vaelib.study) names a direction only when every seed is beyond three image standard errors
# and the seeds' mean is beyond three of its own standard errors; 0 means neither direction stands.
holds(better.mean() > 0 and better.min() < 0, "the autoencoder is ahead on average but not for every seed",
      full_only=True)
holds(settled(better, se) == 0, "three seeds do not settle which reconstructs better", full_only=True);

# %% [markdown]
# **What the KL term buys.** Nothing in the autoencoder's loss says where its codes should lie. Their
# scale and shape are whatever training gave, and a distribution to draw new codes from must be found
# afterwards. The VAE's KL term pulls each $q(z\mid x)$, and with it the codes, towards
# $\mathcal N(0, I)$. Decoding $z\sim p(z)$ then generates digits. The ELBO is also a bound on
# $\log p(x)$, which the autoencoder's loss is not.

# %% [markdown]
# ## Summary
#
# - Whether a code keeps its digit's class is measured by its nearest neighbours' vote, not judged by eye.
# - The decoded grid is the generative model laid out on the plane: $z_1$ across, $z_2$ up, each tile
#   centred on its $z$.
# - The embedding uses posterior means. The aggregate posterior's variance,
#   $\mathrm{Var}(\mu_j) + \mathbb E[\sigma_j^2]$, is close to the prior's 1.
# - A plain autoencoder puts its codes on a scale of its own, for every seed. The KL term makes
#   $\mathcal N(0, I)$ a distribution to draw codes from. Its cost in reconstruction, if any, is within
#   the spread between seeds.

# %% [markdown]
# ## Exercises
#
# 1. Interpolate: write a function that returns `n` points evenly spaced on the straight line from
#    one code to another, both ends included. The next cell checks it. The cell after decodes the line
#    between two test digits of different classes, with your function once it passes.

# %% tags=["solution"]
def my_interpolate(z_a, z_b, n):
    """n points evenly spaced from z_a to z_b, both included. Shapes: (L,), (L,) -> (n, L)."""
    # Hint: each point is a weighted average of the two ends, with weights that add up to 1.
    # torch has a function for n evenly spaced numbers, ends included. The result is (n, L).
    t = torch.linspace(0, 1, n).unsqueeze(1)
    return (1 - t) * z_a + t * z_b


# %% tags=["nbval-check-output"]
interpolate = check_interpolate(my_interpolate).use()

# %%
# the first 1 and the first 8 in the test set whose codes lie among their own class's codes
a, b = (int(((data.test_y == digit) & ~elsewhere).nonzero()[0]) for digit in (1, 8))
with torch.no_grad():
    line = interpolate(mu[a], mu[b], 10)
    decoded = torch.sigmoid(model.decode(line))
fig, axes = plt.subplots(1, 10, figsize=(12, 1.9), layout="constrained")
for ax, image, point in zip(axes, decoded, line):
    ax.imshow(image.reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"({point[0]:.1f}, {point[1]:.1f})", fontsize=9)
    ax.axis("off")
fig.suptitle(f"Decoder means on the line from the code of test image {a} (a 1) to that of test image {b} "
             f"(an 8); z above each");

# %% [markdown]
# 2. Draw the posterior standard deviations $\sigma_\phi(x)$ as ellipses on the embedding for 30
#    test digits. Which digits is the encoder least sure about?

# %% [markdown] tags=["answer"]
# **Answer.** The encoder is least sure about digits far out at the edge of the embedding, not about
# digits between two classes. The widest posteriors (largest area $\sigma_1\sigma_2$) lie more than
# twice as far from the origin as the median code. They lie among another class's codes less often
# than the average digit. Each ellipse is drawn enlarged, by the factor printed, to be visible.

# %% tags=["answer"]
from matplotlib.patches import Ellipse

std = (0.5 * logvar).exp()  # (N, L)
enlarged = max(1, round(0.1 * mu.std(0).mean().item() / std.mean().item()))  # mean ellipse: a tenth of the spread
print(f"mean posterior std {std.mean():.3f}, spread of the codes {mu.std(0).mean():.2f}: ellipses x {enlarged}")
fig = plot.plot_embedding(model, data.test_x, data.test_y, title=f"30 posteriors, one std x {enlarged}")
for i in range(30):
    fig.axes[0].add_patch(Ellipse(mu[i].tolist(), *(2 * enlarged * std[i]).tolist(), fill=False, color="black"))
unsure = std.prod(1).topk(100).indices  # the 100 digits with the widest posteriors
common = torch.bincount(data.test_y[unsure], minlength=10).topk(3)
print(f"the 100 widest posteriors: {std.prod(1)[unsure].mean() / std.prod(1).mean():.1f} times the mean area; "
      f"most common labels " + ", ".join(f"{d} ({n})" for n, d in zip(*(t.tolist() for t in common))))
print(f"among another class's codes: {elsewhere[unsure].float().mean():.0%} of them, "
      f"{elsewhere.float().mean():.0%} of all test digits")
radius_unsure, radius_all = mu[unsure].norm(dim=1).median(), mu.norm(dim=1).median()
print(f"median distance of their codes from the origin: {radius_unsure:.2f}, of all codes {radius_all:.2f}")
fig = plot.plot_digits(data.test_x[unsure[:16]], rows=2, title="the 16 test digits with the widest posteriors")
holds(radius_unsure > 2 * radius_all, "the widest posteriors lie more than twice as far out as the median code",
      full_only=True)
holds(elsewhere[unsure].float().mean() < elsewhere.float().mean(),
      "they lie among another class's codes less often than the average digit", full_only=True);

# %% [markdown]
# 3. Guess first: for which test digits would you expect the true posterior $p(z\mid x)$ to be far
#    from a Gaussian? Then test your guess. With two latent dimensions the true posterior can be
#    computed on a grid. `vaelib.exact.posterior_grid(model, x, half_width, spacing)` returns
#    $\log p(z\mid x)$ on a square grid; its docstring says how the points are laid out. A spacing of
#    0.02 resolves the narrowest posteriors. Measure how far each is from the Gaussian with its own
#    mean and covariance.

# %% [markdown] tags=["answer"]
# **Answer.** A natural guess: digits whose codes lie where two classes meet. Such a digit might be
# explained by two regions of $z$, one in each class, and then $p(z\mid x)$ has two modes. The guess
# holds only in part. Posteriors far from a Gaussian are about three times as common among digits
# whose neighbours split evenly between two labels as among digits whose neighbours all agree. Yet in
# both groups most posteriors are close to a Gaussian.
#
# The measure is $\mathrm{KL}(p(z\mid x)\,\|\,\mathcal N(m, C))$, with $m$ and $C$ the posterior's own
# mean and covariance: 0 for a Gaussian. We call a posterior far from Gaussian above 0.1 nats.

# %% tags=["answer"]
from vaelib.exact import grid_points, posterior_grid


@torch.no_grad()
def non_gaussianity(x, spacing, half_width=4.0):
    """KL(p(z|x) || N(m, C)) in nats, m and C the true posterior's mean and covariance, on the grid.
    Shapes: (n, D) -> (n,)."""
    log_post, z1, z2 = posterior_grid(model, x, half_width, spacing)  # (n, G, G)
    z = grid_points(z1, z2).reshape(len(z2), len(z1), 2)  # [i, j] = (z1[j], z2[i]), as in log_post
    mass = log_post.exp() * spacing**2  # (n, G, G), sums to 1 for each digit
    m = torch.einsum("nij,ijk->nk", mass, z)  # (n, 2)
    C = torch.einsum("nij,ijk,ijl->nkl", mass, z, z) - m[:, :, None] * m[:, None, :]  # (n, 2, 2)
    log_gauss = torch.distributions.MultivariateNormal(m[:, None, None], C[:, None, None]).log_prob(z)
    return (mass * (log_post - log_gauss)).sum((1, 2))


# %% tags=["answer"]
neighbour_labels = data.test_y[nearest_codes(mu, mu, neighbours, skip_self=True)[1]]  # (N, 10)
top_two = torch.stack([(neighbour_labels == d).sum(1) for d in range(10)], 1).topk(2, dim=1).values  # (N, 2)
central = mu.norm(dim=1) < 2.5  # so that the grid over [-4, 4]^2 holds each posterior
groups = {"split evenly": central & (top_two[:, 0] == top_two[:, 1]), "all agree": central & (top_two[:, 0] == 10)}
per_group, spacing = (8, 0.05) if SMOKE else (200, 0.02)  # the narrowest posteriors have a std near 0.01
far_share = {}
for name, member in groups.items():
    chosen = member.nonzero()[:, 0]
    chosen = chosen[torch.randperm(len(chosen), generator=torch.Generator().manual_seed(5))[:per_group]]
    kls = torch.cat([torch.zeros(0)] + [non_gaussianity(data.test_x[chosen[i:i + 50]], spacing)
                                        for i in range(0, len(chosen), 50)])  # a barely trained model may have none
    far_share[name] = (kls > 0.1).float().mean().item()
    median = kls.median().item() if len(kls) else math.nan
    print(f"{name:>12}: {len(chosen)} digits, median {median:.3f} nats; {far_share[name]:.1%} above 0.1 nats")
split, agree = far_share.values()
se_shares = math.sqrt(split * (1 - split) / per_group + agree * (1 - agree) / per_group)  # of the difference
holds(split > 2 * agree and split - agree > 3 * se_shares,
      "far-from-Gaussian posteriors are over twice as common among the split digits, by over 3 standard errors",
      full_only=True)
holds(max(split, agree) < 0.25, "in both groups, over three quarters of the posteriors are near a Gaussian",
      full_only=True);

# %% [markdown]
# 4. Give the autoencoder a prior after training: fit a Gaussian $\mathcal N(m, C)$ to its codes
#    and decode draws from it. Does that fix its samples? What does it still not give you?

# %% [markdown] tags=["answer"]
# **Answer.** It helps, but only half way. The fitted Gaussian's draws land among the digits in
# shares closer to the test set's than $\mathcal N(0, I)$'s, though not as close as the VAE's. More of
# them land far from every code, measured as above.

# %% tags=["answer"]
m, C = codes["autoencoder"].mean(0), torch.cov(codes["autoencoder"].T)  # (L,), (L, L)
z_fitted = m + torch.randn(S, L, generator=torch.Generator().manual_seed(4)) @ torch.linalg.cholesky(C).T  # (S, L)
landed = data.test_y[nearest_codes(z_fitted, codes["autoencoder"], neighbours)[1]].mode(1).values
fitted_distance = 0.5 * (torch.bincount(landed, minlength=10) / S - data_shares).abs().sum()
fitted_far = (nearest_codes(z_fitted, codes["autoencoder"], 1)[0] > limit["autoencoder"]).float().mean()
print(f"distance of the digit shares from the test set's: fitted Gaussian {fitted_distance:.2f}, "
      f"N(0, I) {distance['autoencoder']:.2f}, the VAE with N(0, I) {distance['VAE']:.2f}")
print(f"draws far from every code: fitted Gaussian {fitted_far:.1%}, N(0, I) {far['autoencoder']:.1%}")
holds(distance["VAE"] < fitted_distance < distance["autoencoder"],
      "the fitted Gaussian's shares lie between N(0, I)'s and the VAE's", full_only=True)
holds(fitted_far > far["autoencoder"], "more of its draws land far from every code", full_only=True)
with torch.no_grad():
    fig = plot.plot_digits(torch.sigmoid(autoencoder.decode(z_fitted[:36])), rows=6,
                           title="autoencoder: decoder means for z ~ fitted Gaussian")

# %% [markdown] tags=["answer"]
# A Gaussian as wide as the codes reaches the outer clusters that $\mathcal N(0, I)$ missed, and the
# empty space between them. Nothing in the autoencoder's training made its codes Gaussian. The fitted
# density does make it a latent-variable model, $p(x) = \int p(x\mid z)\,\mathcal N(z; m, C)\,dz$,
# whose $\log p(x)$ notebook 6's quadrature could compute.
