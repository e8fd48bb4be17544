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
# # 1. The generative model and the evidence lower bound
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/01_generative_model_elbo.ipynb)
#
# A variational autoencoder (VAE; Kingma & Welling, *Auto-Encoding Variational Bayes*, 2014) is a
# generative model of images $x$ driven by a hidden code $z$, together with a second network that
# guesses the code of a given image. This notebook sets up both and derives the objective that
# trains them, the evidence lower bound (ELBO). Every step is checked with numbers:
#
# 1. why the posterior $p(z\mid x)$ is out of reach, and the MNIST digits we will model;
# 2. the generative process, logits, and the Bernoulli log-likelihood computed from logits;
# 3. the mean-field Gaussian $q_\phi(z\mid x)$ and the inference network that outputs it;
# 4. the ELBO by importance sampling and Jensen's inequality, checked on a small linear-Gaussian
#    model where $\log p(x)$ and $p(z\mid x)$ are known exactly.

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
import torch.nn.functional as F
from torch.distributions import Bernoulli, MultivariateNormal, Normal, kl_divergence

from vaelib.config import ModelConfig, seed_everything, smoke
from vaelib.data import binarise, load_mnist
from vaelib.elbo import bernoulli_log_likelihood, log_normal
from vaelib.exercises import check_bernoulli_entropy
from vaelib.model import VAE

SMOKE = smoke()  # VAELIB_SMOKE=1 (as in `make check`) shrinks the Monte Carlo sample counts
data = load_mnist("auto")

# %% [markdown]
# ## Variational inference in brief
#
# A latent-variable model draws a code $z$ from a prior $p(z)$ and then an image from $p_\theta(x\mid z)$.
# Given an image, what we would like is its posterior, by Bayes' rule
#
# $$p_\theta(z\mid x) = \frac{p_\theta(x\mid z)\,p(z)}{p_\theta(x)}, \qquad
# p_\theta(x) = \int p_\theta(x\mid z)\,p(z)\,\mathrm dz .$$
#
# The denominator, the *evidence* or marginal likelihood, is the problem. When $p_\theta(x\mid z)$
# is parametrised by a neural network $f_\theta(z)$, the integral over $z$ has no closed form, and
# brute-force integration costs a number of grid points exponential in the dimension of $z$.
# Without $p_\theta(x)$ we can neither evaluate the posterior nor maximise the likelihood directly.
#
# *Variational inference* replaces the exact posterior by a member $q(z)$ of a simple family and
# fits $q$ by optimisation instead of integration. The quantity it optimises, the ELBO, is a lower
# bound on $\log p_\theta(x)$ that we can compute; we derive it below.
#
# ## The data: binarised MNIST
#
# `load_mnist("auto")` returns the full MNIST set when it is on this machine or can be downloaded,
# and otherwise the real MNIST test digits bundled with vaelib; the line above says which. Images
# are rows of $D = 784$ grey levels in $[0, 1]$:

# %%
print(f"train_x: {tuple(data.train_x.shape)}, grey levels in [{data.train_x.min():.0f}, {data.train_x.max():.0f}]")
fig, axes = plt.subplots(2, 8, figsize=(10, 3))
for ax, image, label in zip(axes.flat, data.train_x[:16], data.train_y[:16]):
    ax.imshow(image.reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"label {label.item()}", fontsize=9)
    ax.axis("off")
fig.suptitle("The first 16 training digits (28 x 28 grey levels, black = 1)")
plt.show()

# %% [markdown]
# Our likelihood will be Bernoulli, one coin per pixel, so the model sees binary images: each grey
# level is used as the probability that the pixel is black, and a fresh binary image is drawn each
# time a digit is used (*dynamic binarisation*, studied in notebook 4).

# %% tags=["nbval-check-output"]
g = torch.Generator().manual_seed(0)
x = binarise(data.train_x[:8], g)  # (B, D) = (8, 784), entries in {0, 1}
print(x.shape, "values:", x.unique().tolist())

