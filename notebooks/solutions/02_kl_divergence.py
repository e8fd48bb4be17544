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
# # 2. The KL divergence between the encoder's Gaussian and the prior
#
# Notebook 1 split the ELBO into a reconstruction term and a regulariser,
#
# $$\mathrm{ELBO}(x) = \mathbb E_{q_\phi(z\mid x)}\big[\log p_\theta(x\mid z)\big] - \mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big),
# \qquad \mathrm{KL}(q\,\|\,p) = \mathbb E_{q(z)}\big[\log q(z) - \log p(z)\big].$$
#
# The second term compares the encoder's Gaussian with the **prior over the latent code**, $p(z) = \mathcal N(0, I)$.
# (The original notebook wrote $p(x)$ here; the data distribution plays no part in this term.) For these
# two Gaussians the expectation has a closed form, so the VAE needs no sampling for this term. We derive
# it one step at a time, check every step with numbers, and then check the result against
# `torch.distributions` and against a Monte Carlo estimate with its standard error.

# %%
import math

import matplotlib.pyplot as plt
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from vaelib.config import smoke
from vaelib.elbo import kl_standard_normal
from vaelib.exercises import check_kl

SMOKE = smoke()  # VAELIB_SMOKE=1 (as in `make check`) shrinks the Monte Carlo sample counts
n_mc = 20_000 if SMOKE else 1_000_000  # Monte Carlo samples per check

# %% [markdown]
# ## One latent dimension, step by step
#
# Let $q(z) = \mathcal N(\mu, \sigma^2)$ and $p(z) = \mathcal N(0, 1)$. **Step 1**, the two log-densities:
#
# $$\log q(z) = -\tfrac12\log 2\pi - \tfrac12\log\sigma^2 - \frac{(z-\mu)^2}{2\sigma^2},
# \qquad \log p(z) = -\tfrac12\log 2\pi - \frac{z^2}{2}.$$
#
# We check them against `Normal.log_prob` at a few points, for an arbitrary $(\mu, \sigma)$, in float64:

# %%
# NBVAL_CHECK_OUTPUT
mu, sigma = torch.tensor(0.7, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64)
z = torch.linspace(-3, 3, 7, dtype=torch.float64)
log_q = -0.5 * math.log(2 * math.pi) - 0.5 * torch.log(sigma**2) - (z - mu) ** 2 / (2 * sigma**2)
log_p = -0.5 * math.log(2 * math.pi) - z**2 / 2
torch.testing.assert_close(log_q, Normal(mu, sigma).log_prob(z))
torch.testing.assert_close(log_p, Normal(0.0, 1.0).log_prob(z).double())
print("step 1, log q(z) and log p(z) match Normal.log_prob:", True)

# %% [markdown]
# **Step 2**, their difference. The $\log 2\pi$ terms cancel:
#
# $$\log q(z) - \log p(z) = -\tfrac12\log\sigma^2 - \frac{(z-\mu)^2}{2\sigma^2} + \frac{z^2}{2}.$$

# %%
# NBVAL_CHECK_OUTPUT
log_ratio = -0.5 * torch.log(sigma**2) - (z - mu) ** 2 / (2 * sigma**2) + z**2 / 2
torch.testing.assert_close(log_ratio, log_q - log_p)
print("step 2, log q(z) - log p(z) without the 2 pi terms:", True)

# %% [markdown]
# **Step 3**, take the expectation under $q$. Only two moments of $z\sim q$ are needed:
# $\mathbb E_q[(z-\mu)^2] = \sigma^2$ (the variance) and $\mathbb E_q[z^2] = \mathrm{Var}(z) + (\mathbb E z)^2 = \sigma^2 + \mu^2$.
# Monte Carlo estimates of both, each with its standard error (SE), should lie within about 3 SE of these values:

