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
# # 2. The KL divergence between the encoder's Gaussian and the prior
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/solutions/02_kl_divergence.ipynb)
#
# Notebook 1 split the ELBO into a reconstruction term and a regulariser:
#
# $$\mathrm{ELBO}(x) = \mathbb E_{q_\phi(z\mid x)}\big[\log p_\theta(x\mid z)\big] - \mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big),
# \qquad \mathrm{KL}(q\,\|\,p) = \mathbb E_{q(z)}\big[\log q(z) - \log p(z)\big].$$
#
# The regulariser compares the encoder's Gaussian with the **prior over the code**, $p(z) = \mathcal N(0, I)$.
# The data distribution $p(x)$ plays no part in it. For two Gaussians the expectation has a closed form, so
# this term needs no sampling. We derive it one step at a time and check each step with numbers. You then
# write it for a batch, and the rest of the notebook runs your version. Last, we see why the loss *adds* it.

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

import matplotlib.pyplot as plt
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from vaelib.config import smoke
from vaelib.elbo import kl_standard_normal
from vaelib.evidence import holds
from vaelib.exercises import check_kl_normal, check_kl_standard_normal

SMOKE = smoke()  # VAELIB_SMOKE=1 (as in `make check`) shrinks the Monte Carlo sample counts
n_mc = 20_000 if SMOKE else 1_000_000  # S, Monte Carlo samples per check
Z_MAX = 4  # a Monte Carlo check fails when the estimate is more than 4 standard errors off

# %% [markdown]
# ## One latent dimension, step by step
#
# Let $q(z) = \mathcal N(\mu, \sigma^2)$ and $p(z) = \mathcal N(0, 1)$. **Step 1**, the two log-densities:
#
# $$\log q(z) = -\tfrac12\log 2\pi - \tfrac12\log\sigma^2 - \frac{(z-\mu)^2}{2\sigma^2},
# \qquad \log p(z) = -\tfrac12\log 2\pi - \frac{z^2}{2}.$$
#
# Both match `Normal.log_prob`, here at seven points for one $(\mu, \sigma)$:

# %%
mu, sigma = torch.tensor(0.7, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64)
z = torch.linspace(-3, 3, 7, dtype=torch.float64)
log_q = -0.5 * math.log(2 * math.pi) - 0.5 * torch.log(sigma**2) - (z - mu) ** 2 / (2 * sigma**2)
log_p = -0.5 * math.log(2 * math.pi) - z**2 / 2
holds(torch.allclose(log_q, Normal(mu, sigma).log_prob(z)) and torch.allclose(log_p, Normal(0.0, 1.0).log_prob(z).double()),
      "step 1: log q(z) and log p(z) match Normal.log_prob");

# %% [markdown]
# **Step 2**, their difference. The $\log 2\pi$ terms cancel:
#
# $$\log q(z) - \log p(z) = -\tfrac12\log\sigma^2 - \frac{(z-\mu)^2}{2\sigma^2} + \frac{z^2}{2}.$$

# %%
log_ratio = -0.5 * torch.log(sigma**2) - (z - mu) ** 2 / (2 * sigma**2) + z**2 / 2
holds(torch.allclose(log_ratio, log_q - log_p), "step 2: log q(z) - log p(z) needs no 2 pi terms");

# %% [markdown]
# **Step 3**, the expectation under $q$. It needs only two moments of $z\sim q$: $\mathbb E_q[(z-\mu)^2] = \sigma^2$,
# the variance, and $\mathbb E_q[z^2] = \sigma^2 + \mu^2$. We estimate both from $S$ samples. Each estimate
# has a standard error $\mathrm{SE} = \mathrm{SD}/\sqrt S$, and each must land within `Z_MAX` SE of its exact value.

# %%
g = torch.Generator().manual_seed(0)
z_mc = mu + sigma * torch.randn(n_mc, generator=g, dtype=torch.float64)  # (S,), z ~ q
# An unbiased estimate lies beyond Z_MAX = 4 SE with probability erfc(4 / sqrt 2) = 6e-5: a false alarm is rare.
moments = {"E[(z - mu)^2]": ((z_mc - mu) ** 2, sigma**2), "E[z^2]": (z_mc**2, sigma**2 + mu**2)}
for name, (samples, exact) in moments.items():
    estimate, se = samples.mean(), samples.std() / n_mc**0.5
    print(f"step 3, {name:13s}: exact {exact.item():.5f}, Monte Carlo {estimate.item():.5f} ± {se.item():.5f}")
