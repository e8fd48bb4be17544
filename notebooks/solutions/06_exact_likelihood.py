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
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. How good is the approximation?
#
# Training maximises the ELBO, a lower bound on $\log p_\theta(x)$, and `python -m vaelib train` reports
# the importance-weighted bound $\mathrm{IWAE}_K$ as its estimate of $\log p_\theta(x)$. How far below the
# truth are they? With a two-dimensional latent space we can find out: the integral
#
# $$p_\theta(x) = \int p_\theta(x\mid z)\,p(z)\,dz$$
#
# runs over a plane, and a plane can be covered by a grid. This notebook computes $\log p_\theta(x)$ to
# a hundredth of a nat, and with it the true posterior $p_\theta(z\mid x)$, and then measures
#
# 1. how close the ELBO and $\mathrm{IWAE}_K$ come to $\log p_\theta(x)$;
# 2. that the ELBO falls short by exactly $\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p_\theta(z\mid x)\big)$;
# 3. how much of that shortfall is the encoder's doing and how much the Gaussian family's.

# %%
import math

import matplotlib.pyplot as plt
import torch

from vaelib.config import smoke
from vaelib.data import describe, load_mnist
from vaelib.elbo import bernoulli_log_likelihood, log_normal, log_weights
from vaelib.exact import converged_log_px, grid_points, log_px_grid, posterior_grid
from vaelib.exercises import check_iwae
from vaelib.train import course_model, per_image_iwae

SMOKE = smoke()
data = load_mnist("auto")

# %% [markdown]
# We use the model notebook 4 saved. If you have not run notebook 4, the next cell says so and trains
# a small model here instead. We study the first 300 test digits (20 in the quick smoke setting).

# %%
model, _ = course_model(data, fallback_steps=40 if SMOKE else 3000)
x = data.test_x[:20 if SMOKE else 300]
print(f"{model.config}; {len(x)} test digits of {describe(data)}")

# %% [markdown]
# ## $\log p_\theta(x)$ on a grid
#
# Cover $[-a, a]^2$ with the points $z_g = (ih, jh)$, $|i|, |j| \le a/h$, each standing for a cell of
# area $h^2$ (the rectangle rule):
#
# $$\log p_\theta(x) \approx \log \sum_g p_\theta(x\mid z_g)\,p(z_g)\,h^2
#   = \operatorname{logsumexp}_g\big[\log p_\theta(x\mid z_g) + \log p(z_g)\big] + 2\log h .$$
#
# We must stay in log space: $p_\theta(x\mid z)$ is about $e^{-140}$, below the smallest positive
# float32 ($\approx e^{-87}$). Because the integrand is smooth and vanishes towards the edges, the
# rule's error falls faster than any power of $h$. Here it is from scratch for one digit, checked
# against the library's `log_px_grid`:

# %%
h, a = 0.05, 6.0
axis = torch.arange(-round(a / h), round(a / h) + 1) * h  # (G,)
z = torch.cartesian_prod(axis, axis)  # (G * G, 2): every grid point
with torch.no_grad():  # 4,096 points at a time: decoding all of them at once would take half a gigabyte
    log_joint = torch.cat([bernoulli_log_likelihood(model.decode(zc), x[0]) + log_normal(zc)
                           for zc in z.split(4096)])  # (G * G,)
log_px0 = torch.logsumexp(log_joint, 0) + 2 * math.log(h)
print(f"{len(z):,} grid points; log p(x) of the first test digit: {log_px0:.4f} nats")
torch.testing.assert_close(log_px0, log_px_grid(model, x[:1], a, h)[0], rtol=0, atol=1e-3)

# %% [markdown]
# For Bernoulli pixels $\log p_\theta(x\mid z) = x\cdot \ell(z) - \sum_d \mathrm{softplus}(\ell_d(z))$ with
# $\ell$ the decoder's logits, so the library decodes the grid once and gets every image at every grid
# point from one $(N\times 784)\,(784\times G)$ matrix product, in blocks that bound the memory.
# `converged_log_px` starts at $h = 0.05$, $a = 6$ and halves $h$ while widening $a$ by a quarter
# until the mean over the images moves by less than $0.01$ nats; it reports the grid it ended on.