# %%
g = torch.Generator().manual_seed(0)
z_mc = mu + sigma * torch.randn(n_mc, generator=g, dtype=torch.float64)  # z ~ q
for name, samples, exact in [("E[(z - mu)^2]", (z_mc - mu) ** 2, sigma**2), ("E[z^2]", z_mc**2, sigma**2 + mu**2)]:
    estimate, se = samples.mean(), samples.std() / n_mc**0.5
    print(f"step 3, {name:13s}: exact {exact.item():.5f}, Monte Carlo {estimate.item():.5f} ± {se.item():.5f}"
          f" ({((estimate - exact) / se).item():+.1f} SE)")
    assert abs(estimate - exact) < 4 * se

# %% [markdown]
# **Step 4**, substitute the moments and collect terms:
#
# $$\mathrm{KL}(q\,\|\,p) = -\tfrac12\log\sigma^2 - \frac{\sigma^2}{2\sigma^2} + \frac{\sigma^2 + \mu^2}{2}
# = \tfrac12\big(\sigma^2 + \mu^2 - 1 - \log\sigma^2\big).$$
#
# `torch.distributions.kl_divergence` has its own implementation of the KL between two normals; ours must
# agree with it for any $(\mu, \sigma)$:

# %%
# NBVAL_CHECK_OUTPUT
def kl_one_dim(mu, sigma):
    """KL(N(mu, sigma^2) || N(0, 1)) = 0.5 (sigma^2 + mu^2 - 1 - log sigma^2), in nats."""
    return 0.5 * (sigma**2 + mu**2 - 1 - torch.log(sigma**2))


cases = torch.tensor([[0.0, 1.0], [0.7, 0.4], [-2.0, 1.0], [0.0, 0.1], [1.5, 3.0]], dtype=torch.float64)
for m, s in cases:
    ours, reference = kl_one_dim(m, s), kl_divergence(Normal(m, s), Normal(0.0, 1.0))
    torch.testing.assert_close(ours, reference.double())
    print(f"mu = {m.item():+.1f}, sigma = {s.item():.1f}:  KL = {ours.item():.6f} nats")

# %% [markdown]
# ## Many latent dimensions, and a batch
#
# The encoder's $q_\phi(z\mid x) = \mathcal N(\mu, \mathrm{diag}(\sigma^2))$ and the prior $\mathcal N(0, I)$ both
# factorise over the $L$ latent dimensions, so $\log q(z) - \log p(z)$ is a sum over $j$ of one-dimensional
# terms, each depending on $z_j$ only. The expectation of a sum is the sum of expectations, hence
#
# $$\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big) = \frac12\sum_{j=1}^{L}\big(\sigma_j^2 + \mu_j^2 - 1 - \log\sigma_j^2\big).$$
#
# For a minibatch of $B$ images, image $i$ has its own $\mu_i, \sigma_i\in\mathbb R^L$ and its own KL,
# $\mathrm{KL}_i = \frac12\sum_{j=1}^{L}\big(\sigma_{ij}^2 + \mu_{ij}^2 - 1 - \log\sigma_{ij}^2\big)$: the sum runs over the
# latent dimensions $j$ of one image. (The original notebook indexed $\sigma_{ii}, \mu_{ii}$, mixing the
# image index with the dimension index.) The encoder outputs $\log\sigma^2$, so we write the KL in
# terms of `logvar`, which also avoids taking the log of a small $\sigma^2$:

# %%
def kl_from_scratch(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) for each row, summed over latent dims. Shapes: (B, L), (B, L) -> (B,)."""
    return 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(dim=-1)  # sum over j, one number per image

# %% [markdown]
# The "sum of per-dimension KLs" step is checked against a full-covariance `MultivariateNormal` with a
# diagonal covariance, which knows nothing about factorisation; then against `torch.distributions` per
# dimension, and against the library's `kl_standard_normal`:

# %%
# NBVAL_CHECK_OUTPUT
gb = torch.Generator().manual_seed(1)
B, L = 4, 3
mu_b = torch.randn(B, L, generator=gb, dtype=torch.float64)
logvar_b = torch.randn(B, L, generator=gb, dtype=torch.float64)
std_b = torch.exp(0.5 * logvar_b)
ours = kl_from_scratch(mu_b, logvar_b)
joint = kl_divergence(MultivariateNormal(mu_b, torch.diag_embed(std_b**2)),
                      MultivariateNormal(torch.zeros(L, dtype=torch.float64), torch.eye(L, dtype=torch.float64)))
torch.testing.assert_close(ours, joint)
per_dim = kl_divergence(Normal(mu_b, std_b), Normal(torch.zeros_like(mu_b), torch.ones_like(std_b)))  # (B, L)
torch.testing.assert_close(ours, per_dim.sum(-1))
torch.testing.assert_close(ours, kl_standard_normal(mu_b, logvar_b))
print("KL per image:", ours.shape, [round(v, 6) for v in ours.tolist()])

# %% [markdown]
# ## Checking the closed form by Monte Carlo
#
# The definition $\mathrm{KL} = \mathbb E_q[\log q(z) - \log p(z)]$ can be estimated without any algebra:
# draw $z\sim q$ and average the log-ratio. The estimate has a standard error $\mathrm{SD}/\sqrt n$, and the
# closed form should lie within about 3 SE of it. We try narrow and wide $q$, means near and far from 0,
# and a three-dimensional $q$ (summing over dimensions):

# %%
settings = [([0.0], [1.0]), ([0.7], [0.4]), ([-2.0], [1.0]), ([0.0], [0.1]), ([1.5], [3.0]),
            ([0.5, -1.0, 2.0], [0.3, 1.5, 0.8])]
gm = torch.Generator().manual_seed(2)
print(f"{'mu':>16} {'sigma':>16} {'closed form':>11} {'Monte Carlo':>11} {'SE':>8} {'(MC - closed)/SE':>17}")
for mu_s, sigma_s in settings:
    m, s = torch.tensor(mu_s, dtype=torch.float64), torch.tensor(sigma_s, dtype=torch.float64)
    z_s = m + s * torch.randn(n_mc, len(mu_s), generator=gm, dtype=torch.float64)  # (n, L), z ~ q
    ratio = (Normal(m, s).log_prob(z_s) - Normal(0.0, 1.0).log_prob(z_s)).sum(-1)  # (n,)
    estimate, se = ratio.mean(), ratio.std() / n_mc**0.5
    closed = kl_from_scratch(m, torch.log(s**2))
    z_score = f"{((estimate - closed) / se).item():17.2f}" if se > 0 else f"{'(q = p)':>17}"
    print(f"{str(mu_s):>16} {str(sigma_s):>16} {closed.item():11.4f} {estimate.item():11.4f} "
          f"{se.item():8.4f} {z_score}")
    assert abs(estimate - closed) <= 4 * se

# %% [markdown]
# The Monte Carlo column needs many samples to pin down what the closed form gives exactly and for free;
# that is why the VAE uses the closed form for this term (Kingma & Welling, 2014, Appendix B), and
# keeps sampling for the reconstruction term only. Note the case $\mu = 0, \sigma = 1$: there $q = p$, the
# log-ratio is 0 for every sample, and the standard error is 0 too.
#
# ## What the KL term asks of the encoder
#
# Write $u = \sigma^2$. The KL per dimension splits into $\tfrac12\mu^2$, which pulls the mean towards 0,
# and $\tfrac12(u - 1 - \log u)$, which is $\ge 0$ with equality only at $u = 1$ (since $\log u \le u - 1$).
# So $\mathrm{KL}\ge 0$, with equality exactly when $q = p$. On a grid of $(\mu, \sigma)$:

# %%
# NBVAL_CHECK_OUTPUT
mu_axis = torch.arange(-300, 301, dtype=torch.float64) / 100  # -3.00 to 3.00, 0 exactly on the grid
sigma_axis = torch.arange(5, 301, dtype=torch.float64) / 100  # 0.05 to 3.00
MU, SIGMA = torch.meshgrid(mu_axis, sigma_axis, indexing="xy")  # (296, 301): rows are sigma
KL = kl_one_dim(MU, SIGMA)
row, col = divmod(KL.argmin().item(), KL.shape[1])
print(f"smallest KL on the grid: {KL.min().item():.6f} "
      f"at mu = {MU[row, col].item():.2f}, sigma = {SIGMA[row, col].item():.2f}")
print("KL >= 0 everywhere:", bool((KL >= 0).all()))

# %% [markdown]
# The same grid as a picture (left), with contour lines every few tenths of a nat, and three slices at fixed
# $\mu$ (right):

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
image = ax1.pcolormesh(MU, SIGMA, KL, cmap="viridis", vmax=6, shading="auto")
lines = ax1.contour(MU, SIGMA, KL, levels=[0.1, 0.5, 1, 2, 4], colors="white", linewidths=0.8)
ax1.clabel(lines, fmt="%g", fontsize=8)
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
# The right panel shows the two ways to pay: a $q$ much narrower than the prior costs $-\log\sigma$ (slowly,
# logarithmically), a wider one costs $\sigma^2/2$. In training, the reconstruction term pushes each
# $q_\phi(z\mid x)$ to be narrow and far from other images' codes; the KL term pulls it back towards the prior.
#
# The gradients the encoder receives from this term are just as simple:
# $\partial\,\mathrm{KL}/\partial\mu_j = \mu_j$ and $\partial\,\mathrm{KL}/\partial\log\sigma_j^2 = \tfrac12(\sigma_j^2 - 1)$. Checked with autograd:

# %%
# NBVAL_CHECK_OUTPUT
mu_g, logvar_g = mu_b.clone().requires_grad_(), logvar_b.clone().requires_grad_()
kl_from_scratch(mu_g, logvar_g).sum().backward()
torch.testing.assert_close(mu_g.grad, mu_b)
torch.testing.assert_close(logvar_g.grad, 0.5 * (logvar_b.exp() - 1))
print("d KL / d mu = mu and d KL / d logvar = (sigma^2 - 1) / 2:", True)

# %% [markdown]
# ## Summary
#
# - $\mathrm{KL}(\mathcal N(\mu, \mathrm{diag}\,\sigma^2)\,\|\,\mathcal N(0, I)) = \frac12\sum_j(\sigma_j^2 + \mu_j^2 - 1 - \log\sigma_j^2)$,
#   from two Gaussian moments; one number per image, summed over latent dimensions $j$.
# - It agrees with `torch.distributions` (per dimension and as a full-covariance Gaussian), with
#   `vaelib.kl_standard_normal`, and with Monte Carlo estimates to within their standard errors.
# - It is $\ge 0$, zero only when $q$ equals the prior, and cheap to differentiate.
#
# ## Exercises
#
# 1. Implement the KL in terms of `mu` and `logvar`, summed over the last dimension. The next cell checks it.

# %% tags=["solution"]
def my_kl(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over latent dims. Shapes: (B, L), (B, L) -> (B,)."""
    # Hint: 0.5 * (sigma^2 + mu^2 - 1 - log sigma^2) per dimension, with sigma^2 = exp(logvar); then sum over dim -1.
    return 0.5 * (logvar.exp() + mu.pow(2) - 1 - logvar).sum(-1)


# %%
check_kl(my_kl)

# %% [markdown]
# 2. Derive $\mathrm{KL}(\mathcal N(\mu_1, \sigma_1^2)\,\|\,\mathcal N(\mu_2, \sigma_2^2))$ in the same four steps and check it
#    against `kl_divergence`. Use it to show that the KL is not symmetric: compare
#    $\mathrm{KL}(q\,\|\,p)$ and $\mathrm{KL}(p\,\|\,q)$ for $q = \mathcal N(1, 0.5^2)$, $p = \mathcal N(0, 1)$.
# 3. When no closed form exists, a VAE can use the one-sample estimate $\log q(z\mid x) - \log p(z)$ at the
#    same $z$ it decodes. For $\mu = 0.7$, $\sigma = 0.4$, how many samples does this estimator need before
#    its standard error falls below 0.01 nats? What does that imply for the noise in the ELBO?