holds(all(abs(s.mean() - e) < Z_MAX * s.std() / n_mc**0.5 for s, e in moments.values()),
      f"step 3: both moments lie within {Z_MAX} SE of sigma^2 and sigma^2 + mu^2");

# %% [markdown]
# **Step 4**, substitute the moments and collect terms:
#
# $$\mathrm{KL}(q\,\|\,p) = -\tfrac12\log\sigma^2 - \frac{\sigma^2}{2\sigma^2} + \frac{\sigma^2 + \mu^2}{2}
# = \tfrac12\big(\sigma^2 + \mu^2 - 1 - \log\sigma^2\big).$$
#
# `torch.distributions.kl_divergence` has its own implementation, and ours agrees with it:

# %%
def kl_one_dim(mu, sigma):
    """KL(N(mu, sigma^2) || N(0, 1)) = 0.5 (sigma^2 + mu^2 - 1 - log sigma^2), in nats."""
    return 0.5 * (sigma**2 + mu**2 - 1 - torch.log(sigma**2))


cases = torch.tensor([[0.0, 1.0], [0.7, 0.4], [-2.0, 1.0], [0.0, 0.1], [1.5, 3.0]], dtype=torch.float64)
ours = kl_one_dim(cases[:, 0], cases[:, 1])
for (m, s), kl_i in zip(cases.tolist(), ours.tolist()):
    print(f"mu = {m:+.1f}, sigma = {s:.1f}:  KL = {kl_i:.6f} nats")
holds(torch.allclose(ours, kl_divergence(Normal(cases[:, 0], cases[:, 1]), Normal(0.0, 1.0)).double()),
      "step 4: the closed form matches torch.distributions.kl_divergence");

# %% [markdown]
# ## Many latent dimensions, and a batch
#
# The encoder's $q_\phi(z\mid x) = \mathcal N(\mu, \mathrm{diag}(\sigma^2))$ and the prior $\mathcal N(0, I)$ both
# factorise over the $L$ latent dimensions. So $\log q(z) - \log p(z)$ is a sum of one-dimensional terms,
# each depending on its own $z_j$. The expectation of a sum is the sum of the expectations:
#
# $$\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big) = \frac12\sum_{j=1}^{L}\big(\sigma_j^2 + \mu_j^2 - 1 - \log\sigma_j^2\big).$$
#
# In a minibatch each image $i$ has its own $\mu_i, \sigma_i\in\mathbb R^L$ and its own KL; the sum runs over
# the latent dimensions $j$ of one image. The encoder outputs $\log\sigma^2$ (`logvar`), any real number.
#
# **Your turn.** Write this KL from `mu` and `logvar`, one number per image. The next cell checks it and
# names the usual mistakes. From then on the notebook runs your function.

