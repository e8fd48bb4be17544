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
# # 6. How good is the approximation?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/06_exact_likelihood.ipynb)
#
# Training maximises the ELBO, a lower bound on $\log p_\theta(x)$. How far below the truth is it? With a
# two-dimensional latent space we can find out, because the integral
#
# $$p_\theta(x) = \int p_\theta(x\mid z)\,p(z)\,dz$$
#
# runs over a plane, and a grid can cover a plane. This notebook computes $\log p_\theta(x)$ to a hundredth
# of a nat, and with it the true posterior $p_\theta(z\mid x)$. It finds:
#
# 1. the importance-weighted bound $\mathrm{IWAE}_K$ closes the ELBO's gap for most digits, but not for the
#    few whose encoder misses the posterior;
# 2. an importance-sampling error bar is only as good as its effective sample size;
# 3. the ELBO falls short by exactly $\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p_\theta(z\mid x)\big)$;
# 4. most of that shortfall is the encoder's doing, not the Gaussian family's.

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
import copy
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.lines import Line2D

from vaelib.config import smoke
from vaelib.data import describe, load_mnist
from vaelib.diagnostics import benchmark_results
from vaelib.elbo import bernoulli_log_likelihood, log_normal, log_weights
from vaelib.evidence import holds
from vaelib.exact import converged_log_px, grid_points, log_px_grid, posterior_grid
from vaelib.exercises import check_iwae
from vaelib.model import load_checkpoint
from vaelib.train import course_model

SMOKE = smoke()
data = load_mnist("auto")

# %% [markdown]
# We use the model notebook 4 saved; without it, the next cell trains a small one. We study 300 test
# digits (20 in the smoke setting), drawn at random with a fixed seed. Not the first 300: MNIST's test
# file is ordered by writer. Images are labelled by their index in the MNIST test file.

# %%
model, _ = course_model(data, fallback_steps=40 if SMOKE else 3000)
chosen = torch.randperm(len(data.test_x), generator=torch.Generator().manual_seed(0))[:20 if SMOKE else 300]
x, labels = data.test_x[chosen], data.test_y[chosen]
print(f"{model.config}; {len(x)} test digits of {describe(data)}")

# %% [markdown]
# ## $\log p_\theta(x)$ on a grid
#
# Cover $[-a, a]^2$ with the points $z_g = (ih, jh)$, each standing for a cell of area $h^2$ (the
# rectangle rule):
#
# $$\log p_\theta(x) \approx \log \sum_g p_\theta(x\mid z_g)\,p(z_g)\,h^2
#   = \operatorname{logsumexp}_g\big[\log p_\theta(x\mid z_g) + \log p(z_g)\big] + 2\log h .$$
#
# The sum must stay in log space. $p_\theta(x\mid z)$ is about $e^{-140}$, and float32 stops at
# $e^{-103}$. Here is the sum for one digit, checked against the library's `log_px_grid`:

# %%
h, a = 0.05, 6.0  # [-6, 6]^2 for this first example; the library's grids cover [-8, 8]^2
axis = torch.arange(-round(a / h), round(a / h) + 1) * h  # (G,)
z = torch.cartesian_prod(axis, axis)  # (G * G, 2): every grid point
with torch.no_grad():  # 4,096 points at a time: decoding all of them at once would take half a gigabyte
    log_joint = torch.cat([bernoulli_log_likelihood(model.decode(zc), x[0]) + log_normal(zc)
                           for zc in z.split(4096)])  # (G * G,)
log_px0 = torch.logsumexp(log_joint, 0) + 2 * math.log(h)
print(f"{len(z):,} grid points; log p(x) of test image {int(chosen[0])}: {log_px0:.4f} nats")
torch.testing.assert_close(log_px0, log_px_grid(model, x[:1], a, h)[0], rtol=0, atol=1e-3)

# %% [markdown]
# How small must $h$ be? The ReLU decoder puts kinks in $\log p_\theta(x\mid z)$, so the rule's error is
# only guaranteed to fall like $h^2$, fourfold per halving. Predict whether ours does better. Here is the
# error for five digits, in float64, against a reference refined to $10^{-4}$ nats:

# %%
model64, x5 = copy.deepcopy(model).double(), x[:5].double()
reference, _, _ = converged_log_px(model64, x5, tol=1e-4)
spacings = [0.2, 0.1, 0.05] if SMOKE else [0.2, 0.1, 0.05, 0.025]
errors = torch.stack([(log_px_grid(model64, x5, 8.0, h) - reference).abs() for h in spacings])  # (spacings, 5)
for h, e in zip(spacings, errors):
    print(f"h = {h:<6}: largest error over the five digits {e.max():.2e} nats")
ratios = errors.max(1).values[:-1] / errors.max(1).values[1:]
print("error ratio per halving of h:", [f"{r:.1f}" for r in ratios.tolist()],
      "(4 would be O(h^2); larger is faster)")
holds((ratios > 4).all(), "the error falls faster than h^2: more than fourfold at every halving", full_only=True)

# %% [markdown]
# Ours does better: the error falls about tenfold or more per halving. Still, no spacing can be trusted
# in advance: the coarse ones are wider than many posteriors. So
# `converged_log_px` refines the grid image by image, only where each image's mass lies. It stops when
# two conditions hold: the estimate moves by less than $0.01$ nats, and the spacing is fine enough to
# resolve that image's posterior. The first alone can stop on two equally wrong estimates.