# %% [markdown]
# Why not model the grey levels themselves with the same Bernoulli formula? For a grey level
# $x\in[0,1]$, $p^x(1-p)^{1-x}$ is not a probability density on $[0, 1]$: its integral over $x$ is
# $(2p-1)/\log\frac{p}{1-p}$, at most $\tfrac12$, and it depends on $p$. A "log-likelihood" of grey
# images computed with it is therefore not a log-likelihood, and not comparable with the numbers of
# this course or of the papers (which use binarised MNIST); the *continuous Bernoulli* of Loaiza-Ganem
# & Cunningham (2019) adds the missing normaliser. Checked by quadrature:

# %% tags=["nbval-check-output"]
grey = torch.linspace(0, 1, 100_001, dtype=torch.float64)  # grey levels x
for p in [0.1, 0.5, 0.9, 0.99]:
    integral = torch.trapezoid(p**grey * (1 - p) ** (1 - grey), grey).item()
    closed = (2 * p - 1) / math.log(p / (1 - p)) if p != 0.5 else 0.5
    assert abs(integral - closed) < 1e-9 and integral <= 0.5
    print(f"p = {p:4}: integral over x in [0, 1] of p^x (1 - p)^(1 - x) = {integral:.6f}")

# %% [markdown]
# ## The generative process
#
# The VAE's model of an image is
#
# $$z \sim \mathcal N(0, I_L), \qquad \ell = f_\theta(z)\in\mathbb R^{D}, \qquad
# x_d \mid z \sim \mathrm{Bernoulli}\big(\sigma(\ell_d)\big),\ d = 1,\dots,D,$$
#
# where $L$ is the number of latent dimensions, $f_\theta$ the decoder network, $\ell$ its output
# *logits* and $\sigma(\ell)=1/(1+e^{-\ell})$ the logistic sigmoid. The pixels are independent *given*
# $z$; all dependence between them is carried by the code. `VAE.decode` is $f_\theta$, with the
# course's shape $L = 2 \to 128 \to 256 \to 784$. Fitting $\theta$ is the subject of notebook 4; here
# the weights are random.

# %% tags=["nbval-check-output"]
seed_everything(0)
model = VAE(ModelConfig())  # untrained: theta and phi at their random initial values
z = torch.randn(8, model.config.z_dim, generator=torch.Generator().manual_seed(1))  # (B, L)
with torch.no_grad():
    logits = model.decode(z)  # (B, D): real numbers, not probabilities
x_sampled = Bernoulli(logits=logits).sample()  # (B, D) in {0, 1}
print("z:", tuple(z.shape), " logits:", tuple(logits.shape), " x:", tuple(x_sampled.shape))
print(f"largest |logit| of the untrained decoder: {logits.abs().max():.2f}, so every pixel probability "
      f"lies in [{torch.sigmoid(logits).min():.2f}, {torch.sigmoid(logits).max():.2f}]")

# %% [markdown]
# With logits that small, every pixel is close to a fair coin: the untrained decoder draws grey
# noise. Each column below is one code $z$: the top row shows $\sigma(\ell)$, the probability of
# black for every pixel, and the bottom row one binary image drawn from those probabilities.

