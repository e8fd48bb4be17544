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
# # 5. Looking at what the VAE learned
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/05_visualisation.ipynb)
#
# With a two-dimensional latent space we can *see* the model: what it reconstructs, what it
# generates from the prior $p(z)=\mathcal N(0, I)$, how the decoder maps every point of the latent
# plane to an image, and where the encoder puts each test digit. At the end we train a plain
# autoencoder beside it, to see what the KL term buys.
#
# This notebook loads the model that notebook 4 saved. If you have not run notebook 4, it says so
# and trains a small model here instead.

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
from vaelib.exercises import check_interpolate
from vaelib.model import VAE
from vaelib.runs import trained
from vaelib.study import compare, settled
from vaelib.train import History, course_model, evaluate_terms, lr_factor, train
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
# Left: the negative ELBO per image on the training batches (mean over each epoch) and on the whole
# test set after each epoch. The test set is binarised once, so its curve is not blurred by
# resampling; the training loss, a mean over the epoch's steps, is drawn at the middle of its epoch.
# Then the test set's two terms, the distortion $-\mathbb E_q[\log p(x\mid z)]$ and the rate
# $\mathrm{KL}(q(z\mid x)\,\|\,p(z))$, each in a panel and on a scale of its own.

# %%
plot.plot_history(history, title=f"Negative ELBO during training ({data.source} data)")
rate, total = history.test_kl[-1], history.test_neg_elbo[-1]
print(f"after {history.step[-1]:,} steps: distortion {total - rate:.2f} + rate {rate:.2f} nats per image; "
      f"the rate is {rate / total:.1%} of the total")

# %% [markdown]
# The rate bounds what the code can tell the decoder about each image, in nats; the distortion is
# what the decoder, given the code, is still unsure of.
#
# From here on the *codes* of the $N$ test digits are their posterior means $\mu_\phi(x)$; the
# log-variances are kept for later.

# %%
with torch.no_grad():
    mu, logvar = model.encode(data.test_x)  # (N, L) each: q(z|x) for every test digit
N, L = mu.shape
print(f"N = {N:,} test digits, L = {L} latent dimensions")

# %% [markdown]
# ## Reconstructions, and which class each code lies among
#
# With two latent numbers per image, how much of a digit survives the trip through $z$? Rather than
# judge by eye, measure where each code lies: the label most common among its 10 nearest
# neighbours, the posterior means of the other test digits. When that
# label is not the digit's own, its code sits among another class's codes, and the decoder, which
# sees only $z$, has nothing to tell it from them.

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
# The vote of the neighbours, and the pairs of classes it confuses most, in either direction:

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
# Now the first 16 test digits $x$ (with their labels) above the decoder's pixel probabilities
# $\sigma(\mathrm{logits}(\mu_\phi(x)))$ at the posterior mean, each titled with the vote of its
# code's neighbours, in red where it is not the digit's label.

# %%
plot.plot_reconstructions(model, data.test_x, data.test_y, n=16, code_labels=vote)
moved = [f"a {int(y)} among {int(v)}s" for y, v in zip(data.test_y[:16], vote[:16]) if y != v]
print(f"{len(moved)} of these 16 codes lie among another class's" + (": " + ", ".join(moved) if moved else ""))

# %% [markdown]
# A reconstruction whose title is red is drawn from a region of the plane the decoder shares with
# another class: it is no evidence that the model kept that digit's class. A black title says only
# that the code lies among its own class's codes; near the border with another class (4 and 9, the
# pair confused most, above all) the decoded image can still look like a blend of the two.

# %% [markdown]
# ## Samples from the prior
#
# The generative model in action: $z\sim\mathcal N(0, I)$, then the pixel probabilities
# $\sigma(\mathrm{logits}(z))$. We show the probabilities, as is usual, rather than binary images
# drawn from them.

# %%
plot.plot_prior_samples(model, n=64, seed=0);

# %% [markdown]
# ## The latent space, decoded
#
# A $21\times 21$ grid of points $z=(z_1, z_2)$ over $[-4, 4]^2$, each decoded. The horizontal axis is
# $z_1$, increasing to the right, the vertical axis $z_2$, increasing upwards, and each tile is
# centred on the point it decodes. (The original notebook drew a $20\times 20$ grid, built with
# `torch.meshgrid` without `indexing=`, and so put $z_1$ down the rows.) With 21 points, $z = 0$
# and the ticks at $\pm 2$ and $\pm 4$ are grid points.

# %%
grid = plot.plot_latent_grid(model, n=21, half_width=4.0)