# %%
exact, report = converged_log_px(model, x)
print(f"grid [-{report['half_width']}, {report['half_width']}]^2 at spacing {report['spacing']}: "
      f"{report['grid_points']:,} points after {report['refinements']} refinement(s), {report['seconds']:.1f} s")
print(f"the last refinement moved the mean by {report['mean_change']:.5f} nats "
      f"(one image by {report['max_image_change']:.4f}); mean log p(x) = {report['mean_log_px']:.3f} nats")

# %% [markdown]
# ## $\mathrm{ELBO} \le \mathrm{IWAE}_K \le \log p_\theta(x)$
#
# With importance weights $w = p_\theta(x, z)/q_\phi(z\mid x)$, $z\sim q_\phi(z\mid x)$,
#
# $$\mathrm{ELBO}(x) = \mathbb E_q[\log w], \qquad
#   \mathrm{IWAE}_K(x) = \mathbb E\Big[\log \tfrac1K \textstyle\sum_{k=1}^K w_k\Big]
#   \quad\text{[Burda et al. 2016]}.$$
#
# $\mathrm{IWAE}_1$ is the ELBO (estimated here from a single draw); by Jensen's inequality both lie
# below $\log p_\theta(x)$, and $\mathrm{IWAE}_K$ rises with $K$ towards it. We estimate the ELBO of
# each image as the mean of $\log w$ over 1,000 draws, with its standard error:

# %%
@torch.no_grad()
def elbo_estimate(model, x, mu, logvar, samples, chunk=50, seed=0):
    """ELBO = E_q[log p(x, z) - log q(z|x)] as a mean over `samples` draws, and its standard error.

    Shapes: (B, D), (B, L), (B, L) -> (B,), (B,).
    """
    g = torch.Generator().manual_seed(seed)
    log_w = torch.cat([log_weights(model, x, mu, logvar, chunk, g) for _ in range(samples // chunk)])  # (S, B)
    return log_w.mean(0), log_w.std(0) / math.sqrt(len(log_w))


# %% [markdown]
# The same images, the ELBO and the importance-weighted bound for growing $K$, against the exact value:

# %%
with torch.no_grad():
    mu, logvar = model.encode(x)
elbo, elbo_se = elbo_estimate(model, x, mu, logvar, samples=100 if SMOKE else 1000)
Ks = [1, 10, 100, 1000] if SMOKE else [1, 10, 100, 1000, 5000]
iwae_top, iwae_top_se = per_image_iwae(model, x, Ks[-1], return_se=True)  # the largest K, with its standard error
bounds = {"ELBO": elbo} | {f"IWAE_{k}": per_image_iwae(model, x, k) for k in Ks[:-1]} | {f"IWAE_{Ks[-1]}": iwae_top}
print(f"{'':10s} {'mean':>9s} {'mean gap':>9s} {'median gap':>11s}   (nats; gap = log p(x) - bound)")
for name, value in bounds.items():
    gap = exact - value
    print(f"{name:10s} {value.mean():9.3f} {gap.mean():9.3f} {gap.median():11.3f}")
print(f"{'log p(x)':10s} {exact.mean():9.3f}")

# %% [markdown]
# $\mathrm{IWAE}_K$ is a lower bound in expectation, but each estimate is a random number: for an image
# where $K$ samples nearly find all of the mass, it can land a little *above* $\log p_\theta(x)$ by chance.
# By how much, in units of its Monte Carlo standard error (the delta-method one that `per_image_iwae`
# returns, computed from the same $K$ weights)?

# %%
excess = (iwae_top - exact) / iwae_top_se  # > 0 where the estimate lies above the exact value
worst_excess = int(excess.argmax())
print(f"IWAE_{Ks[-1]} above log p(x) for {(excess > 0).sum()} of {len(x)} images; the largest excess is "
      f"{excess.max():.2f} standard errors ({iwae_top[worst_excess] - exact[worst_excess]:+.3f} nats, test digit {worst_excess})")

# %% [markdown]
# Among a few hundred images, a largest excess near three standard errors would be no surprise even if
# the error bars were exact. Whether it is the quadrature or the sampling that is off for the worst
# image, we can tell: halve its grid spacing once more, and repeat its estimate with ten other seeds.

# %%
one = x[worst_excess:worst_excess + 1]
refined = [log_px_grid(model, one, report["half_width"], report["spacing"] / f).item() for f in (1, 2)]
print(f"quadrature at spacing {report['spacing']} and half of it: {refined[0]:.4f} and {refined[1]:.4f} nats")
repeats = [per_image_iwae(model, one, Ks[-1], seed=seed, return_se=True) for seed in range(1, 11)]
values = torch.cat([v for v, _ in repeats])
print(f"IWAE_{Ks[-1]} with 10 other seeds: {values.min():.3f} to {values.max():.3f}, spread (std) {values.std():.3f}; "
      f"their own standard errors {min(se.item() for _, se in repeats):.3f} to {max(se.item() for _, se in repeats):.3f}")
print(f"mean of the 10: {values.mean():.3f} +- {values.std() / 10**0.5:.3f}, exact {exact[worst_excess]:.3f}")
assert abs(refined[1] - refined[0]) < 0.01  # the quadrature has converged for this image too
assert values.mean() < exact[worst_excess] + 3 * values.std() / 10**0.5  # a lower bound on average

# %% [markdown]
# The quadrature does not move. The importance-weighted estimates, in contrast, scatter around it by more
# than the error bars they report whenever $q_\phi$ covers the posterior badly: the mean of the weights is
# then decided by a few rare, large weights, and a standard error computed from the same draws cannot
# see the draws that were not made. On average over seeds the estimate stays below $\log p_\theta(x)$, as
# a lower bound must. An importance-sampling error bar is only as good as the proposal's coverage.

# %% [markdown]
# Figure 1 shows the gap per image as $K$ grows: its mean, median and 90th percentile over the images.

# %%
gaps = torch.stack([exact - bounds[f"IWAE_{k}"] for k in Ks])  # (len(Ks), N)
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(Ks, gaps.mean(1), "o-", label="mean")
ax.plot(Ks, gaps.median(1).values, "s-", label="median")
ax.plot(Ks, gaps.quantile(0.9, dim=1), "^-", label="90th percentile")
ax.axhline((exact - elbo).mean(), color="gray", ls="--", label="mean gap of the ELBO")
ax.set(xscale="log", yscale="log", xlabel="importance samples K", ylabel="log p(x) - IWAE_K (nats)",
       title=f"Figure 1. IWAE_K closes in on log p(x) ({len(x)} test digits)")
ax.legend()
ax.grid(alpha=0.3);

# %% [markdown]
# The median image's gap falls quickly: for a typical digit a thousand samples from $q_\phi$ find
# nearly all of the posterior mass. The mean falls slowly, because a few digits have gaps of tens of
# nats even at $K = 5000$: their $q_\phi(z\mid x)$ sits away from where the posterior mass is, and
# importance sampling from $q_\phi$ almost never draws a point there. The quadrature has no such
# blind spot: it visits every grid point.
#
# ## The ELBO's shortfall is the KL divergence to the true posterior
#
# Since $p_\theta(x) = p_\theta(x, z) / p_\theta(z\mid x)$ for every $z$,
#
# $$\log p_\theta(x) = \mathbb E_q\Big[\log \frac{p_\theta(x, z)}{q_\phi(z\mid x)}\Big]
#   + \mathbb E_q\Big[\log \frac{q_\phi(z\mid x)}{p_\theta(z\mid x)}\Big]
#   = \mathrm{ELBO}(x) + \mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p_\theta(z\mid x)\big).$$
#
# The grid gives us the right-hand KL without the ELBO: `posterior_grid` returns
# $\log p_\theta(z_g\mid x)$ normalised on the grid, and
# $\mathrm{KL} \approx \sum_g q_\phi(z_g\mid x)\,h^2\,[\log q_\phi(z_g\mid x) - \log p_\theta(z_g\mid x)]$.
# The grid must resolve $q_\phi$, whose standard deviations go down to a few hundredths here, so we
# take $h = 0.02$. The same pass returns the posterior's mean and variance, which we use later.

# %%
@torch.no_grad()
def compare_with_posterior(model, x, mu, logvar, spacing, half_width=6.0, block=25):
    """KL(q || p(z|x)) on the grid, and the posterior's mean and variance. Shapes: (B, D) -> 3 x (B, ...)."""
    # `block` images at a time: each holds a few (G, G) grids in memory (361,201 points at h = 0.02)
    kl, post_mean, post_var = [], [], []
    for i in range(0, len(x), block):
        log_post, z1, z2 = posterior_grid(model, x[i:i + block], half_width, spacing)  # (b, G, G)
        z = grid_points(z1, z2).reshape(len(z2), len(z1), 2)  # [i, j] = (z1[j], z2[i]), as in log_post
        log_q = log_normal(z, mu[i:i + block, None, None], logvar[i:i + block, None, None])  # (b, G, G)
        kl.append((log_q.exp() * spacing**2 * (log_q - log_post)).sum((1, 2)))
        mass = (log_post.exp() * spacing**2)[..., None]  # (b, G, G, 1)
        mean = (mass * z).sum((1, 2))  # (b, 2)
        post_mean.append(mean), post_var.append((mass * (z - mean[:, None, None]) ** 2).sum((1, 2)))
    return torch.cat(kl), torch.cat(post_mean), torch.cat(post_var)


# %% [markdown]
# We check the identity on the first 100 test digits (10 in the smoke setting):

# %%
n_fit = 10 if SMOKE else 100
spacing = 0.05 if SMOKE else 0.02
print(f"smallest posterior std of q in these images: {(0.5 * logvar[:n_fit]).exp().min():.3f}, grid spacing {spacing}")
kl, post_mean, post_var = compare_with_posterior(model, x[:n_fit], mu[:n_fit], logvar[:n_fit], spacing)
gap = (exact - elbo)[:n_fit]
print(f"mean log p(x) - ELBO: {gap.mean():.3f} nats; mean KL(q || p(z|x)) on the grid: {kl.mean():.3f} nats")
worst_z = ((gap - kl).abs() / elbo_se[:n_fit]).max()
print(f"largest |difference| per image: {worst_z:.2f} standard errors of the ELBO")

# %% [markdown]
# The two agree per image to within the Monte Carlo error of the ELBO (Figure 2): the ELBO's
# shortfall is exactly the mismatch between $q_\phi$ and the true posterior.

# %%
fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.errorbar(kl, gap, yerr=2 * elbo_se[:n_fit], fmt="o", ms=3, label="image (±2 standard errors)")
ax.plot([0, kl.max()], [0, kl.max()], "k--", lw=1, label="equality")
ax.set(xscale="symlog", yscale="symlog", xlabel="KL(q(z|x) || p(z|x)) on the grid (nats)",
       ylabel="log p(x) - ELBO (nats)", title="Figure 2. The ELBO's gap is the KL")
ax.legend();

# %% [markdown]
# ## What the true posterior looks like
#
# We draw the true posterior of a few digits as filled contours at $\log p(z\mid x) - \max = -\tfrac12 r^2$
# for $r = 1, 2, 3$ (for a Gaussian, the 1, 2 and 3 standard-deviation ellipses), and $q_\phi(z\mid x)$
# as lines at the same levels: two typical digits, and the four whose $q_\phi$ fits worst.

# %%
def plot_posteriors(model, x, qs, title, spacing=spacing):
    """Each digit above its true posterior (filled) and the Gaussians in `qs` (lines): {label: (mu, logvar)}."""
    log_post, z1, z2 = posterior_grid(model, x, 6.0, spacing)
    z = grid_points(z1, z2).reshape(len(z2), len(z1), 2)  # [i, j] = (z1[j], z2[i]), as in log_post
    levels, styles = [-4.5, -2.0, -0.5, 0.0], ["solid", "dashed"]
    fig, axes = plt.subplots(2, len(x), figsize=(2.7 * len(x), 5.5), height_ratios=[1, 2], squeeze=False)
    for n, (top, ax) in enumerate(zip(*axes)):
        top.imshow(x[n].reshape(28, 28), cmap="gray_r"), top.axis("off")
        post = log_post[n] - log_post[n].max()
        ax.contourf(z1, z2, post, levels=levels, cmap="Blues")
        q = [log_normal(z, mu[n], logvar[n]) - log_normal(mu[n], mu[n], logvar[n]) for mu, logvar in qs.values()]
        for q_n, style in zip(q, styles):  # log q(z) - max log q, at the same levels as the posterior
            ax.contour(z1, z2, q_n, levels=levels[:-1], colors="crimson", linestyles=style, linewidths=1)
        zoom(ax, torch.stack([post, *q]).max(0).values > -4.5, z1, z2)
    axes[1, 0].set(xlabel="z1", ylabel="z2")
    fig.suptitle(f"{title}; lines: " + ", ".join(f"{s} {label}" for label, s in zip(qs, styles)))
    return fig


def zoom(ax, inside, z1, z2, pad=0.3):
    """Limit the axes to a square around the grid points where `inside` (G, G) holds, plus a margin."""
    box = [(z[mask].min().item(), z[mask].max().item()) for z, mask in [(z1, inside.any(0)), (z2, inside.any(1))]]
    half = max(high - low for low, high in box) / 2 + pad
    ax.set_xlim((box[0][0] + box[0][1]) / 2 - half, (box[0][0] + box[0][1]) / 2 + half)
    ax.set_ylim((box[1][0] + box[1][1]) / 2 - half, (box[1][0] + box[1][1]) / 2 + half)


# %%
order = kl.argsort()
shown = torch.cat([order[[n_fit // 4, n_fit // 2]], order[-4:]])
plot_posteriors(model, x[shown], {"q(z|x) of the encoder": (mu[shown], logvar[shown])},
                "Figure 3. True posterior p(z|x) (blue)");

# %% [markdown]
# For the typical digits the posterior is close to a Gaussian and $q_\phi$ sits on it. For the worst
# ones $q_\phi$ sits beside the posterior, or between the two modes of a posterior that has two.
#
# ## The amortisation gap
#
# The encoder computes $q_\phi(z\mid x)$ for every image with one network. The best Gaussian for a
# single image, $q^*_x = \arg\max_{q \in \mathcal Q} \mathrm{ELBO}(x; q)$ over diagonal Gaussians
# $\mathcal Q$, can only do better. That splits the gap in two [Cremer, Li & Duvenaud 2018]:
#
# $$\underbrace{\log p_\theta(x) - \mathrm{ELBO}(x; q_\phi)}_{\text{inference gap}}
#  = \underbrace{\log p_\theta(x) - \mathrm{ELBO}(x; q^*_x)}_{\text{approximation gap: the Gaussian family}}
#  + \underbrace{\mathrm{ELBO}(x; q^*_x) - \mathrm{ELBO}(x; q_\phi)}_{\text{amortisation gap: the encoder}} .$$
#
# We fit each image's own $(\mu, \log\sigma^2)$ by gradient ascent on its reparametrised ELBO. Image
# $n$'s ELBO depends only on its own parameters, so maximising the sum fits every image at once.

# %%
def fit_gaussian(model, x, mu, logvar, steps, samples=32, lr=0.02):
    """Per-image q*(z) = N(mu, exp(logvar)) by Adam on each image's ELBO, starting from (mu, logvar).

    The step size decays linearly to 0 so that the noisy gradient settles. Shapes: (B, D) -> (B, L), (B, L).
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
# The ELBO of a posterior with two modes has a local maximum at each, so we start twice, from the
# encoder's output and from the true posterior's mean and variance, and keep per image the better fit.
# All ELBOs are then estimated with the same 1,000 draws of $\varepsilon$.

# %%
steps, samples = (30, 100) if SMOKE else (300, 1000)
xs, starts = x[:n_fit], [(mu[:n_fit], logvar[:n_fit]), (post_mean, post_var.log())]
fits = [fit_gaussian(model, xs, *start, steps) for start in starts]
elbo_fits = torch.stack([elbo_estimate(model, xs, *fit, samples)[0] for fit in fits])  # (2, n_fit)
best = elbo_fits.argmax(0)  # (n_fit,)
mu_star = torch.where(best[:, None] == 0, fits[0][0], fits[1][0])
logvar_star = torch.where(best[:, None] == 0, fits[0][1], fits[1][1])
elbo_star = elbo_fits.max(0).values
elbo_enc = elbo_estimate(model, xs, mu[:n_fit], logvar[:n_fit], samples)[0]
print(f"the fit from the posterior's moments was the better one for {int(best.sum())} of {n_fit} images")

# %% [markdown]
# The decomposition, averaged over the images and for the four worst:

# %%
inference, approximation = exact[:n_fit] - elbo_enc, exact[:n_fit] - elbo_star
amortisation = elbo_star - elbo_enc
for name, idx in [(f"mean of {n_fit} images", slice(None)), ("mean of the worst four", order[-4:])]:
    print(f"{name:24s} inference gap {inference[idx].mean():7.3f} = approximation {approximation[idx].mean():7.3f}"
          f" + amortisation {amortisation[idx].mean():7.3f} nats")

# %% [markdown]
# Figure 4 shows the two parts for every image, sorted by the inference gap.

# %%
by_gap = inference.argsort()
fig, ax = plt.subplots(figsize=(8, 3.5))
bottom = approximation[by_gap].clamp_min(0)  # a few hundredths below 0 from the Monte Carlo error
ax.bar(range(n_fit), bottom, label="approximation gap (Gaussian family)")
ax.bar(range(n_fit), amortisation[by_gap], bottom=bottom, label="amortisation gap (encoder)")
ax.set(yscale="symlog", xlabel="test digit, sorted by inference gap", ylabel="nats (symmetric log scale)",
       title="Figure 4. log p(x) - ELBO(q_phi) = approximation + amortisation")
ax.legend();

# %% [markdown]
# And the worst digits again, now with each image's own best Gaussian $q^*_x$ (dashed) beside the
# encoder's (solid):

# %%
worst = order[-4:]
plot_posteriors(model, xs[worst], {"encoder's q": (mu[worst], logvar[worst]),
                                   "best Gaussian q*": (mu_star[worst], logvar_star[worst])},
                "Figure 5. The worst-fitted digits");

# %% [markdown]
# Where $q_\phi$ sits beside a posterior that is close to Gaussian, the best Gaussian covers it and the
# whole gap is the encoder's. Only a posterior with two modes, or a curved one, costs something that
# no Gaussian can recover: $q^*_x$ then settles on one mode. The printout above says how the gap
# splits for this model; for the course model the encoder's share is by far the larger.

# %% [markdown]
# ## Summary
#
# - With a 2-D latent space, $\log p_\theta(x)$ is an integral over a plane: a grid, one matrix product
#   per block and a log-sum-exp give it to a hundredth of a nat, and the grid is refined until it does.
# - $\mathrm{ELBO} \le \mathrm{IWAE}_K \le \log p_\theta(x)$. For the median digit IWAE with a thousand
#   samples falls short by about a tenth of a nat (the table above has this run's numbers), but the
#   mean gap is dominated by a few digits where $q_\phi$ misses the posterior and no practical $K$ helps.
# - $\log p_\theta(x) - \mathrm{ELBO}(x) = \mathrm{KL}(q_\phi(z\mid x)\,\|\,p_\theta(z\mid x))$, checked per image.
# - Fitting a Gaussian per image splits this gap into the encoder's share (amortisation) and the
#   Gaussian family's share (approximation); Figures 3 and 5 show what each looks like.
#
# ## Exercises
#
# 1. Write the importance-weighted bound from the log weights $\log w_k = \log p_\theta(x, z_k) - \log q_\phi(z_k\mid x)$:
#    $\log \frac1K \sum_k w_k$, computed so that it does not underflow: for a whole image every
#    $\log w_k$ is around $-140$, and $e^{-140}$ is 0 in float32. The next cell checks it.

# %% tags=["solution"]
def my_iwae(log_w):
    """log (1/K) sum_k exp(log_w[k]) for each image. Shapes: (K, B) -> (B,)."""
    # Hint: torch.logsumexp(log_w, dim=0) subtracts the largest log weight before exponentiating; then subtract log K.
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


# %%
# NBVAL_CHECK_OUTPUT
check_iwae(my_iwae)

# %% [markdown]
# 2. A full-covariance Gaussian: fit $q^*_x = \mathcal N(m, LL^\top)$ with a lower-triangular $L$
#    (positive diagonal through `exp`). How much of the approximation gap of the worst digits does the
#    correlation close, and for which posteriors does no Gaussian help?
# 3. For the digit with the largest $\log p_\theta(x) - \mathrm{IWAE}_{5000}$, compute the effective
#    sample size $(\sum_k w_k)^2 / \sum_k w_k^2$ of its importance weights, and plot the posterior with
#    $q_\phi$ overlaid. Would a $q$ with twice the standard deviation have helped?
# 4. The grid gives exact posterior samples: draw grid cells with probabilities
#    $p(z_g\mid x)\,h^2$ (`torch.multinomial`), decode them and compare with decodings of draws from
#    $q_\phi(z\mid x)$ for a badly fitted digit.
