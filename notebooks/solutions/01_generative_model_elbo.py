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
# # 1. The generative model and the evidence lower bound
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/solutions/01_generative_model_elbo.ipynb)
#
# A variational autoencoder (VAE; Kingma & Welling, *Auto-Encoding Variational Bayes*, 2014) models an
# image $x$ as made from a hidden code $z$. A second network guesses the code of a given image. This
# notebook sets up both and derives the objective that trains them, the evidence lower bound (ELBO).
# Every step is checked with numbers. You write the model's first piece yourself: the log-likelihood of
# an image.
#
# 1. The model at a glance, and why its posterior is out of reach.
# 2. The data, the decoder and its logits.
# 3. The Bernoulli log-likelihood, which you write.
# 4. The encoder's Gaussian $q_\phi(z\mid x)$.
# 5. The ELBO, checked on a small model where everything is exact.

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
from matplotlib.patches import Circle, FancyArrowPatch, Rectangle
from torch.distributions import Bernoulli, MultivariateNormal, Normal, kl_divergence

from vaelib.config import ModelConfig, seed_everything, smoke
from vaelib.data import binarise, load_mnist
from vaelib.elbo import bernoulli_log_likelihood, log_normal
from vaelib.evidence import holds
from vaelib.exercises import check_bernoulli_entropy, check_bernoulli_log_likelihood
from vaelib.model import VAE

SMOKE = smoke()  # VAELIB_SMOKE=1 (as in `make check`) shrinks the Monte Carlo sample counts
data = load_mnist("auto")

# %% [markdown]
# ## The model at a glance
#
# The VAE has two halves. The *decoder* $p_\theta(x\mid z)$ turns a code into pixel probabilities. The
# *encoder* $q_\phi(z\mid x)$ guesses which codes could have made an image. Figure 1 draws both, as a
# graphical model (left) and as the networks this course trains (right).

# %%
# Drawing code only: read the figure, not this cell.
fig, (gm, net) = plt.subplots(1, 2, figsize=(12, 3.6), width_ratios=[1, 2.6], layout="constrained")
arrow = dict(arrowstyle="-|>", mutation_scale=14, color="k", lw=1.2)
gm.add_patch(Rectangle((0.12, 0.05), 0.56, 0.9, fill=False))  # the plate: one copy per image
gm.text(0.64, 0.08, "$N$", ha="right", va="bottom", fontsize=12)
for y, name, shade in [(0.75, "$z$", "white"), (0.27, "$x$", "0.8")]:  # shaded: observed
    gm.add_patch(Circle((0.4, y), 0.1, facecolor=shade, edgecolor="k", lw=1.2))
    gm.text(0.4, y, name, ha="center", va="center", fontsize=15)
for x0, (y0, y1), style, label, lx in [(0.43, (0.65, 0.37), "-", r"$p_\theta(x\mid z)$", 0.46),
                                       (0.35, (0.37, 0.65), "--", r"$q_\phi(z\mid x)$", 0.14)]:
    gm.add_patch(FancyArrowPatch((x0, y0), (x0, y1), linestyle=style, **arrow))
    gm.text(lx, 0.51, label, fontsize=11, va="center")
for y, name, style in [(0.27, r"$\theta$", "-"), (0.75, r"$\phi$", "--")]:  # weights shared by all N images
    gm.text(0.88, y, name, ha="center", va="center", fontsize=14)
    gm.add_patch(FancyArrowPatch((0.83, y), (0.5, y), linestyle=style, **arrow))
gm.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", title="graphical model")
layers = [("$x$", "784", 784, "0.8"), ("", "256", 256, "#cfe2f3"), ("", "128", 128, "#cfe2f3"),
          (r"$\mu$, $\log\sigma^2$", "2 + 2", 4, "#cfe2f3"), ("$z$", "2", 2, "white"), ("", "128", 128, "#fce5cd"),
          ("", "256", 256, "#fce5cd"), ("logits", "784", 784, "#fce5cd")]
xs = [0, 1, 2, 3.2, 4.4, 5.6, 6.6, 7.6]
for (name, units, width, color), x in zip(layers, xs):
    h = 0.25 + 0.75 * (width / 784) ** 0.5  # box height grows with the layer's width
    net.add_patch(Rectangle((x - 0.3, -h / 2), 0.6, h, facecolor=color, edgecolor="k"))
    net.text(x, -h / 2 - 0.08, units, ha="center", va="top", fontsize=9)
    net.text(x, h / 2 + 0.05, name, ha="center", va="bottom", fontsize=11)