# %% [markdown]
# Check the figure against the model: read off the figure the tile that covers a point $z$, through
# the image's extent in axis units, and compare it with decoding that $z$; then check that every
# tick marks a grid point.

# %%
image = grid.axes[0].images[0]
left, right, bottom, top = image.get_extent()
tile = (right - left) / 21  # the width of one tile, in units of z


def tile_at(z1, z2):
    """The 28 x 28 tile of the figure drawn where the axes read (z1, z2)."""
    col, row = int((z1 - left) // tile), int((top - z2) // tile)
    return torch.as_tensor(image.get_array()[28 * row:28 * (row + 1), 28 * col:28 * (col + 1)]).float()


# %% [markdown]
# A corner, a point inside and the origin:

# %% tags=["nbval-check-output"]
for z in [(-4.0, 4.0), (2.0, -1.2), (0.0, 0.0)]:
    with torch.no_grad():
        decoded = torch.sigmoid(model.decode(torch.tensor([z]))).reshape(28, 28)
    print(f"the tile at z = {z} is the decoding of that z:", torch.allclose(tile_at(*z), decoded, atol=1e-5))
points = torch.linspace(-4, 4, 21)
ticks = [t for t in grid.axes[0].get_xticks() if abs(t) <= 4] + [t for t in grid.axes[0].get_yticks() if abs(t) <= 4]
print("every tick marks a grid point:", all((points - t).abs().min() < 1e-6 for t in ticks))

# %% [markdown]
# How much of the grid matters? The prior's mass in the middle square, beside the share of the test
# codes there:

# %%
prior_square = math.erf(2 / math.sqrt(2)) ** 2  # P(|z_1| < 2 and |z_2| < 2) under N(0, I)
codes_square = (mu.abs() < 2).all(1).float().mean()
print(f"in [-2, 2]^2: {prior_square:.1%} of the prior's mass, {codes_square:.1%} of the test codes")

# %% [markdown]
# Outside that square the tiles show what the decoder does where the prior draws only the rest of
# its mass. Look in the grid for the pairs of digits printed as most confused above, and for where
# their tiles meet.

# %% [markdown]
# ## Where the encoder puts the test digits
#
# Each test image at its posterior mean $\mu_\phi(x)$, coloured by its label, which the model never
# saw; each digit is written at the median of its class's codes. (The original notebook plotted
# one random sample $z\sim q(z\mid x)$ per image instead, which scatters each point by its posterior
# standard deviation.)

# %%
plot.plot_embedding(model, data.test_x, data.test_y);

# %% [markdown]
# No label was used in training. Do the codes of one class lie together all the same? Compare the
# share of digits whose neighbours vote for their own label with the same share after shuffling the
# labels, which keeps the class sizes and breaks any link to the codes:

# %%
shuffled = data.test_y[torch.randperm(N, generator=torch.Generator().manual_seed(0))]
chance = shuffled[nearest_codes(mu, mu, neighbours, skip_self=True)[1]].mode(1).values == shuffled
own = 1 - elsewhere.float().mean()
print(f"neighbours vote for the digit's own label: {own:.1%} of the test digits; "
      f"with shuffled labels: {chance.float().mean():.1%}")
print(f"codes of one class lie together {own / chance.float().mean():.1f} times as often as chance would have it")
if not SMOKE:
    assert own > 5 * chance.float().mean()

# %% [markdown]
# They do, several times as often as chance (asserted), and without labels: the ELBO rewards codes that
# let the decoder reconstruct, and digits of one class look alike.

# %% [markdown]
# ## How close is the embedding to the prior?
#
# The KL term pulls each $q(z\mid x)$ towards $p(z)=\mathcal N(0, I)$; what a sample from the model
# needs is that the *aggregate posterior* $q(z) = \frac1N\sum_x q(z\mid x)$, the distribution of
# codes over the whole data, match $p(z)$. Its mean is the mean of $\mu$, and by the law of total
# variance its variance in dimension $j$ is $\mathrm{Var}(\mu_j) + \mathbb E[\sigma_j^2]$: the
# spread of the means plus the mean spread around them.

# %%
variance_of_mu, mean_variance = mu.var(0), logvar.exp().mean(0)  # (L,) each
aggregate_variance = variance_of_mu + mean_variance
for j in range(L):
    print(f"z_{j + 1}: mean {mu[:, j].mean():+.3f} (prior 0); variance {aggregate_variance[j]:.3f} "
          f"(prior 1) = Var(mu) {variance_of_mu[j]:.3f} + E[sigma^2] {mean_variance[j]:.4f}")
share = variance_of_mu.sum() / aggregate_variance.sum()
print(f"the spread of the means makes up {share:.1%} of the variance")
if not SMOKE:
    assert share > 0.9 and (aggregate_variance - 1).abs().max() < 0.3

# %% [markdown]
# Each $q(z\mid x)$ is narrow: the spread of the means makes up more than 90% of the aggregate variance
# (asserted), so the codes of different digits, not the noise around one, fill $q(z)$; its variance is
# within 0.3 of the prior's 1 in each dimension (asserted), close but not equal.
#
# Nothing forces an exact match: averaged over the data, the KL term equals the mutual information
# between $x$ and $z$ under $q$ plus $\mathrm{KL}(q(z)\,\|\,p(z))$ (Hoffman & Johnson, 2016), so a
# code that tells the decoder something about $x$ costs nats even where $q(z)$ matches $p(z)$.
# Both parts can be measured: draw $S$ codes from $q(z)$ (a test digit at random, then
# $z\sim q(z\mid x)$), and average $\log q(z) - \log p(z)$, where $q(z)$ is the mixture of all
# $N$ posteriors.

# %%
S = 2000
pick = torch.randint(N, (S,), generator=torch.Generator().manual_seed(2))
z_aggregate = mu[pick] + (0.5 * logvar[pick]).exp() * torch.randn(S, L, generator=torch.Generator().manual_seed(3))
posterior = torch.distributions.Normal(mu, (0.5 * logvar).exp())  # N Gaussians, each (L,)
log_qz = torch.stack([posterior.log_prob(z).sum(-1).logsumexp(0) for z in z_aggregate]) - math.log(N)  # (S,)
log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z_aggregate).sum(-1)
gap = log_qz - log_pz
print(f"KL(q(z) || p(z)) ≈ {gap.mean():.2f} ± {gap.std() / math.sqrt(S):.2f} nats of the mean KL term {kl:.2f}; "
      f"the rest, {kl - gap.mean():.2f} nats, is the mutual information between x and z")

