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
# # 3. Gradients through samples: the reparametrisation trick
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/solutions/03_reparameterisation.ipynb)
#
# Training the encoder needs the gradient of the ELBO with respect to its parameters $\phi$. The
# reconstruction term is an expectation under a distribution that itself depends on $\phi$:
#
# $$\nabla_\phi\,\mathbb E_{q_\phi(z)}\big[f(z)\big] = \nabla_\phi\int q_\phi(z)\,f(z)\,\mathrm dz,
# \qquad f(z) = \log p_\theta(x\mid z).$$
#
# For the decoder's $\theta$ this is easy. The distribution does not depend on $\theta$, so the gradient moves
# inside the expectation, and a sample average estimates it. For $\phi$ it does not: $f$ has no $\phi$ in it,
# and a random draw has no derivative with respect to the parameters it was drawn with. This notebook
#
# 1. recalls how PyTorch computes gradients (automatic differentiation);
# 2. builds two unbiased estimators of $\nabla_\phi\mathbb E_{q_\phi}[f]$ for a toy $f$ with a known gradient:
#    the score-function (REINFORCE) estimator and the reparametrised one, which you write;
# 3. measures how much larger the score-function estimator's variance is;
# 4. checks autograd against finite differences on the ELBO of a tiny VAE.

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
from torch.distributions import Normal

from vaelib.config import ModelConfig, seed_everything, smoke
from vaelib.elbo import bernoulli_log_likelihood, kl_standard_normal
from vaelib.evidence import holds
from vaelib.exercises import check_reparameterize, check_rsample_tril
from vaelib.model import VAE

SMOKE = smoke()  # VAELIB_SMOKE=1 (as in `make check`) shrinks the Monte Carlo sample counts
n_mc = 20_000 if SMOKE else 1_000_000  # S, samples for the unbiasedness check
n_repeats = 200 if SMOKE else 2_000  # repetitions for the variance measurement
Z_MAX = 4  # a Monte Carlo check fails when the estimate is more than 4 standard errors off

# %% [markdown]
# ## Automatic differentiation in PyTorch, briefly
#
# A tensor created with `requires_grad=True` makes PyTorch record every operation on it in a graph. Calling
# `.backward()` on a scalar result walks that graph back to the inputs, applying the chain rule at each step
# (*reverse mode*). It stores $\partial(\text{output})/\partial(\text{input})$ in each input's `.grad`. One
# backward pass gives the derivative with respect to every input at once. That is what makes training
# networks with millions of weights possible. Example: $y = a^2\sin a$, with
# $\mathrm dy/\mathrm da = 2a\sin a + a^2\cos a$.

# %%
a = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
y = a**2 * torch.sin(a)
y.backward()  # fills a.grad with dy/da
by_hand = 2 * a * torch.sin(a) + a**2 * torch.cos(a)
print(f"autograd {a.grad.item():.6f}, by hand {by_hand.item():.6f}")
holds(torch.allclose(a.grad, by_hand.detach()) and y.grad_fn is not None,
      "autograd's dy/da equals the derivative by hand, and y records its history");

# %% [markdown]
# Sampling is where the graph breaks. `Normal(mu, sigma).sample()` returns a plain number: it records no
# dependence on `mu` or `sigma`, so no gradient can reach them through it. `rsample()` instead returns
# $\mu + \sigma\varepsilon$, computed from a parameter-free $\varepsilon$, and stays in the graph. That is the
# reparametrisation trick, which the rest of the notebook justifies.

# %%
mu = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
logvar = torch.tensor(math.log(0.25), dtype=torch.float64, requires_grad=True)  # sigma = 0.5
q = Normal(mu, torch.exp(0.5 * logvar))
holds(not q.sample().requires_grad, "sample() is not in the graph")
holds(q.rsample().requires_grad, "rsample() is in the graph");