# %% tags=["solution"]
def my_kl_standard_normal(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) for each row, summed over the latent dims, in nats.

    Shapes: mu (B, L), logvar (B, L) -> (B,).
    """
    # Hint: logvar is log sigma^2, so sigma^2 = exp(logvar) and log sigma^2 is logvar itself.
    # One number per image: which axis do you sum over?
    return 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(dim=-1)


# %% tags=["nbval-check-output"]
kl_to_prior = check_kl_standard_normal(my_kl_standard_normal).use()

# %% [markdown]
# "A sum of per-dimension KLs" is a claim about factorisation. A full-covariance `MultivariateNormal` with a
# diagonal covariance knows nothing about it, and agrees with the KL just written. So do `torch.distributions` per
# dimension and the library's `kl_standard_normal`:

# %%
gb = torch.Generator().manual_seed(1)
B, L = 4, 3
mu_b = torch.randn(B, L, generator=gb, dtype=torch.float64)
logvar_b = torch.randn(B, L, generator=gb, dtype=torch.float64)
std_b = torch.exp(0.5 * logvar_b)
ours = kl_to_prior(mu_b, logvar_b)
joint = kl_divergence(MultivariateNormal(mu_b, torch.diag_embed(std_b**2)),
                      MultivariateNormal(torch.zeros(L, dtype=torch.float64), torch.eye(L, dtype=torch.float64)))
per_dim = kl_divergence(Normal(mu_b, std_b), Normal(torch.zeros_like(mu_b), torch.ones_like(std_b)))  # (B, L)
print("KL per image:", ours.shape, [round(v, 6) for v in ours.tolist()])
holds(torch.allclose(ours, joint), "the KL per image equals that of a full-covariance MultivariateNormal")
holds(torch.allclose(ours, per_dim.sum(-1)) and torch.allclose(ours, kl_standard_normal(mu_b, logvar_b)),
      "it is the sum of the per-dimension KLs, as vaelib's kl_standard_normal computes it");

# %% [markdown]
# ## Checking the closed form by Monte Carlo
#
# The definition $\mathrm{KL} = \mathbb E_q[\log q(z) - \log p(z)]$ can be estimated without any algebra. Draw
# $S$ samples $z\sim q$ and average the log-ratio. The closed form must lie within `Z_MAX` SE of the estimate.
# We try narrow and wide $q$, means near and far from 0, and a three-dimensional $q$:

# %%
settings = [([0.0], [1.0]), ([0.7], [0.4]), ([-2.0], [1.0]), ([0.0], [0.1]), ([1.5], [3.0]),
            ([0.5, -1.0, 2.0], [0.3, 1.5, 0.8])]
gm, ses, within = torch.Generator().manual_seed(2), [], []
print(f"{'mu':>16} {'sigma':>16} {'closed form':>11} {'Monte Carlo':>11} {'SE':>8} {'(MC - closed)/SE':>17}")
for mu_s, sigma_s in settings:
    m, s = torch.tensor([mu_s], dtype=torch.float64), torch.tensor([sigma_s], dtype=torch.float64)  # (1, L)
    z_s = m + s * torch.randn(n_mc, len(mu_s), generator=gm, dtype=torch.float64)  # (S, L), z ~ q
    ratio = (Normal(m, s).log_prob(z_s) - Normal(0.0, 1.0).log_prob(z_s)).sum(-1)  # (S,)
    estimate, se = ratio.mean(), ratio.std() / n_mc**0.5
    closed = kl_to_prior(m, torch.log(s**2))[0]
    z_score = f"{((estimate - closed) / se).item():17.2f}" if se > 0 else f"{'(q = p)':>17}"
    print(f"{str(mu_s):>16} {str(sigma_s):>16} {closed.item():11.4f} {estimate.item():11.4f} {se.item():8.4f} {z_score}")
    ses.append(se.item())
    within.append(abs(estimate - closed) <= Z_MAX * se)
holds(all(within), f"the closed form lies within {Z_MAX} SE of every Monte Carlo estimate");

# %% [markdown]
# The closed form is exact and costs one line. The Monte Carlo column still carries a standard error after
# $S$ samples per row. That is why the VAE uses the closed form for this term (Kingma & Welling, 2014,
# Appendix B), and samples only for the reconstruction term. The first row is the exception: there $q = p$,
# and the log-ratio is 0 for every sample.

# %%
print(f"S = {n_mc:,} samples per row: standard errors from {min(ses[1:]):.4f} to {max(ses):.4f} nats "
      f"where q differs from p, and {ses[0]} where q = p")
holds(ses[0] == 0 and min(ses[1:]) > 0, "the standard error is 0 where q = p, and positive elsewhere");

# %% [markdown]
# ## What the KL term asks of the encoder
#
# Write $u = \sigma^2$. The KL per dimension splits into $\tfrac12\mu^2$, which pulls the mean towards 0,
# and $\tfrac12(u - 1 - \log u)$. The second part is $\ge 0$, with equality only at $u = 1$, since
# $\log u \le u - 1$. So $\mathrm{KL}\ge 0$, with equality exactly when $q = p$. On a grid of $(\mu, \sigma)$:

# %%
mu_axis = torch.arange(-300, 301, dtype=torch.float64) / 100  # -3.00 to 3.00, 0 exactly on the grid
sigma_axis = torch.arange(5, 301, dtype=torch.float64) / 100  # 0.05 to 3.00
MU, SIGMA = torch.meshgrid(mu_axis, sigma_axis, indexing="xy")  # (296, 601): rows are sigma
KL = kl_one_dim(MU, SIGMA)
row, col = divmod(KL.argmin().item(), KL.shape[1])
print(f"smallest KL on the grid: {KL.min().item():.6f} at mu = {MU[row, col].item():.2f}, sigma = {SIGMA[row, col].item():.2f}")
holds((KL >= 0).all(), "KL >= 0 everywhere on the grid")
holds((MU[row, col], SIGMA[row, col]) == (0, 1) and KL.min() == 0, "its minimum, 0, is at mu = 0, sigma = 1 (q = p)");

# %% [markdown]
# The same grid as a picture (left), with contour lines at the levels written on them, and three slices at
# fixed $\mu$ (right):

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
image = ax1.pcolormesh(MU, SIGMA, KL, cmap="viridis", vmax=6, shading="auto")
levels = [0.1, 0.5, 1, 2, 4]
lines = ax1.contour(MU, SIGMA, KL, levels=levels, colors="white", linewidths=0.8)
ax1.clabel(lines, fmt="%g", fontsize=8, manual=[(math.sqrt(2 * c), 1.0) for c in levels])  # where KL = mu^2 / 2 = c
ax1.plot(0, 1, "r*", markersize=12, label=r"minimum: $\mu=0,\ \sigma=1$ ($q=p$)")
fig.colorbar(image, ax=ax1, label="KL(q || p) (nats), clipped at 6")
ax1.set(xlabel=r"mean $\mu$ of $q$", ylabel=r"standard deviation $\sigma$ of $q$",
        title=r"KL$(\mathcal{N}(\mu,\sigma^2)\,\|\,\mathcal{N}(0,1))$")
ax1.legend(loc="upper right", fontsize=8)
for m in [0.0, 1.0, 2.0]:
    ax2.plot(sigma_axis, kl_one_dim(torch.tensor(m, dtype=torch.float64), sigma_axis), label=rf"$\mu = {m:g}$")
ax2.axvline(1, color="grey", ls=":", label=r"$\sigma = 1$ (the prior's)")
ax2.set(xlabel=r"standard deviation $\sigma$ of $q$", ylabel="KL (nats)", ylim=(0, 6), title="Slices at fixed mean")
ax2.legend()
plt.show()

# %% [markdown]
# The right panel shows the two ways to pay at $\mu = 0$, where $\mathrm{KL} = \tfrac12\sigma^2 - \tfrac12 - \log\sigma$.
# A $q$ much narrower than the prior costs about $-\log\sigma$: each tenfold narrowing adds $\log 10 \approx 2.3$
# nats. A much wider one costs about $\sigma^2/2$. Then each tenfold widening multiplies the KL by 100, to
# within 10%.

# %%
narrow = kl_one_dim(torch.zeros(3, dtype=torch.float64), torch.tensor([1e-1, 1e-2, 1e-3], dtype=torch.float64))
wide = kl_one_dim(torch.zeros(3, dtype=torch.float64), torch.tensor([1e1, 1e2, 1e3], dtype=torch.float64))
print(f"sigma = 0.1, 0.01, 0.001: KL = {[round(v, 3) for v in narrow.tolist()]} nats, "
      f"steps of {[round(v, 3) for v in narrow.diff().tolist()]} (log 10 = {math.log(10):.3f})")
print(f"sigma = 10, 100, 1000:    KL = {[round(v) for v in wide.tolist()]} nats, "
      f"ratios {[round(v, 1) for v in (wide[1:] / wide[:-1]).tolist()]}")
holds(((narrow.diff() - math.log(10)).abs() < 0.01).all(), "each tenfold narrowing adds log 10 nats, to 0.01")
holds(((wide[1:] / wide[:-1] - 100).abs() < 10).all(), "each tenfold widening multiplies the KL by 100, to 10%");

# %% [markdown]
# Only the reconstruction term gains from moving $q_\phi(z\mid x)$ away from the prior. The KL term is the
# price of every such move, paid per image. Its gradients are simple:
# $\partial\,\mathrm{KL}/\partial\mu_j = \mu_j$ and $\partial\,\mathrm{KL}/\partial\log\sigma_j^2 = \tfrac12(\sigma_j^2 - 1)$.

# %%
mu_g, logvar_g = mu_b.clone().requires_grad_(), logvar_b.clone().requires_grad_()
kl_to_prior(mu_g, logvar_g).sum().backward()
holds(torch.allclose(mu_g.grad, mu_b) and torch.allclose(logvar_g.grad, 0.5 * (logvar_b.exp() - 1)),
      "autograd gives d KL / d mu = mu and d KL / d logvar = (sigma^2 - 1) / 2");

# %% [markdown]
# ## The sign of the KL term
#
# Students often ask: why does VAE code *add* the KL to the loss, when the ELBO *subtracts* it? Training
# minimises the loss $-\mathrm{ELBO}$, so both signs flip:
#
# $$\text{loss} = -\mathrm{ELBO} = \underbrace{\mathbb E_q\big[-\log p_\theta(x\mid z)\big]}_{\text{reconstruction loss}}
# + \mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big), \qquad \mathrm{KL}\ge 0 .$$
#
# The reconstruction loss is the binary cross-entropy summed over pixels, so the code reads `recon + kl`.
# With the wrong sign, `recon - kl`, the code still runs. But it rewards $q$ for moving away from the prior.
# Below, gradient descent on the KL term alone, with each sign, from the same start.

# %%
def descend_kl(sign, steps=30, lr=0.1):
    """Gradient descent on sign * KL for one image (L = 2): the KL at every step, the final mu and sigma."""
    mu_d = torch.tensor([[1.0, -0.5]], dtype=torch.float64, requires_grad=True)
    logvar_d = torch.tensor([[-0.5, 0.3]], dtype=torch.float64, requires_grad=True)
    history = []
    for _ in range(steps):
        kl = kl_to_prior(mu_d, logvar_d).sum()
        history.append(kl.item())
        grad_mu, grad_logvar = torch.autograd.grad(sign * kl, (mu_d, logvar_d))
        with torch.no_grad():  # a step downhill on sign * KL
            mu_d -= lr * grad_mu
            logvar_d -= lr * grad_logvar
    history.append(kl_to_prior(mu_d, logvar_d).sum().item())
    return history, mu_d.detach(), (0.5 * logvar_d.detach()).exp()

# %% [markdown]
# With `+ kl`, the right sign, the KL falls at every step and $q$ moves to the prior. With `- kl` the KL grows
# at every step, more than a hundredfold in 30 steps. The KL has no upper bound, so the wrong-signed loss has
# no minimum to stop at.

# %%
changes = {}
for sign, name in [(1, "+ kl, right sign"), (-1, "- kl, wrong sign")]:
    history, mu_end, sigma_end = descend_kl(sign)
    print(f"{name}: KL at steps 0, 10, 20, 30 = {[round(v, 3) for v in history[::10]]}; "
          f"mu -> {[round(v, 2) for v in mu_end[0].tolist()]}, sigma -> {[round(v, 2) for v in sigma_end[0].tolist()]}")
    changes[sign] = (torch.tensor(history).diff(), history)  # KL after each step minus KL before it
holds((changes[1][0] < 0).all() and changes[1][1][-1] < 0.01, "with + kl the KL falls at every step, to below 0.01")
holds((changes[-1][0] > 0).all() and changes[-1][1][-1] > 100 * changes[-1][1][0],
      "with - kl it grows at every step, more than a hundredfold in 30 steps");

# %% [markdown]
# ## Summary
#
# - $\mathrm{KL}(\mathcal N(\mu, \mathrm{diag}\,\sigma^2)\,\|\,\mathcal N(0, I)) = \frac12\sum_j(\sigma_j^2 + \mu_j^2 - 1 - \log\sigma_j^2)$.
#   It follows from two Gaussian moments, and gives one number per image, summed over latent dimensions $j$.
# - It agrees with `torch.distributions`, per dimension and as a full-covariance Gaussian, and with Monte
#   Carlo estimates to within `Z_MAX` standard errors.
# - It is $\ge 0$, zero only when $q$ equals the prior, and cheap to differentiate.
# - The ELBO subtracts it, so the loss $-\mathrm{ELBO}$ adds it. The other sign drives $q$ away from the prior.

# %% [markdown]
# ## Exercises
#
# 1. Generalise the KL to any diagonal Gaussian prior. Implement `my_kl_normal(mu_q, logvar_q, mu_p, logvar_p)`,
#    $\mathrm{KL}\big(\mathcal N(\mu_q, \mathrm{diag}\,\sigma_q^2)\,\|\,\mathcal N(\mu_p, \mathrm{diag}\,\sigma_p^2)\big)$ per example,
#    summed over the latent dimensions, with $\sigma^2 = \exp(\text{logvar})$. The page derived only the case
#    $\mu_p = 0$, $\sigma_p = 1$. The next cell checks it against `torch.distributions`.

# %% tags=["solution"]
def my_kl_normal(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))) per example, summed over latent dims.

    Shapes: (B, L), (B, L), (B, L), (B, L) -> (B,).
    """
    # Hint: redo steps 1 to 4 with p = N(mu_p, sigma_p^2). Step 3 now needs E_q[(z - mu_p)^2]:
    # write z - mu_p = (z - mu_q) + (mu_q - mu_p). Keep the logs as logvar (no log of an exp).
    var_q, var_p = logvar_q.exp(), logvar_p.exp()
    return 0.5 * (logvar_p - logvar_q + (var_q + (mu_q - mu_p) ** 2) / var_p - 1).sum(-1)