# %% [markdown]
# ## A plain autoencoder beside the VAE
#
# A question students ask: what does the VAE do that a plain autoencoder does not? Take the same
# layers, but use the encoder's mean as a deterministic code, $z = \mu_\phi(x)$: no sampling, no
# KL term. The loss is $-\log p(x\mid z = \mu_\phi(x))$, summed over pixels and averaged over the
# batch. (The VAE module's `logvar_head` stays unused.)

# %%
def autoencoder_loss(autoencoder, x):
    """-log p(x | z = mu(x)) averaged over the batch: no sampling, no KL. Shapes: (B, D) -> ()."""
    logits = autoencoder.decode(autoencoder.encode(x)[0])
    log_px_z = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)  # (B,)
    return -log_px_z.mean()


# %% [markdown]
# The same training as the VAE's, written out: as many steps as the VAE took (printed; 100 in the smoke
# setting), $B = 100$ training images per step, each epoch a new random order of the training set,
# binarised afresh, and Adam at the course's learning rate with the same schedule (held, then decayed
# linearly to 0 over the last quarter: `lr_factor` from `vaelib.train`). Only the loss differs. While it
# trains, it prints the loss averaged over the steps since the last line (one batch alone varies by
# several nats). It is trained once: `trained` (from `vaelib.runs`) loads it when it was trained before
# with these settings, and says which happened.

# %%
ae_steps, B = (100 if SMOKE else history.step[-1]), 100


def fit_autoencoder(seed=0):
    """The VAE's training budget and schedule for the autoencoder: ae_steps Adam steps on freshly binarised batches."""
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
        if (step + 1) % (ae_steps // 5) == 0:
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
# First the codes: their scale, how well they reconstruct the test set, and how many fall where
# the prior draws from, inside the circle that holds 95% of $\mathcal N(0, I)$, of radius
# $\sqrt{-2\log 0.05} \approx 2.45$.

# %%
radius = math.sqrt(-2 * math.log(0.05))
with torch.no_grad():
    codes = {"VAE": mu, "autoencoder": autoencoder.encode(data.test_x)[0]}
    nets = {"VAE": model, "autoencoder": autoencoder}
    distortion = {name: autoencoder_loss(net, data.test_x).item() for name, net in nets.items()}  # same loss
inside = {name: (c.norm(dim=1) < radius).float().mean().item() for name, c in codes.items()}
for name in nets:
    print(f"{name:>11}: std of codes {[round(s, 2) for s in codes[name].std(0).tolist()]}, "
          f"test -log p(x|z = mu(x)) {distortion[name]:.2f} nats, {inside[name]:.1%} of codes inside the circle")

# %% [markdown]
# Side by side, with the prior's 95% circle drawn dashed in both:

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 6), layout="constrained")
for ax, (name, net) in zip(axes, nets.items()):
    plot.plot_embedding(net, data.test_x, data.test_y, ax=ax, title=f"{name}: codes of the test digits",
                        legend=False)
    ax.add_patch(Circle((0, 0), radius, fill=False, linestyle="--", linewidth=2, color="black", zorder=5))
    ax.set(xlabel="$z_1$ (code)", ylabel="$z_2$ (code)")