# %% [markdown]
# ## A toy problem with a known gradient
#
# Take $q_\phi(z) = \mathcal N(\mu, \sigma^2)$ with parameters $\phi = (\mu, \log\sigma^2)$, as the encoder outputs
# them, and $f(z) = (z - 3)^2$. Then $\mathbb E_q[f] = (\mu - 3)^2 + \sigma^2$ (bias squared plus variance), so
#
# $$\frac{\partial}{\partial\mu}\mathbb E_q[f] = 2(\mu - 3), \qquad \frac{\partial}{\partial\log\sigma^2}\mathbb E_q[f] = \sigma^2 .$$
#
# At $\mu = 1$, $\sigma = 0.5$ the true gradient is $(-4, 0.25)$. We check the expectation with $S$ samples,
# to within `Z_MAX` standard errors (SE) as in notebook 2, and the gradient on the closed form:

# %%
def f(z):
    return (z - 3) ** 2


g = torch.Generator().manual_seed(0)
z = mu.detach() + 0.5 * torch.randn(n_mc, generator=g, dtype=torch.float64)  # (S,), z ~ q
expected_f = (mu - 3) ** 2 + logvar.exp()  # closed form of E_q[f]
estimate, se = f(z).mean(), f(z).std() / n_mc**0.5
print(f"E_q[f]: closed form {expected_f.item():.4f}, Monte Carlo {estimate.item():.4f} ± {se.item():.4f}")
true_grad = torch.stack(torch.autograd.grad(expected_f, (mu, logvar)))
holds(abs(estimate - expected_f) < Z_MAX * se, f"the Monte Carlo E_q[f] lies within {Z_MAX} SE of the closed form")
holds(torch.allclose(true_grad, torch.tensor([2 * (1.0 - 3), 0.25], dtype=torch.float64)),
      "the closed form's gradient is (-4, 0.25)");

# %% [markdown]
# ## The score-function (REINFORCE) estimator
#
# Differentiate under the integral and use $\nabla_\phi q_\phi = q_\phi\,\nabla_\phi\log q_\phi$ (the
# *log-derivative trick*). The result is again an expectation under $q$:
#
# $$\nabla_\phi\,\mathbb E_{q_\phi}[f] = \int f(z)\,\nabla_\phi q_\phi(z)\,\mathrm dz = \int q_\phi(z)\,f(z)\,\nabla_\phi\log q_\phi(z)\,\mathrm dz
# = \mathbb E_{q_\phi}\big[f(z)\,\nabla_\phi\log q_\phi(z)\big].$$
#
# It needs only *values* of $f$, never its derivative. So it works for discrete $z$ and for any $f$. For our
# Gaussian the *score* $\nabla_\phi\log q_\phi(z)$ is $\partial_\mu\log q = (z-\mu)/\sigma^2$ and
# $\partial_{\log\sigma^2}\log q = -\tfrac12 + (z-\mu)^2/(2\sigma^2)$:

# %%
z0 = torch.tensor(1.8, dtype=torch.float64)  # any fixed point
score = torch.stack(torch.autograd.grad(Normal(mu, torch.exp(0.5 * logvar)).log_prob(z0), (mu, logvar)))
sigma2 = logvar.exp().detach()
by_hand = torch.stack([(z0 - mu.detach()) / sigma2, -0.5 + (z0 - mu.detach()) ** 2 / (2 * sigma2)])
print("score at z = 1.8:", [round(v, 6) for v in score.tolist()])
holds(torch.allclose(score, by_hand), "autograd's score equals the formulas");

# %% [markdown]
# ## The reparametrised estimator
#
# Write the sample as a differentiable function of the parameters and of noise that does not depend on
# them: $z = g_\phi(\varepsilon) = \mu + \sigma\,\varepsilon$ with $\varepsilon\sim\mathcal N(0, 1)$. This $z$ has
# exactly the distribution $\mathcal N(\mu, \sigma^2)$, so $\mathbb E_{q_\phi}[f(z)] = \mathbb E_{\varepsilon}[f(g_\phi(\varepsilon))]$.
# Now the distribution no longer depends on $\phi$, and the gradient moves inside:
#
# $$\nabla_\phi\,\mathbb E_{q_\phi}[f] = \mathbb E_{\varepsilon}\big[f'(z)\,\nabla_\phi g_\phi(\varepsilon)\big],
# \qquad \frac{\partial z}{\partial\mu} = 1, \quad \frac{\partial z}{\partial\log\sigma^2} = \tfrac12\sigma\varepsilon .$$
#
# **Your turn.** Write the draw from what the encoder outputs, `mu` and `logvar` $= \log\sigma^2$, and the
# noise `eps` you are given. The next cell checks the draw and its gradients, and names the usual mistakes.
# From then on the notebook runs your function.