for a, b in zip(xs, xs[1:]):
    net.add_patch(FancyArrowPatch((a + 0.3, 0), (b - 0.3, 0), **arrow))
net.text(1.6, 0.72, r"encoder $q_\phi(z\mid x)$", ha="center", fontsize=10)
net.text(6.6, 0.72, r"decoder $p_\theta(x\mid z)$", ha="center", fontsize=10)
net.text(4.4, -0.55, r"$z = \mu + \sigma\odot\varepsilon$, $\varepsilon\sim\mathcal{N}(0, I)$", ha="center", fontsize=10)
net.text(8.1, 0, r"$\to$ Bernoulli($\sigma$(logits))", va="center", fontsize=10)
net.set(xlim=(-0.5, 10.5), ylim=(-0.8, 0.9), title="networks (units per layer; hidden layers ReLU)")
for ax in (gm, net):
    ax.axis("off")
fig.suptitle("Figure 1. The VAE as a graphical model and as networks");

# %% [markdown]
# In the graphical model the shaded node is observed and the white one hidden. Solid arrows are the
# generative model. The dashed arrow is the encoder's guess, which runs the other way. The plate repeats
# both for each of the $N$ images; the weights $\theta$ and $\phi$ are shared by all of them.
#
# ## Why the posterior is out of reach
#
# Given an image, we would like its posterior, by Bayes' rule:
#
# $$p_\theta(z\mid x) = \frac{p_\theta(x\mid z)\,p(z)}{p_\theta(x)}, \qquad
# p_\theta(x) = \int p_\theta(x\mid z)\,p(z)\,\mathrm dz .$$
#
# The denominator, the *evidence*, is the problem. When a network defines $p_\theta(x\mid z)$, the integral
# has no closed form. A grid over $z$ needs a number of points exponential in the dimension of $z$.
# Without $p_\theta(x)$ we can neither evaluate the posterior nor maximise the likelihood.
#
# *Variational inference* replaces the posterior by a simple $q(z)$, fitted by optimisation instead of
# integration. It maximises the ELBO, a lower bound on $\log p_\theta(x)$ that we can compute.
#
# ## The data: binarised MNIST
#
# `load_mnist("auto")` returns full MNIST when it is here or downloadable. Otherwise it returns real MNIST
# digits bundled with vaelib; the line above says which. Each image is a row of $D = 784$ grey levels in
# $[0, 1]$:

# %%
print(f"train_x: {tuple(data.train_x.shape)}, grey levels in [{data.train_x.min():.0f}, {data.train_x.max():.0f}]")
fig, axes = plt.subplots(2, 8, figsize=(10, 3))
for ax, image, label in zip(axes.flat, data.train_x[:16], data.train_y[:16]):
    ax.imshow(image.reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"label {label.item()}", fontsize=9)
    ax.axis("off")
fig.suptitle("The first 16 training digits (28 x 28 grey levels, black = 1)");

# %% [markdown]
# The model sees binary images. Each grey level is the probability that its pixel is black. A fresh binary
# image is drawn each time a digit is used (*dynamic binarisation*; appendix 10 compares it with one fixed
# draw).

# %%
g = torch.Generator().manual_seed(0)
x = binarise(data.train_x[:8], g)  # (B, D) = (8, 784)
print("x:", tuple(x.shape))
holds(set(x.unique().tolist()) == {0.0, 1.0}, "the binarised digits hold only 0 and 1");

# %% [markdown]
# The same Bernoulli formula does not fit grey levels. For $x\in[0,1]$, $p^x(1-p)^{1-x}$ is not a density:
# its integral over $x$ is $(2p-1)/\log\frac{p}{1-p}$, at most $\tfrac12$. A "log-likelihood" of grey images
# computed with it is not comparable with this course's numbers or the papers'. The *continuous Bernoulli*
# of Loaiza-Ganem & Cunningham (2019) adds the missing normaliser. By quadrature:

# %%
grey = torch.linspace(0, 1, 100_001, dtype=torch.float64)  # grey levels x
ps = [0.1, 0.5, 0.9, 0.99]
integrals = [torch.trapezoid(p**grey * (1 - p) ** (1 - grey), grey).item() for p in ps]
closed = [(2 * p - 1) / math.log(p / (1 - p)) if p != 0.5 else 0.5 for p in ps]
for p, integral in zip(ps, integrals):
    print(f"p = {p:4}: integral over x in [0, 1] of p^x (1 - p)^(1 - x) = {integral:.6f}")