# %% [markdown]
# Holes: how much of the region the codes span lies far from every code? Take the box from the 1st
# to the 99th percentile of the codes in each dimension, a $G\times G$ grid of points in it, and
# count a point as in a hole when its nearest code is farther away than 99% of the codes are from
# theirs, a scale each embedding sets itself. The same test for $S$ draws from the prior.

# %%
G = 100
z_prior = torch.randn(S, L, generator=torch.Generator().manual_seed(1))
far, limit = {}, {}
for name, c in codes.items():
    limit[name] = nearest_codes(c, c, 1, skip_self=True)[0].quantile(0.99)
    low, high = c.quantile(0.01, dim=0), c.quantile(0.99, dim=0)
    axis = [torch.linspace(low[j], high[j], G) for j in range(L)]
    box = torch.stack(torch.meshgrid(*axis, indexing="xy"), -1).reshape(-1, L)  # (G * G, L)
    holes = (nearest_codes(box, c, 1)[0] > limit[name]).float().mean()
    far[name] = (nearest_codes(z_prior, c, 1)[0] > limit[name]).float().mean()
    print(f"{name:>11}: {holes:.1%} of the box in holes; {far[name]:.1%} of prior draws far from every code")

# %% [markdown]
# The two numbers measure different things. The first is about the codes alone: how much of the region
# they span is empty. The second is about $\mathcal N(0, I)$ against the codes, and a draw near *some*
# code is not yet a good draw: where the codes spread much wider than the prior (their standard
# deviations are printed above), $\mathcal N(0, I)$ only ever draws the middle of the embedding, near
# codes of the few digits that lie there. Decoding the draws shows which.

# %% [markdown]
# Now decode the same 36 draws $z\sim\mathcal N(0, I)$ with both decoders:

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 6.3), layout="constrained")
for ax, (name, net) in zip(axes, nets.items()):
    samples = net.sample(36, generator=torch.Generator().manual_seed(0))
    ax.imshow(plot.image_grid(samples, rows=6).numpy(), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"{name}: decoded z ~ N(0, I)")
    ax.axis("off")

# %% [markdown]
# Which digits do the prior's draws land among? The neighbours' vote, as above, for each of the
# $S$ draws, against the share of each digit in the test set; the total variation distance sums the
# differences and halves them (0: the same shares, 1: no overlap).

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
# One VAE and one autoencoder are one draw each of their training's randomness (the initial weights and
# the order of the batches). Two more of each were trained from seeds 1 and 2, with the same settings
# (they are loaded here, not trained), and the next cell measures every pair as above: the spread of the
# codes (the mean of their two standard deviations), the share inside the prior's circle, the distance
# of the prior draws' digit shares from the test set's, and the test $-\log p(x\mid z = \mu(x))$.

# %%
def fit_vae(seed):
    """Notebook 4's course model, trained from another seed (the settings of python -m vaelib train; appendix
    notebook 9 loads the same models)."""
    cfg = TrainConfig(epochs=1 if SMOKE else 20, seed=seed)

    def train_now():
        seed_everything(seed)
        vae = VAE(cfg.model)
        return vae, train(vae, data, cfg)

    settings = {**train_settings(asdict(cfg)), "data": data.source}
    return trained(settings, train_now, f"course VAE, {ae_steps:,} steps, seed {seed}").model.eval()


def fit_autoencoder_seed(seed):
    return trained(autoencoder_settings(seed), lambda: fit_autoencoder(seed), f"autoencoder, {ae_steps:,} steps, "
                   f"seed {seed}").model


@torch.no_grad()
def measures(net):
    """The four numbers above for one trained net, on the test set and the same S prior draws."""
    c = net.encode(data.test_x)[0]  # (N, L) codes
    landed = data.test_y[nearest_codes(z_prior, c, neighbours)[1]].mode(1).values
    shares = torch.bincount(landed, minlength=10) / S
    logits = net.decode(c)
    recon_each = F.binary_cross_entropy_with_logits(logits, data.test_x, reduction="none").sum(-1)  # (N,)
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
if not SMOKE:
    for v, a in rows.values():  # every seed: wider codes, fewer in the circle, prior draws among the wrong digits
        assert a["spread"] > 3 * v["spread"] and v["inside"] > a["inside"] + 0.3 and a["distance"] > 3 * v["distance"]