# %% tags=["solution"]
def my_reparameterize(mu, logvar, eps):
    """z = mu + sigma * eps, a draw of N(mu, diag(sigma^2)) from eps ~ N(0, I), differentiable in mu and logvar.

    Shapes: mu, logvar, eps all (B, L) (or any one shape) -> z of the same shape.
    """
    # Hint: logvar = log sigma^2; what is sigma in terms of logvar? Use the eps given (draw
    # nothing inside), so that gradients reach mu and logvar.
    return mu + torch.exp(0.5 * logvar) * eps


# %% tags=["nbval-check-output"]
reparameterize = check_reparameterize(my_reparameterize).use()

# %% [markdown]
# The draws have the right mean and standard deviation, each within `Z_MAX` SE. Autograd through them
# gives the chain rule above:

# %%
eps = torch.randn(n_mc, generator=g, dtype=torch.float64)
z = reparameterize(mu, logvar, eps)  # (S,), in the graph
print(f"mean {z.mean().item():.4f} (mu = 1), std {z.std().item():.4f} (sigma = 0.5), from {n_mc:,} draws")
grad_mu, grad_logvar = torch.autograd.grad(f(z[0]), (mu, logvar))
chain_rule = torch.stack([2 * (z[0] - 3), 2 * (z[0] - 3) * 0.5 * 0.5 * eps[0]]).detach()
holds(abs(z.mean() - 1) < Z_MAX * 0.5 / n_mc**0.5 and abs(z.std() - 0.5) < Z_MAX * 0.5 / (2 * n_mc) ** 0.5,
      f"the draws' mean and standard deviation lie within {Z_MAX} SE of mu and sigma")
holds(torch.allclose(torch.stack([grad_mu, grad_logvar]), chain_rule), "autograd through the draw gives the chain rule");

# %% [markdown]
# ## Both estimators are unbiased
#
# To study the estimators we need the gradient contributed by *each* sample. So every sample gets its own
# copy of $(\mu, \log\sigma^2)$: the gradient of the sum with respect to copy $i$ is sample $i$'s estimate.
# The reparametrised version differentiates $f(z)$ through $z$:

# %%
def per_sample_params(n):
    """n independent copies of (mu, logvar) that each collect one sample's gradient."""
    return mu.detach().expand(n).clone().requires_grad_(), logvar.detach().expand(n).clone().requires_grad_()


def reparameterised_grads(eps, fn=f):
    """fn'(z) dz/dphi for each sample z = mu + sigma eps. Shapes: (...) -> (..., 2)."""
    mu_n, logvar_n = per_sample_params(eps.numel())
    fn(reparameterize(mu_n, logvar_n, eps.flatten())).sum().backward()
    return torch.stack([mu_n.grad, logvar_n.grad], -1).reshape(*eps.shape, 2)

# %% [markdown]
# The score-function version computes the same $z$ from the same noise, then detaches it. From there on it
# is a plain number, and the gradient comes from $\log q_\phi(z)$ alone. Both see the very same draws.

# %%
def score_function_grads(eps, fn=f):
    """fn(z) d log q(z) / dphi for each sample z, with no gradient through z. Shapes: (...) -> (..., 2)."""
    mu_n, logvar_n = per_sample_params(eps.numel())
    z = reparameterize(mu, logvar, eps.flatten()).detach()  # a plain sample of q
    (fn(z) * Normal(mu_n, torch.exp(0.5 * logvar_n)).log_prob(z)).sum().backward()
    return torch.stack([mu_n.grad, logvar_n.grad], -1).reshape(*eps.shape, 2)