holds(all(abs(i - c) < 1e-9 and i <= 0.5 for i, c in zip(integrals, closed)),
      "each integral is (2p - 1) / log(p / (1 - p)), at most 1/2, so not a density");

# %% [markdown]
# ## The generative process
#
# The VAE's model of an image is
#
# $$z \sim \mathcal N(0, I_L), \qquad \ell = f_\theta(z)\in\mathbb R^{D}, \qquad
# x_d \mid z \sim \mathrm{Bernoulli}\big(\sigma(\ell_d)\big),\ d = 1,\dots,D.$$
#
# Here $L$ is the number of latent dimensions, $f_\theta$ the decoder and $\ell$ its output *logits*;
# $\sigma(\ell)=1/(1+e^{-\ell})$ is the sigmoid. The pixels are independent *given* $z$: the code carries
# all dependence between them. `VAE.decode` is $f_\theta$, with the course's sizes $2 \to 128 \to 256 \to 784$.
# Its weights are random here; notebook 4 trains them.

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
# Predict before you look: what does a decoder with logits this small draw? Every pixel is close to a fair
# coin, so it draws grey noise. Each column below is one code $z$. The top row shows $\sigma(\ell)$, the
# probability of black for each pixel. The bottom row shows one binary image drawn from it.

# %%
fig, axes = plt.subplots(2, 8, figsize=(10, 3))
for i in range(8):
    axes[0, i].imshow(torch.sigmoid(logits[i]).reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
    axes[1, i].imshow(x_sampled[i].reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
    axes[0, i].set_title(f"z = ({z[i, 0]:.1f}, {z[i, 1]:.1f})", fontsize=8)
for ax in axes.flat:
    ax.axis("off")
fig.suptitle("Untrained decoder: pixel probabilities sigmoid(logits) (top) and a Bernoulli draw (bottom)");

# %% [markdown]
# ## Logits
#
# The logit of a probability is its log-odds, $\mathrm{logit}(p) = \log\frac{p}{1-p}$, with inverse
# $\sigma$. It maps $(0,1)$ onto the whole real line, so any number a network outputs is a valid logit.
# Its sign says which outcome is more likely. It is odd about one half: $\mathrm{logit}(1-p) = -\mathrm{logit}(p)$.

# %%
p = torch.tensor([0.01, 0.2, 0.5, 0.8, 0.99], dtype=torch.float64)
logit_p = torch.log(p / (1 - p))
for p_i, l_i in zip(p.tolist(), logit_p.tolist()):
    print(f"p = {p_i:4.2f}   logit(p) = {l_i:+.6f}")
holds(torch.allclose(logit_p, torch.logit(p)) and torch.allclose(torch.sigmoid(logit_p), p),
      "log(p / (1 - p)) is torch.logit, and sigmoid inverts it")
holds(torch.allclose(logit_p.flip(0), -logit_p), "logit(1 - p) = -logit(p)");

# %% [markdown]
# The logit is steep near 0 and 1: there a small change in probability is a large change in log-odds.
# Around one half it follows the line $4(p - \tfrac12)$, since its slope $1/(p(1-p))$ is 4 there.

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
holds(abs(slope.item() - 4) < 1e-6, "the slope of the logit at p = 1/2 is 4");

# %% [markdown]
# ## The Bernoulli log-likelihood, from logits
#
# For one pixel, $\log p(x_d\mid z) = x_d\log\sigma(\ell_d) + (1-x_d)\log\big(1-\sigma(\ell_d)\big)$.
# Computed as written, it breaks for a confident decoder: in float32, $\sigma(20)$ rounds to exactly 1, and
# $\log(1 - 1) = -\infty$. The cure is never to form $\sigma(\ell)$. With the *softplus*
# $s(\ell) = \log(1+e^{\ell})$,
#
# $$\log\sigma(\ell) = -s(-\ell), \qquad \log\big(1-\sigma(\ell)\big) = -s(\ell), \qquad s(\ell) - s(-\ell) = \ell.$$
#
# `F.softplus` computes $s$ without overflow at any $\ell$. The failure, then the identities in float64:

# %%
holds(torch.sigmoid(torch.tensor(20.0)) == 1, "in float32, sigmoid(20) is exactly 1, so log(1 - sigmoid(20)) = -inf")
ell = 5 * torch.randn(4, 784, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
holds(torch.allclose(torch.log(torch.sigmoid(ell)), -F.softplus(-ell)), "log sigmoid(l) = -s(-l)")
holds(torch.allclose(torch.log(1 - torch.sigmoid(ell)), -F.softplus(ell)), "log(1 - sigmoid(l)) = -s(l)")
holds(torch.allclose(F.softplus(ell) - F.softplus(-ell), ell), "s(l) - s(-l) = l");

# %% [markdown]
# **Your turn.** Write $\log p_\theta(x\mid z)$ from the logits, one number per image: its pixels are
# independent, so their log-probabilities add up. It must stay finite at $|\ell| = 150$. The next cell
# compares it with `torch.distributions` on random logits and names the usual mistakes. From then on the
# notebook runs your function.

# %% tags=["solution"]
def my_bernoulli_log_likelihood(logits, x):
    """log p(x|z) = sum_d x_d log sigmoid(l_d) + (1 - x_d) log(1 - sigmoid(l_d)), in nats.

    Shapes: logits (B, D), x (B, D) in {0, 1} -> (B,).
    """
    # Hint: replace both logs by the softplus identities above (never compute sigmoid),
    # simplify with s(l) - s(-l) = l, and sum over the last axis, the pixels.
    return (x * logits - F.softplus(logits)).sum(-1)


# %% tags=["nbval-check-output"]
log_likelihood = check_bernoulli_log_likelihood(my_bernoulli_log_likelihood).use()

# %% [markdown]
# Predict: the untrained decoder's logits stay within $\pm 0.6$, so each pixel is close to a fair coin. A
# fair coin gives each pixel $\log\tfrac12$. Every image then scores near $784\log\tfrac12 = -543$ nats,
# whatever the digit. The log-likelihood of the 8 digits above, under the 8 decoded codes:

# %%
log_px_z = log_likelihood(logits, x)  # (B,): image i under the pixel probabilities of code i
print("log p(x|z) per image:", [round(v, 1) for v in log_px_z.tolist()])
holds(torch.allclose(log_px_z, bernoulli_log_likelihood(logits, x)), "it equals vaelib's bernoulli_log_likelihood")
holds((log_px_z / (784 * math.log(0.5)) - 1).abs().max() < 0.05,
      "the untrained decoder scores every digit within 5% of 784 log(1/2) = -543 nats");

# %% [markdown]
# The logit form matters most in training. Binary cross-entropy of probabilities, after a sigmoid, loses
# the gradient for pixels the decoder is confidently wrong about. Take a black pixel ($x = 1$) at logit
# $-150$: the decoder is sure it is white. The gradient of the logit form is $x - \sigma(\ell) = 1$, a full
# push the right way. Cross-entropy of $\sigma(\ell)$ clamps its log at $-100$ and gives 0. A pixel at
# logit $+150$ is confidently right, and both give 0 there, as they should. Notebook 4 returns to this where
# the training loss is written.

# %%
pixel = torch.tensor([[-150.0, 150.0]], requires_grad=True)  # one black pixel scored wrong, one right
black = torch.ones(1, 2)
by_logits = log_likelihood(pixel, black)  # (1,): the two pixels' log-probabilities, summed
by_probabilities = -F.binary_cross_entropy(torch.sigmoid(pixel), black, reduction="sum")
(from_logits,) = torch.autograd.grad(by_logits.sum(), pixel)
(from_probabilities,) = torch.autograd.grad(by_probabilities, pixel)
print(f"log p(x|z): from logits {by_logits.item():.1f}, from probabilities {by_probabilities.item():.1f}")
# + 0.0 below prints a -0.0 as 0.0
print(f"gradient:   from logits {from_logits.tolist()}, from probabilities {(from_probabilities + 0.0).tolist()}")
holds(from_logits[0, 0] == 1 and from_probabilities[0, 0] == 0,
      "at logit -150 the logit form pushes the wrong pixel with gradient 1; cross-entropy of probabilities gives 0");

# %% [markdown]
# ## The approximate posterior: mean field and the encoder
#
# We choose $q$ from the *mean-field* family. It factorises over the latent dimensions, each factor
# Gaussian: $q(z) = \mathcal N(\mu, \mathrm{diag}(\sigma^2))$. So $\log q(z)$ is the sum of the factors'
# log-densities, which `vaelib.log_normal` computes. Checked against a full-covariance `MultivariateNormal`:

# %%
gq = torch.Generator().manual_seed(4)
mu_q, logvar_q = torch.randn(3, generator=gq, dtype=torch.float64), torch.randn(3, generator=gq, dtype=torch.float64)
z_q = torch.randn(10, 3, generator=gq, dtype=torch.float64)
std_q = (0.5 * logvar_q).exp()
sum_of_factors = Normal(mu_q, std_q).log_prob(z_q).sum(-1)  # sum over latent dims j
joint = MultivariateNormal(mu_q, torch.diag(std_q**2)).log_prob(z_q)
holds(torch.allclose(sum_of_factors, joint) and torch.allclose(sum_of_factors, log_normal(z_q, mu_q, logvar_q)),
      "log q(z) = sum_j log q_j(z_j), as MultivariateNormal and vaelib.log_normal compute it");

# %% [markdown]
# The VAE *amortises* inference. A separate $(\mu, \sigma)$ per image would need an optimisation for each
# new image. Instead one encoder network $f_\phi$ maps any image to its $q$:
#
# $$(\mu, \log\sigma^2) = f_\phi(x), \qquad q_\phi(z\mid x) = \mathcal N\big(\mu, \mathrm{diag}(\sigma^2)\big).$$
#
# It outputs $\log\sigma^2$ (`logvar`) because that may be any real number, while $\sigma$ must be positive.
# `VAE.encode` is $f_\phi$:

# %%
with torch.no_grad():
    mu, logvar = model.encode(x)  # (B, L) each, for the 8 binarised digits above
q_z_x = Normal(mu, torch.exp(0.5 * logvar))  # q_phi(z|x): B independent mean-field Gaussians
z_draw = q_z_x.sample()  # (B, L)
print("mu:", tuple(mu.shape), " logvar:", tuple(logvar.shape), " z ~ q(z|x):", tuple(z_draw.shape))
holds(torch.allclose(q_z_x.log_prob(z_draw).sum(-1), log_normal(z_draw, mu, logvar)),
      "log q(z|x) of the encoder's Gaussian is vaelib.log_normal");

# %% [markdown]
# ## The evidence lower bound
#
# Multiply and divide by $q(z\mid x)$ inside the evidence. It becomes an expectation under $q$, an
# *importance-sampling* identity valid for any $q$ that is positive wherever $p(x, z)$ is:
#
# $$p(x) = \int q(z\mid x)\,\frac{p(x\mid z)\,p(z)}{q(z\mid x)}\,\mathrm dz
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
# The gap is exactly how far $q$ is from the true posterior. It closes if and only if $q(z\mid x) = p(z\mid x)$.
# Maximising the ELBO over $q$ therefore performs inference. Maximising it over $\theta$ raises a lower
# bound on the likelihood.
#
# ## Checking the ELBO where everything is exact
#
# For a VAE we cannot compute $\log p(x)$ in general (notebook 6 does it for $L = 2$). So we check each
# statement on a model small enough to solve: $z\in\mathbb R^2$, $p(z) = \mathcal N(0, I)$ and a *linear*
# decoder with Gaussian noise,
#
# $$x = Wz + b + \varepsilon,\quad \varepsilon\sim\mathcal N(0, s^2 I_5), \qquad
# p(x) = \mathcal N\big(b,\ WW^\top + s^2 I\big), \qquad p(z\mid x) = \mathcal N(m, S),$$
#
# with $S = (I + W^\top W/s^2)^{-1}$ and $m = S\,W^\top (x - b)/s^2$. We give $W$ two nearly parallel
# columns. Then $z_1$ and $z_2$ can trade off against each other, and the posterior is correlated.

# %% tags=["nbval-check-output"]
gl = torch.Generator().manual_seed(5)  # float64 throughout, so that identities hold to 1e-9
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
correlation = S[0, 1] / (S[0, 0] * S[1, 1]).sqrt()  # a covariance over the product of standard deviations
print(f"posterior correlation of z_1 and z_2: {correlation.item():+.4f}")

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
# First, the two closed forms. A fine grid computes the evidence $\int p(x\mid z)p(z)\,\mathrm dz$ by brute
# force in two dimensions. And Bayes' rule must hold at every $z$.

# %%
t = torch.linspace(-6, 6, 1201, dtype=torch.float64)
grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)  # (1201^2, 2)
dz = (t[1] - t[0]) ** 2  # area of one grid cell; the Riemann sum is done in log space
log_px_on_grid = torch.logsumexp(log_px_given_z(grid) + prior.log_prob(grid), 0) + dz.log()
print(f"log p(x): closed form {log_px.item():.6f}, grid integral {log_px_on_grid.item():.6f}")
holds(abs(log_px_on_grid - log_px) < 1e-6, "the grid integral equals the closed-form log p(x) to 1e-6")
z_test = torch.randn(1000, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
bayes = log_px_given_z(z_test) + prior.log_prob(z_test) - log_px
holds(torch.allclose(posterior.log_prob(z_test), bayes), "Bayes' rule p(z|x) = p(x|z) p(z) / p(x) holds at 1000 points");

# %% [markdown]
# For a Gaussian $q = \mathcal N(m_q, S_q)$ the ELBO has a closed form too. With $z = m_q + u$,
# $\mathbb E\|x - Wz - b\|^2 = \|x - Wm_q - b\|^2 + \mathrm{tr}(W S_q W^\top)$, so
#
# $$\mathbb E_q[\log p(x\mid z)] = -\tfrac{5}{2}\log(2\pi s^2) - \frac{\|x - Wm_q - b\|^2 + \mathrm{tr}(WS_qW^\top)}{2s^2}.$$
#
# The KL between two Gaussians is `torch.distributions.kl_divergence`.

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
# The central identity, $\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}(q\,\|\,p(z\mid x))$, holds to machine
# precision. Here it is for six random Gaussians $q$, with nothing in common with the posterior:

# %%
gen_q = torch.Generator().manual_seed(7)
print(f"log p(x) = {log_px.item():.6f}\n{'ELBO(q)':>12} {'KL(q || p(z|x))':>16} {'sum':>12}")
rows = []
for _ in range(6):
    q = random_gaussian(gen_q)
    rows.append((elbo_closed_form(q), kl_divergence(q, posterior)))
    print(f"{rows[-1][0].item():12.6f} {rows[-1][1].item():16.6f} {sum(rows[-1]).item():12.6f}")
holds(all(abs(elbo_q + gap_q - log_px) < 1e-9 for elbo_q, gap_q in rows),
      "ELBO(q) + KL(q || p(z|x)) = log p(x) to 1e-9 for every q")
holds(all(elbo_q < log_px for elbo_q, _ in rows), "every ELBO lies below log p(x)");

# %% [markdown]
# The closed-form ELBO must agree with its definition as an expectation. We draw $z\sim q$ and form the log
# importance weights $\log w = \log p(x\mid z) + \log p(z) - \log q(z)$. Their mean is the Monte Carlo ELBO.
# The log of the mean of $w$ estimates $\log p(x)$. Jensen's inequality is the gap between the two. We use
# a $q$ a little wider than the posterior, for a reason given in the comment.

# %%
n_mc = 20_000 if SMOKE else 1_000_000
# Importance weights from a Gaussian whose variance is below half the target's in some direction have
# infinite variance, and then the standard error (SE) means nothing: so q is twice as wide as p(z|x).
q = MultivariateNormal(posterior.mean + torch.tensor([0.3, -0.2], dtype=torch.float64), 2 * S)
z_mc = draw(q, n_mc, torch.Generator().manual_seed(8))  # (S, 2)
log_w = log_px_given_z(z_mc) + prior.log_prob(z_mc) - q.log_prob(z_mc)  # (S,)
elbo_mc, elbo_se = log_w.mean(), log_w.std() / n_mc**0.5
log_px_is = torch.logsumexp(log_w, 0) - math.log(n_mc)
log_px_se = (log_w - log_px_is).exp().std() / n_mc**0.5  # SE of mean(w) / mean(w)
print(f"ELBO:     closed form {elbo_closed_form(q).item():.4f}, Monte Carlo {elbo_mc.item():.4f} ± {elbo_se.item():.4f}")
print(f"log p(x): closed form {log_px.item():.4f}, importance sampling {log_px_is.item():.4f} ± {log_px_se.item():.4f}")
holds(abs(elbo_mc - elbo_closed_form(q)) < 4 * elbo_se, "the Monte Carlo ELBO is within 4 SE of the closed form")
holds(abs(log_px_is - log_px) < 4 * log_px_se, "the importance-sampling estimate is within 4 SE of log p(x)")
holds(elbo_mc < log_px_is, "Jensen: the mean of log w lies below the log of the mean of w");

# %% [markdown]
# The bound is tight exactly at the true posterior. There $w = p(x, z)/p(z\mid x) = p(x)$ for *every* $z$,
# so the log-weights do not vary at all. Moving $q$'s mean or widening its covariance opens a positive gap:

# %%
z_post = draw(posterior, 1000, torch.Generator().manual_seed(9))
log_w_post = log_px_given_z(z_post) + prior.log_prob(z_post) - posterior.log_prob(z_post)
holds(torch.allclose(log_w_post, log_px.expand(1000)), "at q = p(z|x), every log w equals log p(x)")
holds(abs(log_px - elbo_closed_form(posterior)) < 1e-12, "at q = p(z|x), the gap is below 1e-12")
shift = torch.tensor([0.1, 0.0], dtype=torch.float64)
gaps = {name: log_px - elbo_closed_form(q) for name, q in [("mean + 0.1", MultivariateNormal(posterior.mean + shift, S)),
                                                           ("covariance x 1.2", MultivariateNormal(posterior.mean, 1.2 * S))]}
for name, gap in gaps.items():
    print(f"q with {name:17s}: gap log p(x) - ELBO = {gap.item():.6f}")
holds(all(gap > 0 for gap in gaps.values()), "both moves open a positive gap");

# %% [markdown]
# The mean-field family pays for correlation. Below, $q$'s mean slides along $z_1$ through the posterior
# mean, with two covariances. One is the posterior's own $S$. The other is the best *diagonal* covariance,
# $\mathrm{diag}(1/\Lambda_{jj})$ with $\Lambda = S^{-1}$ (Bishop, *PRML*, 2006, §10.1.2).

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
# Both curves peak at the posterior mean. With the posterior's covariance the peak touches $\log p(x)$. The
# mean-field curve peaks strictly below it: that leftover gap is the price of ignoring the correlation.

# %%
full_cov, mean_field = elbos.values()
gap_mean_field = log_px - mean_field.max()
print(f"posterior correlation {correlation.item():+.6f}; best mean-field gap {gap_mean_field.item():.6f} nats")
holds(full_cov.argmax() == mean_field.argmax() == 60, "both curves peak at the posterior mean")
holds(abs(full_cov.max() - log_px) < 1e-12, "with the posterior's covariance the peak touches log p(x)")
holds(mean_field.max() < log_px, "the best mean-field q stays below log p(x)");

# %% [markdown]
# In a VAE the KL term of the ELBO has a closed form (notebook 2). The reconstruction term does not, since
# the decoder is a network. Training estimates it with samples of $z$, and its gradient needs a trick
# (notebook 3). Kingma & Welling use one sample per image; notebook 4 measures whether that is enough.

# %% [markdown]
# ## Summary
#
# - The VAE's generative model is $z\sim\mathcal N(0,I)$, $x_d\sim\mathrm{Bernoulli}(\sigma(\ell_d))$ with
#   logits $\ell = f_\theta(z)$. Its posterior is intractable because $p(x)$ is.
# - Logits are log-odds. The log-likelihood $\sum_d x_d\ell_d - \mathrm{softplus}(\ell_d)$ is exact for every
#   logit, and keeps the gradient of pixels the decoder is confidently wrong about.
# - It is a likelihood of *binary* images: on grey levels the same formula does not integrate to one.
# - The encoder outputs a mean-field Gaussian $q_\phi(z\mid x) = \mathcal N(\mu, \mathrm{diag}(\sigma^2))$.
# - $\log p(x) = \mathrm{ELBO} + \mathrm{KL}(q\,\|\,p(z\mid x))$ to machine precision. The bound is tight
#   only at the true posterior, which a mean-field $q$ cannot reach when the posterior is correlated.

# %% [markdown]
# ## Exercises
#
# 1. The *entropy* of the decoder's distribution is $H = -\sum_d \big[p_d\log p_d + (1-p_d)\log(1-p_d)\big]$,
#    with $p = \sigma(\ell)$. It is minus the expected log-likelihood of the decoder's own samples. On images
#    it draws itself, no model scores better than $-H$ on average (Gibbs' inequality). Write it from the
#    logits, one number per image, finite for saturated logits ($|\ell| = 150$). The next cell checks it.

# %% tags=["solution"]
def my_bernoulli_entropy(logits):
    """H(Bernoulli(sigmoid(logits))) summed over pixels, in nats. Shapes: (B, D) -> (B,)."""
    # Hint: express log p and log(1 - p) with softplus, as in the log-likelihood
    # above; the pixels are independent.
    p = torch.sigmoid(logits)
    return (p * F.softplus(-logits) + (1 - p) * F.softplus(logits)).sum(-1)


# %% tags=["nbval-check-output"]
check_bernoulli_entropy(my_bernoulli_entropy)

# %% [markdown]
# 2. In the linear-Gaussian model, keep $q$'s mean at $m$ and make its covariance diagonal,
#    $\mathrm{diag}(v_1, v_2)$. Evaluate the ELBO on a grid of $(v_1, v_2)$ (`elbo_closed_form`, or its
#    formula for a whole grid at once). Is the maximum at the posterior variances $S_{jj}$? Compare it
#    with the diagonal of `mean_field_cov` above.

# %% [markdown] tags=["answer"]
# **Answer.** For a diagonal $q = \mathcal N(m, \mathrm{diag}(v))$ the closed form splits by dimension:
# $\mathrm{tr}(W\,\mathrm{diag}(v)\,W^\top) = \sum_j v_j\|W_{:j}\|^2$, and the KL to $\mathcal N(0, I)$ is
# $\tfrac12\sum_j (v_j + m_j^2 - 1 - \log v_j)$. On a grid of $(v_1, v_2)$ at once:

# %% tags=["answer"]
v = torch.linspace(0.002, 0.2, 199, dtype=torch.float64)
v1, v2 = torch.meshgrid(v, v, indexing="ij")  # (199, 199)
residual, column = x_obs - W @ m_post - b, (W**2).sum(0)  # column j: ||W[:, j]||^2
reconstruction = -2.5 * math.log(2 * math.pi * s**2) - (residual @ residual + v1 * column[0] + v2 * column[1]) / (2 * s**2)
surface = reconstruction - 0.5 * (v1 + v2 + m_post @ m_post - 2 - v1.log() - v2.log())
one_point = elbo_closed_form(MultivariateNormal(m_post, torch.diag(torch.stack([v[10], v[20]]))))
i, j = divmod(surface.argmax().item(), len(v))
print(f"best (v1, v2) on the grid: ({v[i]:.3f}, {v[j]:.3f}); 1 / Lambda_jj: "
      f"{[round(x, 3) for x in mean_field_cov.diagonal().tolist()]}; S_jj: {[round(x, 3) for x in S.diagonal().tolist()]}")
holds(torch.allclose(surface[10, 20], one_point), "the grid formula agrees with elbo_closed_form")
holds(torch.allclose(torch.stack([v[i], v[j]]), mean_field_cov.diagonal(), atol=v[1] - v[0]),
      "the best (v1, v2) is 1 / Lambda_jj, to the grid's step")
holds((mean_field_cov.diagonal() < S.diagonal()).all(), "1 / Lambda_jj is below the posterior variance S_jj");

# %% [markdown] tags=["answer"]
# The maximum sits at $1/\Lambda_{jj}$, below $S_{jj}$ for a correlated posterior: the mean-field $q$ is
# narrower than the posterior's marginals. Setting the derivative with respect to $v_j$ to zero gives
# $\tfrac{1}{2v_j} = \tfrac12\Lambda_{jj}$, the same answer in closed form.

# %% [markdown]
# 3. Make the posterior less correlated, for example by making the columns of $W$ orthogonal. What happens
#    to the best mean-field gap? Explain with the identity $\log p(x) = \mathrm{ELBO} + \mathrm{KL}$.

# %% [markdown] tags=["answer"]
# **Answer.** With orthogonal columns $W^\top W$ is diagonal, and so are $S$ and $\Lambda$. Then
# $1/\Lambda_{jj} = S_{jj}$: the best mean-field $q$ *is* the posterior, its KL to it is 0, and the gap
# closes. With the columns of $W$ orthogonalised by a QR decomposition:

# %% tags=["answer"]
W_orth = torch.linalg.qr(W)[0] * W.norm(dim=0)  # orthogonal columns, the same lengths
S_orth = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + W_orth.T @ W_orth / s**2)
best_diagonal = torch.diag(1 / torch.linalg.inv(S_orth).diagonal())
gap_orth = kl_divergence(MultivariateNormal(torch.zeros(2, dtype=torch.float64), best_diagonal),
                         MultivariateNormal(torch.zeros(2, dtype=torch.float64), S_orth))
correlation_orth = S_orth[0, 1] / (S_orth[0, 0] * S_orth[1, 1]).sqrt()
print(f"posterior correlation {correlation_orth.item():+.2e}; best mean-field gap KL(q* || p(z|x)) = {gap_orth.item():.2e} nats")
holds(gap_orth < 1e-12, "with orthogonal columns the best mean-field gap is below 1e-12 nats");