# %%
# How converged_log_px works (vaelib/exact.py has the full argument). Every image is first summed on a coarse
# grid, h = 0.1 over [-8, 8]^2, in tiles of 4 x 4 points. Each refinement halves h, image by image, only in the
# tiles within e^-40 of the image's largest tile (e^-20 after the first refinement) and their neighbours; the
# other tiles keep their last value. An image stops when (1) its estimate moved by less than tol = 0.01 nats and
# (2) h^2 times the curvature of log p(x, z), averaged over its mass, is at most 1 nat. While h is wider than
# the posterior, two levels can agree by chance on the same wrong sum; (2) cannot hold there. For Bernoulli
# pixels, log p(x|z) = x . l(z) - sum_d softplus(l_d(z)): one decoding of the grid points and one matrix
# product give every image's log-likelihood there.
exact, change, report = converged_log_px(model, x)
print(f"{report['refinements']} refinement(s) to spacing {report['finest_spacing']}; images refined at each: "
      f"{report['images_refined']}; {report['seconds']:.1f} s")
print(f"at its last refinement, the largest change of any image: {change.max():.5f} nats; the largest h^2 times "
      f"the curvature of log p(x, z) (at most 1 nat: the grid resolves the posterior): {report['max_image_drop']:.2f} "
      f"nats; mean log p(x) = {exact.mean():.3f} nats")

# %%
holds(report["converged"] and change.max() < 0.01 and report["max_image_drop"] <= 1,
      "every image's estimate has converged: it moved by less than 0.01 nats, on a grid that resolves its posterior");

# %% [markdown]
# ## $\mathrm{ELBO} \le \mathrm{IWAE}_K \le \log p_\theta(x)$
#
# With importance weights $w = p_\theta(x, z)/q_\phi(z\mid x)$, $z\sim q_\phi(z\mid x)$,
#
# $$\mathrm{ELBO}(x) = \mathbb E_q[\log w], \qquad
#   \mathrm{IWAE}_K(x) = \mathbb E\Big[\log \tfrac1K \textstyle\sum_{k=1}^K w_k\Big]
#   \quad\text{[Burda et al. 2016]}.$$
#
# By Jensen's inequality both lie below $\log p_\theta(x)$ in expectation, and $\mathrm{IWAE}_K$ rises with
# $K$ towards it. $\mathrm{IWAE}_1$ has the ELBO's expectation.
#
# **Exercise.** Write $\log \frac1K \sum_k w_k$ from the log weights $\log w_k$. It must not underflow:
# for a typical image every $\log w_k$ lies near $-140$, and $e^{-140}$ is 0 in float32. Log weights also differ
# by hundreds of nats between images, and within an image whose encoder misses the posterior. Write the
# trick by hand, without `torch.logsumexp`, which hides it. The rest of the notebook computes every bound
# with your function.

# %% tags=["solution"]
def my_iwae(log_w):
    """log (1/K) sum_k exp(log_w[k]) for each image. Shapes: (K, B) -> (B,)."""
    raise NotImplementedError(
        'Hint: a common factor can be taken out of a sum before the exponentials are '
        'computed; which factor keeps every term between 0 and 1, for every image?'
    )


# %% tags=["nbval-check-output"]
log_mean_exp = check_iwae(my_iwae).use()

# %% [markdown]
# Predict: will 5,000 draws bring $\mathrm{IWAE}_K$ to $\log p_\theta(x)$ for every digit? We draw 5,000
# log weights per image once. The ELBO is the mean of the first 1,000; $\mathrm{IWAE}_K$ uses the first
# $K$. So $\mathrm{IWAE}_1$ is one draw, noisier than the ELBO's mean of 1,000: the two differ by chance.