# %% [markdown]
# Averaged over $S$ samples, each estimator lands within `Z_MAX` SE of the true gradient:

# %%
estimators = {"score function": score_function_grads(eps), "reparametrised": reparameterised_grads(eps)}  # (S, 2) each
print(f"true gradient: d/dmu = {true_grad[0].item():+.4f}, d/dlogvar = {true_grad[1].item():+.4f}  ({n_mc:,} samples)")
for name, grads in estimators.items():
    mean, se = grads.mean(0), grads.std(0) / n_mc**0.5
    cells = [f"{m:+.4f} ± {s:.4f} ({(m - t) / s:+.1f} SE)" for m, s, t in zip(mean.tolist(), se.tolist(), true_grad.tolist())]
    print(f"{name:15s} d/dmu = {cells[0]},  d/dlogvar = {cells[1]}")
holds(all(((e.mean(0) - true_grad).abs() < Z_MAX * e.std(0) / n_mc**0.5).all() for e in estimators.values()),
      f"both estimators lie within {Z_MAX} SE of the true gradient");

# %% [markdown]
# Both are right on average, but their standard errors differ on the very same draws. The ratio of their
# per-sample variances is the number of score-function samples that match one reparametrised sample:

# %%
variance_ratio = estimators["score function"].var(0) / estimators["reparametrised"].var(0)
print(f"variance ratio, score function / reparametrised: d/dmu {variance_ratio[0]:.0f}x, d/dlogvar {variance_ratio[1]:.0f}x")
holds((variance_ratio > 1).all(), "the score-function estimator has the larger variance, for both parameters");

# %% [markdown]
# ## Variance against the number of samples
#
# An average of $S$ independent per-sample estimates has variance $\mathrm{Var}_1/S$. So both estimators improve
# at the same rate, a slope of $-1$ on a log-log plot, and the gap between them stays the factor printed
# above. We measure the variance directly, from `n_repeats` independent repetitions of each $S$-sample average:

# %%
S_values = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
eps_rep = torch.randn(n_repeats, max(S_values), generator=g, dtype=torch.float64)
measured = {}
for name, grads_fn in [("score function", score_function_grads), ("reparametrised", reparameterised_grads)]:
    grads = grads_fn(eps_rep)  # (n_repeats, S_max, 2)
    measured[name] = torch.stack([grads[:, :S].mean(1).var(0) for S in S_values])  # (len(S_values), 2)

# %% [markdown]
# The measured variances (dots) against the prediction $\mathrm{Var}_1/S$ (dashed). $\mathrm{Var}_1$ is the
# per-sample variance from the unbiasedness check above:

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
S_axis = torch.tensor(S_values, dtype=torch.float64)
for k, (ax, param) in enumerate(zip(axes, [r"\mu", r"\log\sigma^2"])):
    for name, variances in measured.items():
        line, = ax.loglog(S_values, variances[:, k], "o", label=f"{name}: measured")
        var_1 = estimators[name][:, k].var()  # per-sample variance, from the unbiasedness check
        ax.loglog(S_values, var_1 / S_axis, "--", color=line.get_color(), label=name + r": Var$_1 / S$")
    ax.set(xlabel="number of samples $S$ per estimate", ylabel="variance of the gradient estimate",
           title=rf"$\partial\,\mathbb{{E}}_q[(z-3)^2]\,/\,\partial {param}$")
    ax.legend(fontsize=8)
fig.suptitle(f"Variance of the S-sample average, each measured over {n_repeats} repetitions")
plt.show()

# %% [markdown]
# Each line of dots has slope $-1$, to within 0.25. The fit is by least squares on the log-log scale; the
# cell also prints how far the dots stray from the dashed prediction.