better, se = compare([a for v, a in rows.values()], [v for v, a in rows.values()], key="distortion_each")
print(f"the autoencoder reconstructs better by {', '.join(f'{b:+.2f}' for b in better)} nats, seed by seed "
      f"(image se {se:.2f})")
if not SMOKE:
    assert settled(better, se) == 0  # no direction three seeds can settle

# %% [markdown]
# For every seed (asserted): the autoencoder's codes spread several times as wide as the VAE's; far
# fewer of them lie inside the prior's 95% circle (about 40% against 90%); and draws from
# $\mathcal N(0, I)$ land among the digits in shares far from the test set's, where the VAE's come
# close. In reconstruction the autoencoder is ahead on average, but not for every seed, and three seeds
# cannot settle it (`vaelib.study.settled`: every seed beyond three image standard errors and the
# seeds' mean beyond three of its own; asserted): whatever the KL term costs in
# reconstruction here is within the spread between seeds.
#
# **What the KL term buys.** Nothing in the autoencoder's loss says where its codes should lie:
# their scale and shape are whatever training happened to give, and a distribution to draw new
# codes from has to be found afterwards. The VAE's KL term pulls each $q(z\mid x)$, and with it the
# codes, towards $\mathcal N(0, I)$, so that decoding $z\sim p(z)$ is a way to generate digits,
# and the ELBO it completes is a bound on $\log p(x)$ that the autoencoder's loss is not.

# %% [markdown]
# ## Summary
#
# - Whether a code keeps its digit's class is measured, not judged by eye: the vote of the code's
#   nearest neighbours gives the share of test digits among another class's codes, and which meet.
# - The decoded grid is the generative model laid out on the plane: $z_1$ across, $z_2$ up, each
#   tile centred on its $z$, as checked against the figure.
# - The embedding uses posterior *means*; the aggregate posterior's variance per dimension is
#   $\mathrm{Var}(\mu_j) + \mathbb E[\sigma_j^2]$, compared with the prior's 1.
# - A plain autoencoder of the same layers, trained the same way, has codes on a scale of its own, for
#   every seed; the KL term is what makes $\mathcal N(0, I)$ a distribution to sample codes from, at a
#   reconstruction cost, if any, that three seeds cannot settle.

# %% [markdown]
# ## Exercises
#
# 1. Interpolate: write a function that returns `n` points evenly spaced on the straight line from
#    one code to another, both ends included. The next cell checks it and, when it is right, decodes
#    the line between the posterior means of two test digits of different classes.

# %% tags=["solution"]
def my_interpolate(z_a, z_b, n):
    """n points evenly spaced from z_a to z_b, both included. Shapes: (L,), (L,) -> (n, L)."""
    raise NotImplementedError(
        'Hint: each point is a weighted average of the two ends, with weights that add '
        'up to 1. torch has a function for n evenly spaced numbers, ends included. The '
        'result is (n, L).'
    )


# %% tags=["nbval-check-output"]
interpolation_ok = check_interpolate(my_interpolate)

# %%
if interpolation_ok:  # once the check passes: decode the line between two digits
    # the first 1 and the first 8 whose codes lie among their own class's codes
    a, b = (int(((data.test_y == digit) & ~elsewhere).nonzero()[0]) for digit in (1, 8))
    with torch.no_grad():
        line = my_interpolate(mu[a], mu[b], 10)
        decoded = torch.sigmoid(model.decode(line))
    fig, axes = plt.subplots(1, 10, figsize=(12, 1.9), layout="constrained")
    for ax, image, point in zip(axes, decoded, line):
        ax.imshow(image.reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"({point[0]:.1f}, {point[1]:.1f})", fontsize=9)
        ax.axis("off")
    fig.suptitle("Decoded codes on the line from a 1 to an 8, each among its class's codes (z in brackets)")

# %% [markdown]
# 2. Draw the posterior standard deviations $\sigma_\phi(x)$ as ellipses on the embedding for 30
#    test digits. Which digits is the encoder least sure about?

# %% [markdown]
# 3. Notebook 6 asks how good $q(z\mid x)$ really is. Before you open it, guess: for which digits in
#    the embedding would you expect the true posterior to be far from a Gaussian?

# %% [markdown]
# 4. Give the autoencoder a prior after training: fit a Gaussian $\mathcal N(m, C)$ to its codes
#    and decode draws from it. Does that fix its samples? What does it still not give you?