# %% tags=["nbval-check-output"]
check_kl_normal(my_kl_normal)

# %% [markdown]
# 2. The KL is not symmetric. For $q = \mathcal N(1, 0.5^2)$ and $p = \mathcal N(0, 1)$, compute
#    $\mathrm{KL}(q\,\|\,p)$ and $\mathrm{KL}(p\,\|\,q)$. Which is larger, and why? The ELBO uses $\mathrm{KL}(q\,\|\,p)$.
#    Does it penalise $q$ more for putting mass where $p$ has little, or for missing mass where $p$ has some?

# %% [markdown] tags=["answer"]
# *Answer.* $\mathrm{KL}(q\,\|\,p) = \mathbb E_q[\log q - \log p]$ averages under $q$. It is large when $q$ puts
# mass where $p$ is small, and it does not see the regions that $q$ misses. $\mathrm{KL}(p\,\|\,q)$ averages
# under $p$, so it charges for every region where $p$ has mass and $q$ has little. Here $q$ is narrower than
# $p$ and off-centre. So $p$'s tail on the far side from 1 falls where $q$'s density is tiny, and
# $\mathrm{KL}(p\,\|\,q)$ is the larger:

# %% tags=["answer"]
q_ex = Normal(torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64))
p_ex = Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
kl_qp, kl_pq = kl_divergence(q_ex, p_ex).item(), kl_divergence(p_ex, q_ex).item()
print(f"KL(q || p) = {kl_qp:.4f} nats, KL(p || q) = {kl_pq:.4f} nats")
holds(kl_pq > kl_qp, "KL(p || q) is the larger");