# %%
fig, axes = plt.subplots(2, 8, figsize=(10, 3))
for i in range(8):
    axes[0, i].imshow(torch.sigmoid(logits[i]).reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
    axes[1, i].imshow(x_sampled[i].reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
    axes[0, i].set_title(f"z = ({z[i, 0]:.1f}, {z[i, 1]:.1f})", fontsize=8)
for ax in axes.flat:
    ax.axis("off")
fig.suptitle("Untrained decoder: pixel probabilities sigmoid(logits) (top) and a Bernoulli draw (bottom)")
plt.show()

# %% [markdown]
# ## Logits
#
# The logit of a probability $p$ is its log-odds,
#
# $$\mathrm{logit}(p) = \log\frac{p}{1-p}, \qquad\text{with inverse}\qquad \sigma(\ell) = \frac{1}{1+e^{-\ell}} .$$
#
# It maps $(0,1)$ onto the whole real line, which is why a network outputs logits: any real number
# is a valid logit. Its sign tells which outcome is more likely: $\mathrm{logit}(p)<0$ for $p<\tfrac12$,
# $\mathrm{logit}(\tfrac12)=0$, and $\mathrm{logit}(p)>0$ for $p>\tfrac12$; it is odd about $\tfrac12$,
# $\mathrm{logit}(1-p) = -\mathrm{logit}(p)$. Checked against `torch.logit` and `torch.sigmoid`:

# %% tags=["nbval-check-output"]
p = torch.tensor([0.01, 0.2, 0.5, 0.8, 0.99], dtype=torch.float64)
logit_p = torch.log(p / (1 - p))
torch.testing.assert_close(logit_p, torch.logit(p))
torch.testing.assert_close(torch.sigmoid(logit_p), p)  # sigmoid inverts the logit
torch.testing.assert_close(logit_p.flip(0), -logit_p)  # logit(1 - p) = -logit(p)
for p_i, l_i in zip(p.tolist(), logit_p.tolist()):
    print(f"p = {p_i:4.2f}   logit(p) = {l_i:+.6f}   {['negative', 'zero', 'positive'][(l_i > 0) - (l_i < 0) + 1]}")

# %% [markdown]
# Plotted over $(0, 1)$: steep near 0 and 1, where small changes in probability are large changes in
# log-odds, and close to the line $4(p - \tfrac12)$ around one half, where its slope
# $1/(p(1-p))$ is 4 (checked below the plot).

# %%
p_grid = torch.linspace(0.001, 0.999, 500)
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(p_grid, torch.logit(p_grid), label=r"$\mathrm{logit}(p)=\log\frac{p}{1-p}$")
ax.plot(p_grid, 4 * (p_grid - 0.5), ":", color="grey", label=r"$4(p - \frac{1}{2})$")
ax.axhline(0, color="grey", lw=0.8)
ax.set(xlabel="probability $p$", ylabel="logit (log-odds, nats)", ylim=(-7, 7), title="The logit function")
ax.legend()
plt.show()
half = torch.tensor(0.5, requires_grad=True)
(slope,) = torch.autograd.grad(torch.logit(half), half)
print(f"slope of the logit at p = 1/2: {slope.item():.6f}")

# %% [markdown]
# ## The Bernoulli log-likelihood, from logits
#
# For one pixel, $\log p(x_d\mid z) = x_d\log\sigma(\ell_d) + (1-x_d)\log\big(1-\sigma(\ell_d)\big)$.
# Write it in terms of the logit with the *softplus* $s(\ell) = \log(1+e^{\ell})$:
#
# $$\log\sigma(\ell) = -s(-\ell), \qquad \log\big(1-\sigma(\ell)\big) = -s(\ell), \qquad s(\ell) - s(-\ell) = \ell,$$
#
# so that, summing over the independent pixels,
#
# $$\log p_\theta(x\mid z) = \sum_{d=1}^{D}\Big(-x_d\,s(-\ell_d) - (1-x_d)\,s(\ell_d)\Big)
# = \sum_{d=1}^{D}\big(x_d\,\ell_d - s(\ell_d)\big).$$
#
# Each identity, then the sum, checked in float64 on random logits:

# %% tags=["nbval-check-output"]
ell = 5 * torch.randn(4, 784, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
xb = torch.bernoulli(torch.full_like(ell, 0.3), generator=torch.Generator().manual_seed(3))
torch.testing.assert_close(torch.log(torch.sigmoid(ell)), -F.softplus(-ell))
torch.testing.assert_close(torch.log(1 - torch.sigmoid(ell)), -F.softplus(ell))
torch.testing.assert_close(F.softplus(ell) - F.softplus(-ell), ell)
by_hand = (xb * ell - F.softplus(ell)).sum(-1)  # (B,): sum over pixels
torch.testing.assert_close(by_hand, Bernoulli(logits=ell).log_prob(xb).sum(-1))
torch.testing.assert_close(by_hand, bernoulli_log_likelihood(ell, xb))
print("log p(x|z) per image:", [round(v, 4) for v in by_hand.tolist()])

# %% [markdown]
# The formula $x\ell - s(\ell)$ never takes the log of a probability, so it is exact for any logit.
# Computing $\sigma(\ell)$ first and then the log of it, as a decoder that ends in a sigmoid followed
# by binary cross-entropy does, loses precision and even the gradient for pixels the decoder is sure
# about; notebook 4 measures how much, where the training loss is written.
#
# ## The approximate posterior: mean field and the inference network
#
# We choose $q$ from the *mean-field* family: it factorises over the latent dimensions,
# $q(z) = \prod_{j=1}^{L} q_j(z_j)$, and each factor is a Gaussian, so $q(z) = \mathcal N(\mu, \mathrm{diag}(\sigma^2))$.
# The log-density of a product is the sum of the factors' log-densities, which is what
# `vaelib.log_normal` computes; checked against a full-covariance `MultivariateNormal`:

# %% tags=["nbval-check-output"]
gq = torch.Generator().manual_seed(4)
mu_q, logvar_q = torch.randn(3, generator=gq, dtype=torch.float64), torch.randn(3, generator=gq, dtype=torch.float64)
z_q = torch.randn(10, 3, generator=gq, dtype=torch.float64)
std_q = (0.5 * logvar_q).exp()
sum_of_factors = Normal(mu_q, std_q).log_prob(z_q).sum(-1)  # sum over latent dims j
joint = MultivariateNormal(mu_q, torch.diag(std_q**2)).log_prob(z_q)
torch.testing.assert_close(sum_of_factors, joint)
torch.testing.assert_close(sum_of_factors, log_normal(z_q, mu_q, logvar_q))
print("log q(z) = sum_j log q_j(z_j):", torch.allclose(sum_of_factors, joint))

# %% [markdown]
# Fitting a separate $(\mu, \sigma)$ for every image is possible, but costly: each new image would
# need an optimisation of its own before it could be encoded. The VAE *amortises* inference instead: one encoder network $f_\phi$ maps any image to the
# parameters of its approximate posterior,
#
# $$(\mu, \log\sigma^2) = f_\phi(x), \qquad q_\phi(z\mid x) = \mathcal N\big(\mu, \mathrm{diag}(\sigma^2)\big).$$
#
# The encoder outputs $\log\sigma^2$ (`logvar`) rather than $\sigma$ because it may be any real
# number, while $\sigma$ must be positive. `VAE.encode` is $f_\phi$:

# %% tags=["nbval-check-output"]
with torch.no_grad():
    mu, logvar = model.encode(x)  # (B, L) each, for the 8 binarised digits above
q_z_x = Normal(mu, torch.exp(0.5 * logvar))  # q_phi(z|x): B independent mean-field Gaussians
z_draw = q_z_x.sample()  # (B, L)
print("mu:", tuple(mu.shape), " logvar:", tuple(logvar.shape), " z ~ q(z|x):", tuple(z_draw.shape))
torch.testing.assert_close(q_z_x.log_prob(z_draw).sum(-1), log_normal(z_draw, mu, logvar))

# %% [markdown]
# ## The evidence lower bound
#
# Multiply and divide by $q(z\mid x)$ inside the evidence: it becomes an expectation under $q$,
# an *importance-sampling* identity valid for any $q$ that is positive wherever $p(x, z)$ is,
#
# $$p(x) = \int p(x\mid z)\,p(z)\,\mathrm dz = \int q(z\mid x)\,\frac{p(x\mid z)\,p(z)}{q(z\mid x)}\,\mathrm dz
# = \mathbb E_{q(z\mid x)}\!\left[\frac{p(x, z)}{q(z\mid x)}\right].$$
#
# The logarithm is concave, so by Jensen's inequality $\log\mathbb E[w] \ge \mathbb E[\log w]$:
#
# $$\log p(x) \;\ge\; \mathbb E_{q(z\mid x)}\big[\log p(x\mid z) + \log p(z) - \log q(z\mid x)\big]
# \;=\; \underbrace{\mathbb E_{q(z\mid x)}\big[\log p(x\mid z)\big]}_{\text{reconstruction}}
# \;-\; \underbrace{\mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big)}_{\text{regulariser}} \;=\; \mathrm{ELBO}.$$
#
# How loose is the bound? Write $\log p(x, z) = \log p(z\mid x) + \log p(x)$ inside the ELBO:
#
# $$\mathrm{ELBO} = \mathbb E_q\big[\log p(z\mid x) + \log p(x) - \log q(z\mid x)\big]
# = \log p(x) - \mathrm{KL}\big(q(z\mid x)\,\|\,p(z\mid x)\big).$$
#
# So $\log p(x) = \mathrm{ELBO} + \mathrm{KL}(q\,\|\,p(z\mid x))$: the gap is exactly how far $q$ is
# from the true posterior, and it closes if and only if $q(z\mid x) = p(z\mid x)$. Maximising the
# ELBO over $q$ therefore performs inference, and maximising it over $\theta$ approximately maximises
# the likelihood.
#
# ## Checking the ELBO where everything is exact
#
# For a VAE we cannot compute $\log p(x)$ in general (notebook 6 does it for $L = 2$), so we check
# each statement on a model small enough to solve: $z\in\mathbb R^2$, $p(z) = \mathcal N(0, I)$ and a
# *linear* decoder with Gaussian noise,
#
# $$x = Wz + b + \varepsilon,\quad \varepsilon\sim\mathcal N(0, s^2 I_5), \qquad
# p(x) = \mathcal N\big(b,\ WW^\top + s^2 I\big), \qquad p(z\mid x) = \mathcal N(m, S),$$
#
# with $S = (I + W^\top W/s^2)^{-1}$ and $m = S\,W^\top (x - b)/s^2$. We give $W$ two nearly parallel
# columns, so that $z_1$ and $z_2$ can trade off against each other and the posterior is correlated
# (its correlation is printed below). We work in float64.

# %%
gl = torch.Generator().manual_seed(5)
W = torch.randn(5, 2, generator=gl, dtype=torch.float64)  # decoder weights, D = 5, L = 2
W[:, 1] = W[:, 0] + 0.3 * W[:, 1]  # nearly parallel columns: z_1 and z_2 explain x alike
b = torch.randn(5, generator=gl, dtype=torch.float64)
s = 0.5  # noise standard deviation
prior = MultivariateNormal(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
z_true = torch.randn(2, generator=gl, dtype=torch.float64)  # z ~ p(z)
x_obs = W @ z_true + b + s * torch.randn(5, generator=gl, dtype=torch.float64)  # one datum x ~ p(x|z)
evidence = MultivariateNormal(b, W @ W.T + s**2 * torch.eye(5, dtype=torch.float64))
log_px = evidence.log_prob(x_obs)
S = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + W.T @ W / s**2)
posterior = MultivariateNormal(S @ W.T @ (x_obs - b) / s**2, S)
print(f"posterior correlation of z_1 and z_2: {(S[0, 1] / (S[0, 0] * S[1, 1]).sqrt()).item():+.4f}")

# %% [markdown]
# Two helpers: the likelihood $\log p(x\mid z)$ of the observed datum, and draws from a Gaussian with an
# explicit random generator, so that every number below is reproducible.

# %%
def log_px_given_z(z):
    """log N(x_obs; W z + b, s^2 I), summed over the 5 dims. Shapes: (..., 2) -> (...)."""
    return Normal(z @ W.T + b, s).log_prob(x_obs).sum(-1)


def draw(q, n, generator):
    """n samples z = m_q + chol(S_q) eps of a 2-D Gaussian q, from an explicit generator. Shape: (n, 2)."""
    eps = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return q.mean + eps @ q.scale_tril.T

# %% [markdown]
# First, the two closed forms. The evidence is the integral $\int p(x\mid z)p(z)\,\mathrm dz$: in two
# dimensions a fine grid computes it by brute force (a Riemann sum, done in log space). And Bayes'
# rule must hold at every $z$: $\log p(z\mid x) = \log p(x\mid z) + \log p(z) - \log p(x)$.

# %% tags=["nbval-check-output"]
t = torch.linspace(-6, 6, 1201, dtype=torch.float64)
grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)  # (1201^2, 2)
dz = (t[1] - t[0]) ** 2  # area of one grid cell
log_px_on_grid = torch.logsumexp(log_px_given_z(grid) + prior.log_prob(grid), 0) + dz.log()
print(f"log p(x): closed form {log_px.item():.6f}, grid integral {log_px_on_grid.item():.6f}")
assert abs(log_px_on_grid - log_px) < 1e-6
z_test = torch.randn(1000, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
bayes = log_px_given_z(z_test) + prior.log_prob(z_test) - log_px
torch.testing.assert_close(posterior.log_prob(z_test), bayes)
print("Bayes' rule p(z|x) = p(x|z) p(z) / p(x) at 1000 points:", torch.allclose(posterior.log_prob(z_test), bayes))

# %% [markdown]
# For a Gaussian $q = \mathcal N(m_q, S_q)$ the ELBO has a closed form too. With $z = m_q + u$,
# $\mathbb E\|x - Wz - b\|^2 = \|x - Wm_q - b\|^2 + \mathrm{tr}(W S_q W^\top)$, so
#
# $$\mathbb E_q[\log p(x\mid z)] = -\tfrac{5}{2}\log(2\pi s^2) - \frac{\|x - Wm_q - b\|^2 + \mathrm{tr}(WS_qW^\top)}{2s^2},$$
#
# and the KL between two Gaussians is `torch.distributions.kl_divergence`.

# %%
def elbo_closed_form(q):
    """ELBO of a Gaussian q(z) = N(m_q, S_q) for x_obs under the linear-Gaussian model."""
    residual = x_obs - W @ q.mean - b
    trace = torch.trace(W @ q.covariance_matrix @ W.T)
    reconstruction = -0.5 * 5 * math.log(2 * math.pi * s**2) - (residual @ residual + trace) / (2 * s**2)
    return reconstruction - kl_divergence(q, prior)


def random_gaussian(generator):
    """A random 2-D Gaussian with a full covariance A A^T + 0.1 I."""
    A = torch.randn(2, 2, generator=generator, dtype=torch.float64)
    mean = torch.randn(2, generator=generator, dtype=torch.float64)
    return MultivariateNormal(mean, A @ A.T + 0.1 * torch.eye(2, dtype=torch.float64))

# %% [markdown]
# The central identity, $\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}(q\,\|\,p(z\mid x))$, for six random
# Gaussians $q$ with nothing in common with the posterior:

# %% tags=["nbval-check-output"]
gen_q = torch.Generator().manual_seed(7)
print(f"log p(x) = {log_px.item():.6f}\n{'ELBO(q)':>12} {'KL(q || p(z|x))':>16} {'sum':>12}  equal to 1e-9")
for _ in range(6):
    q = random_gaussian(gen_q)
    elbo_q, gap_q = elbo_closed_form(q), kl_divergence(q, posterior)
    total = elbo_q + gap_q
    print(f"{elbo_q.item():12.6f} {gap_q.item():16.6f} {total.item():12.6f}  {abs(total - log_px).item() < 1e-9}")
    assert abs(total - log_px) < 1e-9 and elbo_q < log_px

# %% [markdown]
# The closed-form ELBO itself must agree with its definition as an expectation. We draw $z\sim q$,
# form the log importance weights $\log w = \log p(x\mid z) + \log p(z) - \log q(z)$, and compare
#
# - their mean (the Monte Carlo ELBO) with the closed form, within 4 standard errors (SE), and
# - the log of the mean of $w$ (the importance-sampling estimate of $p(x)$) with $\log p(x)$.
#
# Jensen's inequality is the gap between the two: $\mathbb E[\log w] < \log\mathbb E[w]$. We use a $q$
# a little wider than the posterior: importance weights from a Gaussian proposal whose variance is
# below half the target's in some direction have infinite variance, and then the SE means nothing.

# %%
n_mc = 20_000 if SMOKE else 1_000_000
q = MultivariateNormal(posterior.mean + torch.tensor([0.3, -0.2], dtype=torch.float64), 2 * S)
z_mc = draw(q, n_mc, torch.Generator().manual_seed(8))  # (n_mc, 2)
log_w = log_px_given_z(z_mc) + prior.log_prob(z_mc) - q.log_prob(z_mc)  # (S,)
elbo_mc, elbo_se = log_w.mean(), log_w.std() / n_mc**0.5
log_px_is = torch.logsumexp(log_w, 0) - math.log(n_mc)
log_px_se = (log_w - log_px_is).exp().std() / n_mc**0.5  # SE of mean(w) / mean(w)
print(f"ELBO:     closed form {elbo_closed_form(q).item():.4f}, "
      f"Monte Carlo {elbo_mc.item():.4f} ± {elbo_se.item():.4f}")
print(f"log p(x): closed form {log_px.item():.4f}, "
      f"importance sampling {log_px_is.item():.4f} ± {log_px_se.item():.4f}")
assert abs(elbo_mc - elbo_closed_form(q)) < 4 * elbo_se and abs(log_px_is - log_px) < 4 * log_px_se
assert elbo_mc < log_px_is  # Jensen: the mean of log w lies below the log of the mean of w

# %% [markdown]
# The bound is tight exactly at the true posterior: there $w = p(x, z)/p(z\mid x) = p(x)$ for *every*
# $z$, so the log-weights do not vary at all and Jensen's inequality holds with equality. Moving
# $q$'s mean or widening its covariance opens a positive gap:

# %% tags=["nbval-check-output"]
z_post = draw(posterior, 1000, torch.Generator().manual_seed(9))
log_w_post = log_px_given_z(z_post) + prior.log_prob(z_post) - posterior.log_prob(z_post)
print("at q = p(z|x): every log w equals log p(x):", torch.allclose(log_w_post, log_px.expand(1000)),
      "| gap below 1e-12:", abs(log_px - elbo_closed_form(posterior)).item() < 1e-12)
shift = torch.tensor([0.1, 0.0], dtype=torch.float64)
for name, q in [("mean + 0.1", MultivariateNormal(posterior.mean + shift, S)),
                ("covariance x 1.2", MultivariateNormal(posterior.mean, 1.2 * S))]:
    gap = log_px - elbo_closed_form(q)
    assert gap > 0
    print(f"q with {name:17s}: gap log p(x) - ELBO = {gap.item():.6f}")

# %% [markdown]
# Now the ELBO as $q$'s mean slides along the $z_1$ axis through the posterior mean, for two choices of
# covariance: the posterior's own $S$, and the best *diagonal* covariance, $\mathrm{diag}(1/\Lambda_{jj})$
# where $\Lambda = S^{-1}$ (Bishop, *PRML*, 2006, §10.1.2), the best a mean-field $q$ can do.

# %%
m_post = posterior.mean
mean_field_cov = torch.diag(1 / torch.linalg.inv(S).diagonal())
offsets = torch.linspace(-0.6, 0.6, 121, dtype=torch.float64)  # 0 is at index 60
curves = {r"covariance $S$ (the posterior's)": S, r"mean field, covariance diag$(1/\Lambda_{jj})$": mean_field_cov}
elbos = {label: torch.stack([elbo_closed_form(MultivariateNormal(m_post + torch.stack([o, 0 * o]), cov))
                             for o in offsets]) for label, cov in curves.items()}
fig, ax = plt.subplots(figsize=(7, 4.5))
for label, values in elbos.items():
    ax.plot(m_post[0] + offsets, values, label=f"ELBO of $q$ with {label}")
ax.axhline(log_px.item(), color="k", ls="--", label=r"$\log p(x)$ (exact)")
ax.axvline(m_post[0].item(), color="grey", ls=":", label="posterior mean $m_1$")
ax.set(xlabel=r"first coordinate of $q$'s mean, $z_1$", ylabel="nats", ylim=(log_px.item() - 2.5, log_px.item() + 0.4),
       title=r"The ELBO touches $\log p(x)$ only at the true posterior")
ax.legend(fontsize=8, loc="lower center")
plt.show()

# %% [markdown]
# Both curves peak at the posterior mean. With the posterior's covariance the peak touches
# $\log p(x)$; the mean-field curve peaks strictly below it, and that leftover gap is the price of
# the mean-field family, caused by the posterior's correlation. Checked on the curves:

# %% tags=["nbval-check-output"]
full_cov, mean_field = elbos.values()
assert full_cov.argmax() == mean_field.argmax() == 60  # the peak of both is at offset 0
assert abs(full_cov.max() - log_px) < 1e-12 and mean_field.max() < log_px
gap_mean_field = log_px - mean_field.max()
print(f"posterior correlation {(S[0, 1] / (S[0, 0] * S[1, 1]).sqrt()).item():+.6f}; "
      f"best mean-field gap {gap_mean_field.item():.6f} nats")

# %% [markdown]
# In a VAE the KL term of the ELBO has a closed form (notebook 2), but the reconstruction term
# $\mathbb E_{q(z\mid x)}[\log p(x\mid z)]$ does not, since the decoder is a network: training estimates
# it with samples of $z$, and its gradient needs a trick (notebook 3). Kingma & Welling use a single
# sample per image; notebook 4 measures whether that is enough.

# %% [markdown]
# ## Summary
#
# - The VAE's generative model is $z\sim\mathcal N(0,I)$, $x_d\sim\mathrm{Bernoulli}(\sigma(\ell_d))$ with
#   logits $\ell = f_\theta(z)$; its posterior is intractable because $p(x)$ is.
# - Logits are log-odds. The log-likelihood $\sum_d x_d\ell_d - \mathrm{softplus}(\ell_d)$ is exact for
#   every logit. It is a likelihood of *binary* images: on grey levels the same formula does not
#   integrate to one.
# - The encoder outputs a mean-field Gaussian $q_\phi(z\mid x) = \mathcal N(\mu, \mathrm{diag}(\sigma^2))$.
# - $\log p(x) = \mathrm{ELBO} + \mathrm{KL}(q\,\|\,p(z\mid x))$, verified to machine precision; the ELBO
#   follows from importance sampling and Jensen, and is tight only at the true posterior, which a
#   mean-field $q$ cannot reach when the posterior is correlated.

# %% [markdown]
# ## Exercises
#
# 1. The *entropy* of the decoder's distribution, $H = -\sum_d \big[p_d\log p_d + (1-p_d)\log(1-p_d)\big]$
#    with $p = \sigma(\ell)$, is minus the expected log-likelihood of the decoder's own samples: on images it draws
#    itself, no model scores better than $-H$ on average (Gibbs' inequality). Write it from the logits,
#    one number per image, so that it stays finite for saturated logits ($|\ell| = 150$). The next cell
#    checks it.

# %% tags=["solution"]
def my_bernoulli_entropy(logits):
    """H(Bernoulli(sigmoid(logits))) summed over pixels, in nats. Shapes: (B, D) -> (B,)."""
    raise NotImplementedError(
        'Hint: express log p and log(1 - p) with softplus, as in the log-likelihood '
        'above; the pixels are independent.'
    )


# %% tags=["nbval-check-output"]
check_bernoulli_entropy(my_bernoulli_entropy)

# %% [markdown]
# 2. In the linear-Gaussian model, keep $q$'s mean at $m$ and let its covariance be diagonal,
#    $\mathrm{diag}(v_1, v_2)$. Evaluate the ELBO (`elbo_closed_form`, or its formula written for a whole
#    grid at once) on a grid of $(v_1, v_2)$. Where is the maximum: at the posterior variances $S_{jj}$,
#    or somewhere else? Compare it with the diagonal of `mean_field_cov` above.

# %% [markdown]
# 3. Make the posterior less correlated, for example by making the columns of $W$ orthogonal. What happens
#    to the best mean-field gap? Explain with the identity $\log p(x) = \mathrm{ELBO} + \mathrm{KL}$.