# %%
log_S = S_axis.log() - S_axis.log().mean()
slopes = {}
for name, variances in measured.items():
    slopes[name] = (log_S.unsqueeze(1) * variances.log()).sum(0) / log_S.pow(2).sum()  # (2,), one per parameter
    stray = variances / (estimators[name].var(0) / S_axis.unsqueeze(1))  # measured / predicted
    print(f"{name:15s} slopes: d/dmu {slopes[name][0]:+.2f}, d/dlogvar {slopes[name][1]:+.2f}; "
          f"measured / predicted from {stray.min():.2f} to {stray.max():.2f}")
holds(all(((s + 1).abs() < 0.25).all() for s in slopes.values()), "every slope is -1, to within 0.25");

# %% [markdown]
# Why is the score-function estimator so much noisier? It uses only the value $f(z)$. The score has mean zero
# under $q$, and here $f\ge 0$. So each sample's $f(z)\,\nabla_\phi\log q_\phi(z)$ points wherever that sample's
# score points. The true direction emerges only on average, from high-$f$ samples weighing more. The
# reparametrised estimator uses $f'(z)$, the slope of $f$ at each sample. On the draws above:

# %%
sigma = 0.5
scores = torch.stack([eps / sigma, -0.5 + eps**2 / 2], -1)  # (S, 2): d log q / d(mu, logvar) at each z
mean, se = scores.mean(0), scores.std(0) / n_mc**0.5
print(f"mean score: {mean[0]:+.4f} ± {se[0]:.4f} (d/dmu), {mean[1]:+.4f} ± {se[1]:.4f} (d/dlogvar)")
right_sign = {name: (grads[:, 0].sign() == true_grad[0].sign()).double().mean() for name, grads in estimators.items()}
for name, share in right_sign.items():
    print(f"{name:15s}: {share:.3%} of single-sample estimates of d/dmu have the true sign")
holds((mean.abs() < Z_MAX * se).all(), f"the mean score is 0, to within {Z_MAX} SE")
holds(right_sign["reparametrised"] > right_sign["score function"],
      "more single reparametrised estimates than score-function ones have the true sign");

# %% [markdown]
# The reparametrisation has a price. The draw $z$ must be a differentiable function of $\phi$ and
# $\varepsilon$. And $f$ must be continuous in $z$, with a derivative bounded by something whose average under
# $q$ is finite (Lipschitz will do). Then, by dominated convergence, the derivative of the average is the
# average of the derivatives. Differentiable almost everywhere is not enough on its own. A step function has
# derivative 0 almost everywhere, yet $\mathbb E[\mathbf 1\{z > 0\}]$ changes with $\mu$. A ReLU decoder is
# continuous and Lipschitz. Its kinks are hit with probability zero by a continuous $z$. So for a VAE with a
# Gaussian $q$ both conditions hold.
#
# ## The trick inside the VAE
#
# In `VAE.forward` the encoder's $(\mu, \log\sigma^2)$ go through the reparametrised draw before the decoder,
# with one $\varepsilon$ per image. So each training step estimates the reconstruction term and its gradient
# from a single sample (notebook 4 measures whether one is enough). With a plain sample instead, the encoder
# gets no gradient at all from the reconstruction term. On a small VAE, we count the encoder's tensors that
# receive a non-zero gradient of $\log p(x\mid z)$, with your draw and with a plain sample of the same value:

# %%
seed_everything(0)
tiny = VAE(ModelConfig(x_dim=6, hidden=(5,), z_dim=2)).double()  # D = 6 pixels, one hidden layer of 5 units, L = 2
x = torch.bernoulli(torch.full((3, 6), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(1))
eps_x = torch.randn(3, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)  # (B, L)
mu_x, logvar_x = tiny.encode(x)
encoder = [*tiny.encoder.parameters(), *tiny.mu_head.parameters(), *tiny.logvar_head.parameters()]
reached = {}
for name, z_x in [("reparametrised z", reparameterize(mu_x, logvar_x, eps_x)),
                  ("plain sample z  ", reparameterize(mu_x, logvar_x, eps_x).detach())]:
    tiny.zero_grad()
    bernoulli_log_likelihood(tiny.decode(z_x), x).sum().backward(retain_graph=True)
    reached[name] = sum(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in encoder)
    print(f"{name}: {reached[name]} of the encoder's {len(encoder)} tensors receive a gradient")
holds(list(reached.values()) == [len(encoder), 0], "every encoder tensor gets a gradient through the draw, none through a plain sample");

# %% [markdown]
# ## Checking autograd against finite differences
#
# Autograd is exact up to rounding, but our *use* of it could be wrong: a stray `.detach()`, a wrong
# reduction. An independent check is the central finite difference
#
# $$\frac{\partial F}{\partial u_k} \approx \frac{F(u + h e_k) - F(u - h e_k)}{2h}.$$
#
# Its error is a truncation term of order $h^2$ plus a rounding term of order $\epsilon_{\text{mach}}|F|/h$. We
# take $F$ to be the one-sample ELBO of the tiny VAE, summed over its images, as a function of the encoder's
# outputs $(\mu, \log\sigma^2)$ with the noise held fixed. One entry by hand, in float64 with $h = 10^{-6}$:

# %%
def elbo_of(mu, logvar):
    """One-sample ELBO per image, log p(x|z) - KL(q || p), with z = mu + sigma * eps_x. Shapes: (B, L) x 2 -> (B,)."""
    return bernoulli_log_likelihood(tiny.decode(reparameterize(mu, logvar, eps_x)), x) - kl_standard_normal(mu, logvar)


mu0, logvar0 = mu_x.detach().requires_grad_(), logvar_x.detach().requires_grad_()
(autograd_mu,) = torch.autograd.grad(elbo_of(mu0, logvar0).sum(), mu0)
h, e = 1e-6, torch.zeros_like(mu0)
e[0, 1] = h  # perturb mu of image 0, latent dim 1
central = (elbo_of(mu0 + e, logvar0) - elbo_of(mu0 - e, logvar0)).sum() / (2 * h)
rounding = torch.finfo(torch.float64).eps * elbo_of(mu0, logvar0).sum().abs().item() / h
difference = (central - autograd_mu[0, 1]).abs().item()
print(f"d ELBO / d mu[0, 1]: autograd {autograd_mu[0, 1].item():.10f}, central difference {central.item():.10f}")
print(f"difference {difference:.0e}; rounding scale eps_mach |F| / h = {rounding:.0e}")
holds(difference < 10 * rounding, "autograd and the central difference agree to within ten times the rounding scale");

# %% [markdown]
# `torch.autograd.gradcheck` does this for every entry of every input. It compares the whole Jacobian that
# backward computes with the one from central differences, for the ELBO with respect to `mu` and `logvar`:

# %%
holds(torch.autograd.gradcheck(elbo_of, (mu0, logvar0), eps=1e-6, atol=1e-7),
      "gradcheck passes for the ELBO with respect to (mu, logvar)");

# %% [markdown]
# ## Summary
#
# - $\nabla_\phi\mathbb E_{q_\phi}[f]$ is not $\mathbb E_{q_\phi}[\nabla_\phi f]$, which is 0 since $f$ has no $\phi$ in it:
#   the samples' distribution depends on $\phi$. The score-function estimator differentiates $\log q_\phi$
#   instead; the reparametrisation moves $\phi$ into $f$.
# - The score-function estimator $f(z)\nabla_\phi\log q_\phi(z)$ is unbiased and general. On the toy problem its
#   variance was larger than the reparametrised estimator's, by the factors printed above.
# - The reparametrisation $z = \mu + \exp(\tfrac12\log\sigma^2)\odot\varepsilon$ moves $\phi$ out of the
#   distribution, and $f'(z)\nabla_\phi z$ is unbiased too. Both variances fall like $1/S$ with $S$ samples.
# - Autograd differentiates through the draw; gradcheck confirms it against finite differences.

# %% [markdown]
# ## Exercises
#
# 1. The page reparametrised a Gaussian with a diagonal covariance. A full covariance $\Sigma = CC^\top$ lets the
#    latent dimensions be correlated; $C$ is lower triangular with a positive diagonal (the Cholesky factor of
#    $\Sigma$). Implement `my_rsample_tril(mu, scale_tril, eps)`: a reparametrised draw of $\mathcal N(\mu, CC^\top)$
#    for each example, where `scale_tril` holds $C$. Build it from the given noise $\varepsilon\sim\mathcal N(0, I)$,
#    so that gradients reach both $\mu$ and $C$. The next cell checks the draw and its gradients.

# %% tags=["solution"]
def my_rsample_tril(mu, scale_tril, eps):
    """A draw of N(mu, C C^T) per example, C = scale_tril lower triangular, from eps ~ N(0, I).

    Differentiable in mu and scale_tril. Shapes: (B, L), (B, L, L), (B, L) -> (B, L).
    """
    # Hint: if eps has covariance I, then A eps has covariance A A^T: which A do you have?
    # Mind the shapes: torch.matmul treats the leading dims as a batch of matrices.
    return mu + (scale_tril @ eps.unsqueeze(-1)).squeeze(-1)


# %% tags=["nbval-check-output"]
check_rsample_tril(my_rsample_tril)

# %% [markdown]
# 2. A *baseline* $b$ leaves the score-function estimator unbiased,
#    $\mathbb E_q[(f(z) - b)\nabla_\phi\log q_\phi(z)] = \nabla_\phi\mathbb E_q[f]$, because the score has mean zero
#    (checked above). Measure the variance with $b = \mathbb E_q[f] = (\mu-3)^2 + \sigma^2$. How close does it get to
#    the reparametrised estimator?

# %% [markdown] tags=["answer"]
# *Answer.* The helpers above take the function as an argument, so the baseline is one lambda. The estimate
# stays unbiased and its variance falls. It stays above the reparametrised estimator's, as the per-sample
# variances below show (the $S$-sample average divides each by $S$):

# %% tags=["answer"]
b = expected_f.detach()
with_baseline = score_function_grads(eps, lambda z: f(z) - b)  # (S, 2)
per_sample_var = {"score function": estimators["score function"].var(0), "with baseline": with_baseline.var(0),
                  "reparametrised": estimators["reparametrised"].var(0)}
for name, v in per_sample_var.items():
    print(f"{name:15s} per-sample variance: d/dmu {v[0]:8.2f}, d/dlogvar {v[1]:7.3f}")
holds(((with_baseline.mean(0) - true_grad).abs() < Z_MAX * with_baseline.std(0) / n_mc**0.5).all(),
      f"with the baseline the estimate stays within {Z_MAX} SE of the true gradient")
holds((per_sample_var["score function"] > per_sample_var["with baseline"]).all()
      and (per_sample_var["with baseline"] > per_sample_var["reparametrised"]).all(),
      "the baseline lowers the variance, but not to the reparametrised estimator's");

# %% [markdown]
# 3. Replace $f$ by $f(z) = (z - 3)^2 + 100$. Which estimator's variance changes, and by how much? Explain.

# %% [markdown] tags=["answer"]
# *Answer.* The reparametrised estimator uses $f'$, and the constant has derivative zero: its estimates do not
# change, sample by sample. The score-function estimator adds $100\,\nabla_\phi\log q_\phi(z)$ to every sample.
# That is zero on average, so the expectation is unchanged. But it is noise of variance
# $100^2\,\mathrm{Var}(\text{score})$, plus twice its covariance with the rest. Its variance grows by the factors
# printed:

# %% tags=["answer"]
shifted = {"score function": score_function_grads(eps, lambda z: f(z) + 100),
           "reparametrised": reparameterised_grads(eps, lambda z: f(z) + 100)}
growth = shifted["score function"].var(0) / estimators["score function"].var(0)
print(f"score-function variance with f + 100 / with f: d/dmu {growth[0]:.0f}x, d/dlogvar {growth[1]:.0f}x")
holds(torch.allclose(shifted["reparametrised"], estimators["reparametrised"]), "the reparametrised estimates do not change")
holds((growth > 1).all(), "the score-function variance grows, for both parameters");