# %%
@torch.no_grad()
def draw_log_weights(model, x, mu, logvar, samples, chunk=50, seed=0):
    """log p(x, z_s) - log q(z_s|x) for `samples` draws z_s ~ q = N(mu, exp(logvar)). Shapes: (B, D) -> (S, B)."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([log_weights(model, x, mu, logvar, chunk, g) for _ in range(samples // chunk)])


with torch.no_grad():
    mu, logvar = model.encode(x)
Ks = [1, 10, 100, 1000] if SMOKE else [1, 10, 100, 1000, 5000]
log_w = draw_log_weights(model, x, mu, logvar, Ks[-1])  # (K, N)
elbo = log_w[:1000].mean(0)
elbo_se = log_w[:1000].std(0) / math.sqrt(1000)
bounds = {"ELBO": elbo} | {f"IWAE_{k}": log_mean_exp(log_w[:k]) for k in Ks}

# %% [markdown]
# Why not sample the prior instead? $p(x) = \mathbb E_{p(z)}[p(x\mid z)]$, so
# $\log\frac1K\sum_k p(x\mid z_k)$ with $z_k\sim p(z)$ estimates $\log p(x)$ too. It is
# $\mathrm{IWAE}_K$ with $q = p(z)$, and it needs no encoder.

# %%
@torch.no_grad()
def prior_sampling_estimate(model, x, k, seed=0):
    """log (1/K) sum_k p(x|z_k), z_k ~ N(0, I): importance sampling with the prior as proposal. (N, D) -> (N,)."""
    z = torch.randn(k, model.config.z_dim, generator=torch.Generator().manual_seed(seed))
    logits = model.decode(z)  # (K, D): each z decoded once, for every image
    log_px_z = x @ logits.T - F.softplus(logits).sum(-1)  # (N, K): sum_d x_d l_d - softplus(l_d), notebook 1's form
    return log_mean_exp(log_px_z.T)


bounds[f"prior_{Ks[-1]}"] = prior_sampling_estimate(model, x, Ks[-1])
print(f"{'':10s} {'mean':>9s} {'mean gap':>9s} {'median gap':>11s}   (nats; gap = log p(x) - estimate)")
for name, value in bounds.items():
    gap = exact - value
    print(f"{name:10s} {value.mean():9.3f} {gap.mean():9.3f} {gap.median():11.3f}")
print(f"{'log p(x)':10s} {exact.mean():9.3f}")
prior_gap, iwae_gap = exact - bounds[f"prior_{Ks[-1]}"], exact - bounds[f"IWAE_{Ks[-1]}"]
print(f"largest gap of any image: prior {prior_gap.max():.2f}, encoder (IWAE) {iwae_gap.max():.2f} nats")
one_draw = log_w[0] - elbo  # (N,): IWAE_1 minus the ELBO, one draw against the mean of 1,000
one_draw_se = one_draw.std() / math.sqrt(len(x))
print(f"IWAE_1 minus the ELBO: {one_draw.mean():+.3f} nats, standard error {one_draw_se:.3f} over the images")

# %% [markdown]
# With 5,000 draws, both estimates come within a tenth of a nat of $\log p(x)$ on the median digit. On
# the mean gap the prior wins, by more than a nat. The encoder's
# $q_\phi$ puts its draws where it believes the posterior is. It is right for most images, but it misses a
# few by many nats, and those carry the mean. The prior spreads its draws over the whole plane, so its
# worst gap stays a few nats, not tens.

# %%
holds(abs(one_draw.mean()) < 4 * one_draw_se, "IWAE_1 and the ELBO differ by less than four standard errors: "
      "one draw against the mean of 1,000, not a different bound")
holds(prior_gap.mean() < iwae_gap.mean() - 1, f"on the mean gap, the prior's {Ks[-1]:,} draws beat the encoder's by "
      f"more than a nat", full_only=True)
holds(max(prior_gap.median(), iwae_gap.median()) < 0.1, "on the median gap, both are within 0.1 nats",
      full_only=True)
holds(prior_gap.max() < 10 < iwae_gap.max(), "the prior's largest gap is under 10 nats, the encoder's above",
      full_only=True);

# %% [markdown]
# Yet the prior's estimate for a typical digit rests on a handful of draws. Count those that land within
# two standard deviations of $q_\phi$'s mean, in both coordinates:

# %%
z_prior = torch.randn(Ks[-1], 2, generator=torch.Generator().manual_seed(0))  # prior_sampling_estimate's draws
std = (0.5 * logvar).exp()  # (N, L)
inside = (((z_prior[None] - mu[:, None]) / std[:, None]).abs() < 2).all(-1).sum(1)  # (N,) draws per image
print(f"prior draws (of {Ks[-1]:,}) within 2 sd of q's mean: median {inside.median().item():.0f}, "
      f"fewest {inside.min().item()}; {(inside < 5).float().mean().item():.1%} of the images get fewer than 5")

# %%
holds(inside.median() < 20, f"the median digit's posterior catches fewer than 20 of the prior's {Ks[-1]:,} draws",
      full_only=True);

# %% [markdown]
# That works in two dimensions only. In fifty, a posterior fills a far smaller share of the prior. Here is the
# 784-200-200-50 model of notebook 7 (`benchmarks/results/burda/`):

# %%
burda_path = benchmark_results("burda") / "model.pt"  # an installed vaelib (Colab) has no benchmarks/results
if burda_path.exists():
    burda = load_checkpoint(burda_path).eval()
    x50 = x[:20 if SMOKE else 100]
    with torch.no_grad():
        mu50, logvar50 = burda.encode(x50)
    iwae50 = log_mean_exp(draw_log_weights(burda, x50, mu50, logvar50, Ks[-1]))
    prior50 = prior_sampling_estimate(burda, x50, Ks[-1])  # the same function as for the 2-D model
    print(f"L = {burda.config.z_dim}, {len(x50)} test images, {Ks[-1]} samples each: mean estimate of log p(x) "
          f"{iwae50.mean():.2f} with the encoder (IWAE), {prior50.mean():.2f} with the prior")
else:
    iwae50 = None
    print("the committed 50-D model (benchmarks/results/burda) is not in this installation: "
          "open this notebook from a clone of the repository or on Binder to see it")

# %%
if iwae50 is not None:
    holds((iwae50 - prior50).mean() > 10, "in 50 dimensions the prior's estimate is more than 10 nats lower on average")
else:
    print("– not checked here: the committed 50-D model is not in this installation");

# %% [markdown]
# ## How far to trust an error bar
#
# An importance-sampling error bar is computed from the draws that were made. It cannot see what they
# missed. Its quality follows the effective sample size $\mathrm{ESS} = (\sum_k w_k)^2 / \sum_k w_k^2$:
# one weight that dominates gives 1, even weights give $K$. The delta-method standard error of
# $\mathrm{IWAE}_K$ is the ESS in disguise, $\mathrm{se} = \sqrt{1/\mathrm{ESS} - 1/K}$.
#
# Predict: how often does $\mathrm{IWAE}_{5000} \pm 2\,\mathrm{se}$ contain $\log p(x)$? For a trustworthy
# error bar, about 95% of the time.

# %%
K = Ks[-1]
iwae, top_weights = bounds[f"IWAE_{K}"], log_w[:K]
ess = K * torch.exp(2 * log_mean_exp(top_weights) - log_mean_exp(2 * top_weights))  # (N,)
se = (1 / ess - 1 / K).clamp(min=0).sqrt()  # = sqrt((mean w^2 / (mean w)^2 - 1) / K), per_image_iwae's
excess = (iwae - exact) / se  # > 0 where the estimate lies above log p(x)
print(f"IWAE_{K} lies above log p(x) for {(excess > 0).sum()} of {len(x)} images")
print("effective samples   images   within 2 se   more than 2 se below")
cover = []
for label, low, high in [("fewer than 10", 0, 10), ("10 to 99", 10, 100), ("100 to 999", 100, 1000),
                         ("1,000 or more", 1000, K + 1)]:
    group = (ess >= low) & (ess < high)
    cover.append((excess[group].abs() < 2).float().mean().item() if group.any() else math.nan)
    print(f"{label:17s} {int(group.sum()):>8} {cover[-1]:>13.0%} {(excess[group] < -2).float().mean():>17.0%}")

# %% [markdown]
# The more effective samples, the more often the error bar covers $\log p(x)$. With over 1,000 it covers it
# for most images; with fewer than ten, for under half. The misses lie below: the estimate falls short by
# more than its error bar says.

# %%
holds(cover == sorted(cover) and cover[-1] >= 0.8 and cover[0] <= 0.5, "±2 se covers log p(x) more often the more "
      "effective samples: for over 80% of the images with 1,000 or more, for at most half with fewer than 10",
      full_only=True)
holds((excess < -2).sum() > 3 * (excess > 2).sum(), "misses below log p(x) outnumber those above more than "
      "threefold", full_only=True);

# %% [markdown]
# Some estimates lie above $\log p(x)$: each is a random number, and only its expectation is a bound.
# Is the image furthest above the quadrature's fault? Refined to a tenth of the tolerance, its
# quadrature does not move:

# %%
top = int(excess.argmax())
finer, _, finer_report = converged_log_px(model, x[top:top + 1], tol=1e-3)
print(f"test image {int(chosen[top])}: IWAE_{K} {excess[top]:.2f} se above log p(x) (ESS {ess[top]:.0f}); "
      f"quadrature {exact[top]:.4f} (tolerance 0.01), {finer.item():.4f} (tolerance 0.001)")

# %%
holds(abs(finer - exact[top]) < 0.01, "the quadrature moves by less than 0.01 nats when refined tenfold");

# %% [markdown]
# A single run cannot test an error bar; a hundred reruns can. We rerun $\mathrm{IWAE}_{5000}$ with 100 fresh
# seeds for two images. One is the median image among those with over 1,000 effective samples. The other
# looks fine: its estimate lies within a nat of $\log p(x)$, yet it has the fewest effective samples of
# such images.

# %%
@torch.no_grad()
def reruns(n, times, k):
    """`times` independent IWAE_k estimates of image n, with their standard errors and ESS. -> 3 x (times,)."""
    lw = draw_log_weights(model, x[n].expand(times, -1), mu[n].expand(times, -1), logvar[n].expand(times, -1),
                          k, seed=1)  # (k, times): one column per rerun
    n_eff = k * torch.exp(2 * log_mean_exp(lw) - log_mean_exp(2 * lw))
    return log_mean_exp(lw), (1 / n_eff - 1 / k).clamp(min=0).sqrt(), n_eff


many = (ess >= 1000).nonzero()[:, 0]
many = many if len(many) else torch.arange(len(x))  # (a model trained for seconds may have none)
near = ((iwae - exact).abs() < 1).nonzero()[:, 0]  # estimates within a nat of log p(x)
near = near if len(near) else torch.arange(len(x))
two = {"many": int(many[ess[many].argsort()[len(many) // 2]]), "fewest": int(near[ess[near].argmin()])}
held = {}
for name, n in two.items():
    values, ses, n_eff = reruns(n, 10 if SMOKE else 100, K)
    held[name] = dict(covered=((values - exact[n]).abs() < 2 * ses).float().mean(),
                      below=(values < exact[n]).float().mean(), ratio=values.std() / ses.median(),
                      rise=torch.corrcoef(torch.stack([values, ses]))[0, 1],
                      lucky=(values < iwae[n]).float().mean())  # the reruns below the first run's estimate
    print(f"{name} ESS, test image {int(chosen[n])}: ESS {ess[n]:.1f} at first; in the reruns {n_eff.min():.1f} to "
          f"{n_eff.max():.1f}\n  reruns - log p(x): mean {values.mean() - exact[n]:+.3f}, spread (sd) "
          f"{values.std():.3f}; median se {ses.median():.3f} ({ses.min():.3f} to {ses.max():.3f})\n  spread / median "
          f"se {held[name]['ratio']:.2f}; within 2 se of log p(x) {held[name]['covered']:.0%}, below it "
          f"{held[name]['below']:.0%}; correlation of estimate and se {held[name]['rise']:.2f}\n  the first run: "
          f"{iwae[n] - exact[n]:+.3f}, {(iwae[n] - values.mean()) / values.std():+.1f} sd from the reruns' mean, "
          f"above {held[name]['lucky']:.0%} of them")

# %% [markdown]
# With many effective samples the error bar holds: the reruns spread as their standard errors say, and
# cover $\log p(x)$ about as often as they should. The image that looked fine was lucky. Its first
# estimate lies above nearly all its reruns, and most of them fall below $\log p(x)$. They spread well
# beyond their typical standard error, and their error bars miss $\log p(x)$ more often. A rare large
# weight lifts the estimate and its standard error together, so an estimate that lies too high looks only
# a little high. The ESS itself varies between reruns, so one run's ESS is only a rough guide.

# %%
many, fewest = held["many"], held["fewest"]
holds(many["covered"] >= 0.85 and many["ratio"] < 1.5, "many ESS: ±2 se covers log p(x) in at least 85% of the "
      "reruns, which spread less than 1.5 times their median se", full_only=True)
holds(fewest["lucky"] > 0.9 and fewest["below"] > 0.5, "fewest ESS: the first run lies above 90% of the reruns, "
      "and most reruns fall below log p(x)", full_only=True)
holds(fewest["ratio"] > 1.5 and fewest["covered"] < min(0.8, many["covered"]), "fewest ESS: the reruns spread over "
      "1.5 times their median se, and ±2 se misses log p(x) in more than one rerun in five", full_only=True)
holds(fewest["rise"] > 0.5, "fewest ESS: the se rises with the estimate (correlation above 0.5)", full_only=True);

# %% [markdown]
# Figure 1 shows the gap per image as $K$ grows: its mean, median and 90th percentile. At $K = 1$ it is
# one draw, so it can sit off the ELBO's dashed line.

# %%
gaps = torch.stack([exact - bounds[f"IWAE_{k}"] for k in Ks])  # (len(Ks), N)
fig, ax = plt.subplots(figsize=(6.5, 4.2))
ax.plot(Ks, gaps.mean(1), "o-", label="mean")
ax.plot(Ks, gaps.median(1).values, "s-", label="median")
ax.plot(Ks, gaps.quantile(0.9, dim=1), "^-", label="90th percentile")
ax.axhline((exact - elbo).mean(), color="gray", ls="--", label="mean gap of the ELBO")
ax.set(xscale="log", yscale="log", xlabel="importance samples K", ylabel="log p(x) - IWAE_K (nats)",
       title=f"Figure 1. The gap of IWAE_K as K grows ({len(x)} test digits)")
ax.legend()
ax.grid(alpha=0.3);

# %%
top_gap = gaps[-1]
far = top_gap > 10
print(f"at K = {Ks[-1]}: median gap {top_gap.median():.3f}, mean gap {top_gap.mean():.3f} nats; {int(far.sum())} of "
      f"{len(x)} digits still have a gap above 10 nats, and they hold {100 * top_gap[far].sum() / top_gap.sum():.0f}% "
      f"of the total gap")

# %%
holds(gaps[1].median() > 10 * gaps[-1].median() and gaps[1].mean() < 2 * gaps[-1].mean(),
      f"from K = 10 to {Ks[-1]} the median gap falls more than tenfold, the mean by less than half", full_only=True)
holds(far.float().mean() < 0.1 and top_gap[far].sum() > top_gap.sum() / 2,
      "fewer than a tenth of the digits, with gaps above 10 nats, hold more than half the total gap", full_only=True);

# %% [markdown]
# From $K = 10$ to $5000$ the median gap falls more than tenfold, the mean by less than half. A few digits
# carry the mean: their $q_\phi$ sits away from the posterior's mass, and its draws almost never land
# there. The quadrature has no such blind spot: it sums every image over the whole coarse grid before it
# refines.
#
# ## The ELBO's shortfall is the KL divergence to the true posterior
#
# Since $p_\theta(x) = p_\theta(x, z) / p_\theta(z\mid x)$ for every $z$,
#
# $$\log p_\theta(x) = \mathbb E_q\Big[\log \frac{p_\theta(x, z)}{q_\phi(z\mid x)}\Big]
#   + \mathbb E_q\Big[\log \frac{q_\phi(z\mid x)}{p_\theta(z\mid x)}\Big]
#   = \mathrm{ELBO}(x) + \mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p_\theta(z\mid x)\big).$$
#
# The grid gives the KL without the ELBO. `posterior_grid` returns $\log p_\theta(z_g\mid x)$ normalised
# on the grid, and
# $\mathrm{KL} \approx \sum_g q_\phi(z_g\mid x)\,h^2\,[\log q_\phi(z_g\mid x) - \log p_\theta(z_g\mid x)]$.
# For a Gaussian the rule is accurate even at a spacing near its standard deviation. We take $h = 0.02$,
# print it beside $q_\phi$'s smallest standard deviation, and let the identity show whether it was fine
# enough.

# %%
@torch.no_grad()
def compare_with_posterior(model, x, mu, logvar, spacing, half_width=8.0, block=25):
    """KL(q || p(z|x)) on the grid, and the posterior's mean, variance and mode. Shapes: (B, D) -> 4 x (B, ...).

    For a Gaussian q of sd s, the rectangle rule's relative error is about 2 exp(-2 pi^2 s^2 / h^2): a few
    times 1e-4 at h = 1.5 s. The identity check below shows whether h was fine enough.
    """
    # `block` images at a time: each holds a few (G, G) grids in memory (641,601 points at h = 0.02)
    kl, post_mean, post_var, post_mode = [], [], [], []
    for i in range(0, len(x), block):
        log_post, z1, z2 = posterior_grid(model, x[i:i + block], half_width, spacing)  # (b, G, G)
        z = grid_points(z1, z2).reshape(len(z2), len(z1), 2)  # [i, j] = (z1[j], z2[i]), as in log_post
        log_q = log_normal(z, mu[i:i + block, None, None], logvar[i:i + block, None, None])  # (b, G, G)
        kl.append((log_q.exp() * spacing**2 * (log_q - log_post)).sum((1, 2)))
        mass = (log_post.exp() * spacing**2)[..., None]  # (b, G, G, 1)
        mean = (mass * z).sum((1, 2))  # (b, 2)
        post_mean.append(mean), post_var.append((mass * (z - mean[:, None, None]) ** 2).sum((1, 2)))
        post_mode.append(z.reshape(-1, 2)[log_post.flatten(1).argmax(1)])  # (b, 2): the highest grid point
    return torch.cat(kl), torch.cat(post_mean), torch.cat(post_var), torch.cat(post_mode)


# %% [markdown]
# We check the identity on the first 100 of our random digits (10 in the smoke setting). Both sides
# should agree per image, to within the ELBO's Monte Carlo error.

# %%
n_fit = 10 if SMOKE else 100
spacing = 0.05 if SMOKE else 0.02
print(f"smallest posterior std of q in these images: {(0.5 * logvar[:n_fit]).exp().min():.3f}, grid spacing {spacing}")
kl, post_mean, post_var, post_mode = compare_with_posterior(model, x[:n_fit], mu[:n_fit], logvar[:n_fit], spacing)
gap = (exact - elbo)[:n_fit]
print(f"mean log p(x) - ELBO: {gap.mean():.3f} nats; mean KL(q || p(z|x)) on the grid: {kl.mean():.3f} nats")
worst_z = ((gap - kl).abs() / elbo_se[:n_fit]).max()
print(f"largest |difference| per image: {worst_z:.2f} standard errors of the ELBO")

# %%
holds(worst_z < 5, "log p(x) - ELBO equals KL(q || p(z|x)) for every image, within 5 standard errors of the ELBO");

# %%
fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.errorbar(kl, gap, yerr=2 * elbo_se[:n_fit], fmt="o", ms=3, label="image (±2 standard errors)")
ax.plot([0, kl.max()], [0, kl.max()], "k--", lw=1, label="equality")
ax.set_xscale("symlog", linthresh=1)  # linear below 1 nat, log above
ax.set_yscale("symlog", linthresh=1)
ax.set(xlabel="KL(q(z|x) || p(z|x)) on the grid (nats)",
       ylabel="log p(x) - ELBO (nats)", title="Figure 2. The ELBO's gap is the KL")
ax.legend();

# %% [markdown]
# ## What the true posterior looks like
#
# Figure 3 draws the true posterior as filled contours at $\log p(z\mid x) - \max = -\tfrac12 r^2$ for
# $r = 1, 2, 3$, and $q_\phi(z\mid x)$ as lines at the same levels. For a Gaussian these are the 1, 2
# and 3 standard-deviation ellipses. It shows two typical digits (the 25th and 50th percentiles of the
# KL) and the four that $q_\phi$ fits worst. Each title counts the posterior's modes: local maxima within
# $4.5$ nats of the highest.

# %%
def count_modes(log_post, depth=4.5):
    """Local maxima of a (G, G) log-density within `depth` nats of its maximum (5 x 5 neighbourhoods)."""
    p = (log_post - log_post.max())[None, None]
    return int(((p == F.max_pool2d(p, 5, stride=1, padding=2)) & (p > -depth)).sum())


def zoom(ax, inside, z1, z2, pad=0.3):
    """Limit the axes to a square around the grid points where `inside` (G, G) holds, plus a margin."""
    box = [(z[mask].min().item(), z[mask].max().item()) for z, mask in [(z1, inside.any(0)), (z2, inside.any(1))]]
    half = max(high - low for low, high in box) / 2 + pad
    ax.set_xlim((box[0][0] + box[0][1]) / 2 - half, (box[0][0] + box[0][1]) / 2 + half)
    ax.set_ylim((box[1][0] + box[1][1]) / 2 - half, (box[1][0] + box[1][1]) / 2 + half)


def plot_posteriors(model, x, qs, titles, spacing):
    """One panel per digit: its true posterior (filled), the Gaussians qs = {label: (mu, logvar)} (lines),
    the digit in a corner."""
    log_post, z1, z2 = posterior_grid(model, x, 8.0, spacing)  # [-8, 8]^2, as converged_log_px
    z = grid_points(z1, z2).reshape(len(z2), len(z1), 2)  # [i, j] = (z1[j], z2[i]), as in log_post
    levels, styles = [-4.5, -2.0, -0.5, 0.0], ["solid", "dashed"]
    fig, axes = plt.subplots(1, len(x), figsize=(3.2 * len(x), 4.3), squeeze=False, layout="constrained")
    for n, ax in enumerate(axes[0]):
        post = log_post[n] - log_post[n].max()
        ax.contourf(z1, z2, post, levels=levels, cmap="Blues")
        q = [log_normal(z, m[n], lv[n]) - log_normal(m[n], m[n], lv[n]) for m, lv in qs.values()]
        for q_n, style in zip(q, styles):  # log q(z) - max log q, at the same levels as the posterior
            ax.contour(z1, z2, q_n, levels=levels[:-1], colors="crimson", linestyles=style, linewidths=1)
        zoom(ax, torch.stack([post, *q]).max(0).values > -4.5, z1, z2)
        ax.set(aspect="equal", xlabel="$z_1$", ylabel="$z_2$" if n == 0 else None)
        ax.set_title(f"{titles[n]}\n{count_modes(log_post[n])} mode(s)", fontsize=9)
        inset = ax.inset_axes([0.0, 0.78, 0.22, 0.22])
        inset.imshow(x[n].reshape(28, 28), cmap="gray_r")
        inset.set_axis_off()
    handles = [Line2D([], [], color="crimson", ls=style, label=label) for label, style in zip(qs, styles)]
    handles.append(Line2D([], [], color="tab:blue", lw=6, label="true posterior p(z|x)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=9)
    return fig


# %%
order = kl.argsort()
shown = torch.cat([order[[n_fit // 4, n_fit // 2]], order[-4:]])
cases = ["typical", "typical"] + ["badly fitted"] * 4
titles = [f"{case}: test image {int(chosen[i])}, a {int(labels[i])}\nKL(q || p(z|x)) = {kl[i]:.2f} nats"
          for case, i in zip(cases, shown)]
fig = plot_posteriors(model, x[shown], {"q(z|x) of the encoder": (mu[shown], logvar[shown])}, titles, spacing)
fig.suptitle("Figure 3. True posteriors and the encoder's Gaussian");

# %% [markdown]
# For the typical digits, $q_\phi$'s lines lie close to the filled contours. For the badly fitted ones,
# $q_\phi$ sits beside the posterior's mass.
#
# ## The amortisation gap
#
# The encoder computes $q_\phi(z\mid x)$ for every image with one network. The best diagonal Gaussian for
# a single image, $q^*_x = \arg\max_{q} \mathrm{ELBO}(x; q)$, can only do better. That splits the gap in
# two [Cremer, Li & Duvenaud 2018]:
#
# $$\underbrace{\log p_\theta(x) - \mathrm{ELBO}(x; q_\phi)}_{\text{inference gap}}
#  = \underbrace{\log p_\theta(x) - \mathrm{ELBO}(x; q^*_x)}_{\text{approximation gap: the Gaussian family}}
#  + \underbrace{\mathrm{ELBO}(x; q^*_x) - \mathrm{ELBO}(x; q_\phi)}_{\text{amortisation gap: the encoder}} .$$
#
# We fit each image's own $(\mu, \log\sigma^2)$ by gradient ascent on its reparametrised ELBO.

# %%
def fit_gaussian(model, x, mu, logvar, steps, samples=32, lr=0.02):
    """Per-image q*(z) = N(mu, exp(logvar)) by Adam on each image's ELBO, starting from (mu, logvar).

    Image n's ELBO depends only on its own parameters, so maximising the sum fits every image at once. The step
    size decays linearly to 0 so that the noisy gradient settles. Shapes: (B, D) -> (B, L), (B, L).
    """
    mu, logvar = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    optimizer = torch.optim.Adam([mu, logvar], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    g = torch.Generator().manual_seed(0)
    model.requires_grad_(False)  # only q's parameters learn
    for _ in range(steps):
        loss = -log_weights(model, x, mu, logvar, samples, g).mean(0).sum()  # minus the sum of the ELBOs
        optimizer.zero_grad()
        loss.backward()
        optimizer.step(), schedule.step()
    model.requires_grad_(True)
    return mu.detach(), logvar.detach()


# %% [markdown]
# A posterior with two modes gives the ELBO a local maximum at each, and a narrow one is hard to reach. So
# we start from three places: the encoder's output, the true posterior's mean and variance, and its highest
# point with the encoder's variance. We keep the best fit per image.

# %%
steps, samples = (30, 100) if SMOKE else (300, 1000)
xs = x[:n_fit]
starts = {"the encoder's q": (mu[:n_fit], logvar[:n_fit]), "the posterior's moments": (post_mean, post_var.log()),
          "the posterior's mode": (post_mode, logvar[:n_fit])}
fits = [fit_gaussian(model, xs, *start, steps) for start in starts.values()]
elbo_fits = torch.stack([draw_log_weights(model, xs, *fit, samples).mean(0) for fit in fits])  # (3, n_fit)
best = elbo_fits.argmax(0)  # (n_fit,)
mu_star = torch.stack([fit[0] for fit in fits])[best, torch.arange(n_fit)]  # (n_fit, L)
logvar_star = torch.stack([fit[1] for fit in fits])[best, torch.arange(n_fit)]
elbo_star = elbo_fits.max(0).values
elbo_enc = draw_log_weights(model, xs, mu[:n_fit], logvar[:n_fit], samples).mean(0)  # the same draws of eps
print("the best fit started from", "; ".join(f"{name} for {int((best == k).sum())}" for k, name in enumerate(starts)),
      f"of {n_fit} images")
inference, approximation = exact[:n_fit] - elbo_enc, exact[:n_fit] - elbo_star
amortisation = elbo_star - elbo_enc
for name, idx in [(f"mean of {n_fit} images", slice(None)), ("mean of the worst four", order[-4:])]:
    print(f"{name:24s} inference gap {inference[idx].mean():7.3f} = approximation {approximation[idx].mean():7.3f}"
          f" + amortisation {amortisation[idx].mean():7.3f} nats")
share = amortisation.sum() / inference.sum()
print(f"the encoder's share of the total inference gap: {100 * share:.0f}%; the Gaussian family's: {100 * (1 - share):.0f}%")

# %% [markdown]
# The encoder, not the Gaussian family, carries most of the gap. A better encoder, or a per-image fit,
# would close far more of the ELBO's shortfall than a richer family.

# %%
holds(share > 0.75, "the encoder's share (amortisation) is more than three quarters of the inference gap",
      full_only=True);

# %% [markdown]
# Figure 4 shows both parts for every image, sorted by the inference gap. The scale is linear below one
# nat: Monte Carlo error can make a small gap a few hundredths negative.

# %%
by_gap = inference.argsort()
fig, ax = plt.subplots(figsize=(8, 3.8))
ax.plot(inference[by_gap], "k-", lw=1, label="inference gap log p(x) - ELBO(q_phi)")
ax.plot(approximation[by_gap], "o", ms=3, label="approximation gap (the Gaussian family)")
ax.plot(amortisation[by_gap], "s", ms=3, label="amortisation gap (the encoder)")
ax.set_yscale("symlog", linthresh=1)  # linear below 1 nat, log above
ax.set(xlabel="test digit, sorted by inference gap", ylabel="nats (symmetric log scale)",
       title="Figure 4. Inference gap = approximation + amortisation, per digit")
ax.legend(fontsize=8)
ax.grid(alpha=0.3);

# %% [markdown]
# Figure 5 shows the worst digits again, with each image's best Gaussian $q^*_x$ (dashed) beside the
# encoder's (solid). The encoder's $q_\phi$ sits far from each posterior; $q^*_x$ moves onto it and covers
# it. So nearly all of these gaps were the encoder's. The small rest is the Gaussian family's: a diagonal
# Gaussian cannot tilt with a tilted posterior (exercise 1).

# %%
worst = order[-4:]
titles = [f"test image {int(chosen[i])}, a {int(labels[i])}\namortisation {amortisation[i]:.1f}, approx. "
          f"{approximation[i]:.2f}" for i in worst]
fig = plot_posteriors(model, xs[worst], {"encoder's q": (mu[worst], logvar[worst]),
                                         "best Gaussian q*": (mu_star[worst], logvar_star[worst])}, titles, spacing)
fig.suptitle("Figure 5. The worst-fitted digits, with the best Gaussian for each (gaps in nats)");

# %%
holds((amortisation[worst] > 10 * approximation[worst]).all() and approximation[worst].max() < 1,
      "for each of the four, the amortisation gap is over ten times the approximation gap, which is under a nat",
      full_only=True);

# %% [markdown]
# ## Summary
#
# - With a 2-D latent space, $\log p_\theta(x)$ is an integral over a plane. A grid, a matrix product and a
#   log-sum-exp give it, refined image by image until it stops moving on a grid that resolves the posterior.
# - $\mathrm{ELBO} \le \mathrm{IWAE}_K \le \log p_\theta(x)$ in expectation. A few digits whose $q_\phi$
#   misses the posterior carry the mean gap, and no practical $K$ helps them.
# - Sampling the prior competes in two dimensions and falls tens of nats short in fifty.
# - An importance-sampling error bar is as good as its effective sample size. With a handful of effective
#   samples, it misses $\log p(x)$ more often than not.
# - $\log p_\theta(x) - \mathrm{ELBO}(x) = \mathrm{KL}(q_\phi(z\mid x)\,\|\,p_\theta(z\mid x))$, per image.
# - Most of that gap is the encoder's (amortisation), not the Gaussian family's (approximation).

# %% [markdown]
# ## Exercises
#
# 1. A full-covariance Gaussian: fit $q^*_x = \mathcal N(m, CC^\top)$ with a lower-triangular $C$
#    (positive diagonal through `exp`) to the four digits with the largest approximation gap. How much
#    of their gap does the correlation close?

# %% [markdown]
# 2. Take the digit with the largest gap at $K = 5000$. Compute the effective sample size of its weights
#    under $q_\phi$, and under $q_\phi$ with twice the standard deviation. Does widening help the
#    estimate? Does the ESS tell?

# %% [markdown]
# 3. The grid gives exact posterior samples: draw grid cells with probabilities $p(z_g\mid x)\,h^2$
#    (`torch.multinomial`). Decode them beside draws from $q_\phi(z\mid x)$ for a badly fitted digit.