# %% [markdown]
# 3. When no closed form exists, a VAE can use the one-sample estimate $\log q(z) - \log p(z)$ at the $z$ it
#    decodes. For $q = \mathcal N(\mu, \sigma^2)$ and $p = \mathcal N(0, 1)$, derive the variance of this
#    estimate (write $z = \mu + \sigma\varepsilon$). When is it zero? For $\mu = 0.7$, $\sigma = 0.4$, how many
#    samples does the average need before its standard error is at most 0.01 nats?

# %% [markdown] tags=["answer"]
# *Answer.* With $z = \mu + \sigma\varepsilon$,
#
# $$\log q(z) - \log p(z) = -\log\sigma - \tfrac12\varepsilon^2 + \tfrac12(\mu + \sigma\varepsilon)^2
# = \mathrm{KL} + \mu\sigma\,\varepsilon + \tfrac12(\sigma^2 - 1)(\varepsilon^2 - 1).$$
#
# The two noise terms are uncorrelated ($\mathbb E[\varepsilon^3] = 0$), and $\mathrm{Var}(\varepsilon^2) = 2$. So
# the variance is $\mu^2\sigma^2 + \tfrac12(\sigma^2 - 1)^2$. It is zero only when $\mu = 0$ and $\sigma = 1$,
# that is $q = p$, the row of the table with standard error 0. The number of samples for a standard error
# of 0.01 is this variance over $0.01^2$:

# %% tags=["answer"]
mu_e, sigma_e = torch.tensor(0.7, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64)
variance = (mu_e**2 * sigma_e**2 + (sigma_e**2 - 1) ** 2 / 2).item()
z_e = mu_e + sigma_e * torch.randn(100_000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
one_sample = Normal(mu_e, sigma_e).log_prob(z_e) - Normal(0.0, 1.0).log_prob(z_e)  # (S,)
print(f"variance: derived {variance:.4f}, measured {one_sample.var().item():.4f} nats^2")
print(f"one standard deviation: {variance**0.5:.2f} nats; samples for a standard error of at most 0.01 nats: "
      f"{math.ceil(variance / 0.01**2):,}")
holds(abs(one_sample.var().item() - variance) < 0.05 * variance, "the measured variance is within 5% of the derived one");

# %% [markdown] tags=["answer"]
# With one sample per image, the estimated KL of this one latent dimension is off by about the standard
# deviation printed above. That noise enters the loss and its gradient; the closed form removes it at no cost.
