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
# # 4. Training the VAE
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/solutions/04_training.ipynb)
#
# Notebooks 1–3 derived every piece: the Bernoulli decoder that returns logits, the Gaussian
# encoder $q_\phi(z\mid x)$, the closed-form KL term and the reparametrised sample. Here we write the
# VAE, its loss and its training loop on the page, train it, and check each against the library. The
# objective, for a batch of $B$ images:
#
# $$\max_{\theta,\phi}\ \frac{1}{B}\sum_{i=1}^{B}\Big(\log p_\theta(x_i\mid z_i) - \mathrm{KL}\big(q_\phi(z\mid x_i)\,\|\,p(z)\big)\Big),
# \qquad z_i = \mu_\phi(x_i) + \sigma_\phi(x_i)\odot\varepsilon_i,\ \ \varepsilon_i\sim\mathcal N(0, I).$$
#
# In order: binarisation, the model, the loss from logits, the loop, and the course model (saved for
# notebooks 5–7) with what it learned; then two questions students ask: is one sample of $z$ per image
# enough, and why does evaluation still sample $z$? Plain gradient descent against Adam is in appendix
# notebook 9.

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
from torch import nn
from tqdm.auto import tqdm

from vaelib import plot
from vaelib.config import TrainConfig, pick_device, progress_bars, seed_everything, smoke
from vaelib.data import binarise, describe, load_mnist
from vaelib.elbo import elbo_terms
from vaelib.exact import converged_log_px
from vaelib.exercises import check_warmup_loss
from vaelib.model import VAE
from vaelib.train import per_image_terms, save_course_model, train

SMOKE = smoke()  # VAELIB_SMOKE=1 (as in `make check`) shrinks every budget
device = pick_device()  # $VAELIB_DEVICE, else the accelerator PyTorch reports (CUDA, MPS), else the CPU
data = load_mnist("auto")

# %% [markdown]
# ## Dynamic binarisation
#
# MNIST pixels are grey levels in $[0, 1]$, but our likelihood is Bernoulli: it wants $x_d\in\{0,1\}$.
# Rather than thresholding once, we treat each grey level as the probability of a black pixel and
# draw a fresh binary image every time the digit is used, a form of data augmentation (appendix
# notebook 10 measures what it is worth). The test set is binarised once with a fixed seed, so that every epoch
# and run is scored on the same images.

# %%
g = torch.Generator().manual_seed(0)
digit = data.train_x[0]
draws = torch.stack([binarise(digit, g) for _ in range(4)])
fig, axes = plt.subplots(1, 5, figsize=(9, 2))
for ax, img, title in zip(axes, [digit, *draws], ["grey levels", "draw 1", "draw 2", "draw 3", "draw 4"]):
    ax.imshow(img.reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")

# %% [markdown]
# The average of many draws converges to the grey levels (the Bernoulli mean), the Monte Carlo
# error shrinking like $1/\sqrt{S}$ for $S$ draws: with $S = 10{,}000$ no pixel should be off by more
# than about $4\sqrt{0.25/S} = 0.02$.

# %%
n_draws = 10_000
mean_of_draws = binarise(digit.expand(n_draws, 784), g).mean(0)
print(f"largest |mean of {n_draws} draws - grey level| = {(mean_of_draws - digit).abs().max():.4f}")
assert (mean_of_draws - digit).abs().max() < 4 * (0.25 / n_draws) ** 0.5

# %% [markdown]
# ## The model, written out
#
# The encoder maps an image to the parameters of $q_\phi(z\mid x)$ through two hidden layers; two linear
# *heads* give $\mu$ and $\log\sigma^2$; the reparametrised sample $z$ goes through the decoder, which
# returns logits, with no sigmoid at the end. The sizes are the original course's: $D = 784$,
# hidden widths 256 and 128, $L = 2$.

# %%
class CourseVAE(nn.Module):
    """Encoder 784-256-128 (ReLU), heads for mu and logvar, decoder 2-128-256-784 returning logits."""

    def __init__(self, D=784, H1=256, H2=128, L=2):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(D, H1), nn.ReLU(), nn.Linear(H1, H2), nn.ReLU())
        self.mu_head = nn.Linear(H2, L)
        self.logvar_head = nn.Linear(H2, L)
        self.decoder = nn.Sequential(nn.Linear(L, H2), nn.ReLU(), nn.Linear(H2, H1), nn.ReLU(), nn.Linear(H1, D))

    def forward(self, x, generator=None):
        h = self.encoder(x)  # (B, H2)
        mu, logvar = self.mu_head(h), self.logvar_head(h)  # (B, L) each
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)  # (B, L), eps ~ N(0, I)
        z = mu + torch.exp(0.5 * logvar) * eps  # (B, L), a reparametrised sample of q(z|x)
        return self.decoder(z), mu, logvar  # logits (B, D)

# %% [markdown]
# `vaelib.VAE` is built from the same layers under the same names, so it can load this module's
# weights. With the same weights and the same $\varepsilon$, the two must agree on every output:

# %% tags=["nbval-check-output"]
seed_everything(0)
page_model = CourseVAE().to(device)
print(page_model)
library_model = VAE().to(device)
library_model.load_state_dict(page_model.state_dict())  # strict: every name and shape must match
x = binarise(data.train_x[:100], g).to(device)  # B = 100 images of D = 784 pixels
same_eps = lambda: torch.Generator(device).manual_seed(1)  # noqa: E731
for ours, theirs, name in zip(page_model(x, same_eps()), library_model(x, same_eps()), ["logits", "mu", "logvar"]):
    torch.testing.assert_close(ours, theirs)
    print(f"{name}: {tuple(ours.shape)}, equal to vaelib.VAE's")

# %% [markdown]
# ## The loss, written out
#
# The ELBO of each image from the model's three outputs, reducing over the right axes: the $D$
# pixels for the log-likelihood, the $L$ latent dimensions for the KL; the loss is minus the mean
# over the batch. Checked against `vaelib.elbo.elbo_terms`:

# %%
def elbo_on_page(logits, x, mu, logvar):
    """ELBO per image and its two terms, in nats. Shapes: (B, D), (B, D), (B, L), (B, L) -> 3 x (B,)."""
    log_px_z = (x * logits - F.softplus(logits)).sum(-1)  # sum over the D pixels
    kl = 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(-1)  # sum over the L latent dims
    return log_px_z - kl, log_px_z, kl


# %%
logits, mu, logvar = page_model(x, same_eps())
elbo, log_px_z, kl = elbo_on_page(logits, x, mu, logvar)
library = elbo_terms(library_model, x, same_eps())
for ours, theirs in [(elbo, library.elbo), (log_px_z, library.log_px_z), (kl, library.kl)]:
    torch.testing.assert_close(ours, theirs)
print(f"loss of the untrained model: {-elbo.mean().item():.1f} nats per image; 784 log 2 = {784 * math.log(2):.1f}")

# %% [markdown]
# The untrained decoder's logits are near 0 (notebook 1), so every pixel is a fair coin and the
# loss starts near $784\log 2$ nats, one coin flip per pixel, as printed above.
#
# ### Why from logits
#
# The original course's decoder ended in a sigmoid, and its loss took the binary cross-entropy (BCE) of
# the probabilities. In float32, $\sigma(\ell)$ rounds to exactly 1 or 0 once $|\ell|$ is large enough,
# and PyTorch's BCE clamps the resulting $\log 0$ at $-100$. For a pixel the decoder gets confidently
# wrong:

# %% tags=["nbval-check-output"]
one = torch.tensor(1.0)
saturates_at = next(l for l in range(1, 200) if torch.sigmoid(torch.tensor(float(l))) == one)
print(f"float32: sigmoid(l) == 1 exactly from l = {saturates_at}")
print(f"{'logit':>6} {'x':>2} {'exact x*l - softplus(l)':>24} {'-BCE(sigmoid(l), x)':>20}")
for logit, pixel in [(-200.0, 1.0), (-30.0, 1.0), (10.0, 0.0), (15.0, 0.0), (saturates_at, 0.0), (200.0, 0.0)]:
    ell1, x1 = torch.tensor([float(logit)]), torch.tensor([pixel])
    exact = (x1 * ell1 - F.softplus(ell1)).item()
    from_probs = -F.binary_cross_entropy(torch.sigmoid(ell1), x1).item()
    print(f"{logit:6.0f} {pixel:2.0f} {exact:24.4f} {from_probs:20.4f}")

# %% [markdown]
# Past the saturation point the probability form reports $-100$ whatever the truth, and its gradient
# vanishes: $\sigma(\ell)$ has rounded to 1, so $\sigma(\ell)(1-\sigma(\ell)) = 0$ and nothing flows back
# through the saturated sigmoid. The logits form gives the gradient $x - \sigma(\ell)$:

# %% tags=["nbval-check-output"]
ell1 = torch.tensor([30.0], requires_grad=True)
x0 = torch.tensor([0.0])
(grad_exact,) = torch.autograd.grad((x0 * ell1 - F.softplus(ell1)).sum(), ell1)
(grad_bce,) = torch.autograd.grad(-F.binary_cross_entropy(torch.sigmoid(ell1), x0), ell1)
print(f"d log p / d logit at logit 30, x = 0: logits form {grad_exact.item():+.4f}, "
      f"BCE of probabilities {grad_bce.item():+.4f}")

# %% [markdown]
# ### Sum or mean over the pixels?
#
# The log-likelihood of an image is a *sum* over its pixels. Many VAE scripts write the loss with
# PyTorch's default `reduction="mean"`, a mean over the $B\times D$ pixels of the batch, and add the
# KL averaged over the batch. That is $\frac1D\big(\text{reconstruction} + D\cdot\mathrm{KL}\big)$: the loss
# of a VAE whose KL term is weighted by $\beta = D = 784$, scaled by $1/D$ (a scale that Adam's
# per-parameter normalisation all but removes). Checked, gradients included:

# %% tags=["nbval-check-output"]
logits, mu, logvar = page_model(x, same_eps())
_, log_px_z, kl = elbo_on_page(logits, x, mu, logvar)
D = x.shape[1]
mean_reduced = F.binary_cross_entropy_with_logits(logits, x) + kl.mean()  # a common script's loss
beta_vae = -(log_px_z - D * kl).mean() / D  # the beta = D loss, scaled by 1 / D
torch.testing.assert_close(mean_reduced, beta_vae)
for a, b in zip(torch.autograd.grad(mean_reduced, page_model.parameters(), retain_graph=True),
                torch.autograd.grad(beta_vae, page_model.parameters())):
    torch.testing.assert_close(a, b)
print(f"mean-reduced loss = (reconstruction + {D} KL) / {D}: values and gradients equal")

# %% [markdown]
# Such a script trains with a KL term 784 times heavier than the ELBO's, which pushes the encoder to
# copy the prior; notebook 7 measures what it costs.
#
# ## The training loop, written out
#
# One epoch visits the training images in a fresh random order, in batches of $B = 100$, each
# binarised afresh, with one optimiser step per batch. After each epoch the loop scores the test set
# with a fixed $\varepsilon$ and records the two terms of the loss: the *distortion*
# $-\mathbb E_q[\log p(x\mid z)]$ and the *rate* $\mathrm{KL}(q(z\mid x)\,\|\,p(z))$.

# %%
@torch.no_grad()
def evaluate_on_page(model, test_x, batch=1000, seed=1234):
    """Mean -ELBO and mean KL over the test images, one sample of eps each from a fixed seed."""
    generator, neg_elbo, kl = torch.Generator(device).manual_seed(seed), 0.0, 0.0
    for i in range(0, len(test_x), batch):
        x = test_x[i:i + batch]
        logits, mu, logvar = model(x, generator)
        elbo, _, kl_i = elbo_on_page(logits, x, mu, logvar)
        neg_elbo, kl = neg_elbo - elbo.sum().item(), kl + kl_i.sum().item()
    return neg_elbo / len(test_x), kl / len(test_x)

# %% [markdown]
# The loop itself. The progress bar (tqdm) shows the epoch's steps; the line printed after each epoch
# is what stays in the notebook.

# %%
def train_on_page(model, optimizer, train_x, test_x, epochs, seed=0, B=100):
    generator, N = torch.Generator(device).manual_seed(seed), len(train_x)
    history = {"epoch": [], "train_neg_elbo": [], "test_neg_elbo": [], "test_kl": []}
    for epoch in range(1, epochs + 1):
        order, losses = torch.randperm(N, generator=generator, device=device), []
        for i in tqdm(range(N // B), desc=f"epoch {epoch}", disable=not progress_bars(), leave=False):
            x = binarise(train_x[order[i * B:(i + 1) * B]], generator)  # (B, D), drawn afresh
            logits, mu, logvar = model(x, generator)
            loss = -elbo_on_page(logits, x, mu, logvar)[0].mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        test_neg_elbo, test_kl = evaluate_on_page(model, test_x)
        for key, value in zip(history, [epoch, torch.stack(losses).mean().item(), test_neg_elbo, test_kl]):
            history[key].append(value)
        print(f"epoch {epoch:2d}: train -ELBO {history['train_neg_elbo'][-1]:7.2f} | test -ELBO {test_neg_elbo:7.2f}"
              f" = distortion {test_neg_elbo - test_kl:7.2f} + rate {test_kl:5.2f}")
    return history

# %% [markdown]
# ### The loop at work, and `vaelib.train` beside it
#
# Two epochs of the page's loop with Adam (learning rate $10^{-3}$, held constant), from freshly
# initialised weights. Beside it, the library's `train` runs the same loop rearranged for speed. It
# draws the same random numbers in the same order, so from the same weights and seed its losses must
# match the page's, up to float rounding that training amplifies:

# %%
page_epochs = 1 if SMOKE else 2
train_x, test_x = data.train_x.to(device), data.test_x.to(device)
print(f"{describe(data)}; {page_epochs} epoch(s) of {len(train_x) // 100} steps, on {device}")
seed_everything(0)
page = CourseVAE().to(device)
page_history = train_on_page(page, torch.optim.Adam(page.parameters(), lr=1e-3), train_x, test_x, page_epochs)

# %%
seed_everything(0)
library = VAE().to(device)  # the same initial weights: same seed, same layers in the same order
library_history = train(library, data, TrainConfig(epochs=page_epochs, lr_schedule="constant", device=str(device)))
# the first epoch to 1 part in 10^4; later ones to 1 in 10^3, as rounding differences grow with training
torch.testing.assert_close(library_history.train_neg_elbo[0], page_history["train_neg_elbo"][0], rtol=1e-4, atol=0)
torch.testing.assert_close(library_history.train_neg_elbo, page_history["train_neg_elbo"], rtol=1e-3, atol=0)
torch.testing.assert_close(library_history.test_neg_elbo, page_history["test_neg_elbo"], rtol=1e-3, atol=0)
gap = max((p - q).abs().max().item() for p, q in zip(page.parameters(), library.parameters()))
print(f"test -ELBO after each epoch: page {[round(v, 2) for v in page_history['test_neg_elbo']]}, "
      f"vaelib {[round(v, 2) for v in library_history.test_neg_elbo]}; largest weight difference {gap:.1e}")

# %% [markdown]
# The losses agree (asserted above); the weights do not quite: the two loops round differently in the
# last bits, and hundreds of steps amplify that up to the largest difference printed, as between two
# runs on different numbers of threads (the package's tests check the weights step for step over the
# first 100 steps). From here on we use `vaelib.train`.
#
# ## The course model
#
# `vaelib.train` with its defaults is what `python -m vaelib train` runs: Adam at $10^{-3}$ for 20
# epochs, with the learning rate held and then decayed linearly to zero over the last quarter of the
# steps, to settle the weights at the end. This is the model notebooks 5–7 use, and the longest cell
# of the notebook (about two minutes on two CPU cores).

# %%
epochs = 1 if SMOKE else 20
seed_everything(0)
course = VAE().to(device)
cfg = TrainConfig(epochs=epochs, device=str(device))  # epochs = 20, the default, except in the smoke setting
course_history = train(course, data, cfg)
for i in sorted({0, len(course_history.epoch) // 2, len(course_history.epoch) - 1}):
    print(f"epoch {course_history.epoch[i]:4.1f}: train -ELBO {course_history.train_neg_elbo[i]:7.2f} "
          f"(mean over the epoch) | test -ELBO {course_history.test_neg_elbo[i]:7.2f} (rate {course_history.test_kl[i]:.2f})")

# %% [markdown]
# Its learning curves. The test loss is measured after each epoch; the training loss is the mean over
# the epoch's steps, while the weights were still changing, so it is drawn at the middle of its epoch.
# On the right the test loss is split into its two terms, each on its own scale: the distortion
# $-\mathbb E_q[\log p(x\mid z)]$ and the rate $\mathrm{KL}(q(z\mid x)\,\|\,p(z))$.

# %%
h = course_history
fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
left.plot([e - 0.5 for e in h.epoch], h.train_neg_elbo, "o-", label="train (mean over the epoch)")
left.plot(h.epoch, h.test_neg_elbo, "s-", label="test (after the epoch)")
left.set(xlabel="epoch", ylabel="-ELBO (nats per image)", title="The course model's loss")
middle.plot(h.epoch, [e - k for e, k in zip(h.test_neg_elbo, h.test_kl)], "s-", color="C2")
middle.set(xlabel="epoch", ylabel="nats per image", title="Test distortion")
right.plot(h.epoch, h.test_kl, "s-", color="C3")
right.set(xlabel="epoch", ylabel="nats per image", title="Test rate (KL)")
for ax in (left, middle, right):
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
left.legend()
last = h.test_neg_elbo[-1]
print(f"after {h.epoch[-1]:g} epochs: test -ELBO {last:.2f} = distortion {last - h.test_kl[-1]:.2f} "
      f"+ rate {h.test_kl[-1]:.2f} nats per image")
assert last - h.test_kl[-1] > h.test_kl[-1]  # most of the loss is distortion

# %% [markdown]
# Most of the test loss is distortion: with two numbers per image the rate, the information the code
# carries about the image, is small, and the decoder can only draw a typical version of the digit.

# %% [markdown]
# `save_course_model` stores the weights, the model's settings and the training history; notebooks
# 5–7 read them back with `course_model`.

# %%
run = save_course_model(course, {"course": course_history}, data_source=data.source)
print(f"saved the course model and its history in runs/{run.name}")

# %% [markdown]
# ## Is one sample of $z$ per image enough?
#
# Each training step estimates the gradient from $B$ images and one $\varepsilon$ per image; Kingma &
# Welling report that one sample sufficed when $B$ is large enough. The question is how much one sample
# adds to the noise that the choice of images already brings. For image $x$ and noise $\varepsilon$ let $g(x, \varepsilon)$ be the gradient of its loss;
# a batch of $B$ images with $S$ samples each estimates the mean gradient with total variance
#
# $$\frac{1}{B}\Big(\sigma^2_{\text{data}} + \frac{\sigma^2_z}{S}\Big), \qquad
# \sigma^2_{\text{data}} = \mathrm{tr\,Var}_x\big(\mathbb E_\varepsilon\, g\big), \quad
# \sigma^2_z = \mathbb E_x\,\mathrm{tr\,Var}_\varepsilon(g).$$
#
# We measure both on the course model from per-image gradients:

# %%
def gradient_variances(model, x, samples, seed=0):
    """sigma^2_z and sigma^2_data of the gradient of each image's -ELBO, from `samples` draws of eps per image.

    Keeps one image's (samples, P) gradients at a time and the (N, P) means, not all N * samples of them.
    """
    generator, means, noise = torch.Generator(device).manual_seed(seed), [], []
    for image in x:
        grads = []
        for _ in range(samples):
            model.zero_grad()
            (-elbo_terms(model, image[None], generator).elbo.sum()).backward()
            grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        grads = torch.stack(grads)  # (samples, P)
        noise.append(grads.var(0).sum())  # tr Var_eps(g) for this image
        means.append(grads.mean(0))
    sigma2_z = torch.stack(noise).mean()  # averaged over images
    sigma2_data = torch.stack(means).var(0).sum() - sigma2_z / samples  # a mean over draws still holds 1/samples of it
    return sigma2_z, sigma2_data


sigma2_z, sigma2_data = gradient_variances(course, binarise(data.train_x[torch.randperm(len(data.train_x), generator=g)[:32 if SMOKE else 64]], g).to(device),
                                      samples=8)
print(f"sigma^2_data = {sigma2_data:.3g}, sigma^2_z = {sigma2_z:.3g}")

# %% [markdown]
# What the two give for a batch of 100 images, with one sample or with many. And for the same
# computing cost: with $S$ samples an image costs one pass of the encoder and $S$ of the decoder,
# which here are mirror images of the same size, so ten samples per image cost $(1 + 10)/2 = 5.5$
# times one sample, as much as $550$ images with one sample each:

# %%
variance = lambda B, S: (sigma2_data + sigma2_z / S) / B  # noqa: E731
print(f"B = 100, S = 1: {variance(100, 1):.4g};  S -> infinity: {sigma2_data / 100:.4g} "
      f"(one sample adds {100 * (variance(100, 1) / (sigma2_data / 100) - 1):.0f}% to the variance)")
ten_samples, more_images = variance(100, 10), variance(550, 1)
print(f"the same work: B = 100, S = 10: {ten_samples:.4g};  B = 550, S = 1: {more_images:.4g}")
if not SMOKE:
    assert more_images < ten_samples and sigma2_z < 3 * sigma2_data  # more images buy more, by a wide margin

# %% [markdown]
# Extra samples of $z$ shrink only the $\sigma^2_z$ part, extra images both: 550 images with one sample
# beat 100 with ten whenever $\sigma^2_z < 10\,\sigma^2_{\text{data}}$. For the course model the two
# are of the same size (printed above), far from that factor of ten (asserted): for the same work more
# images reduce the variance far more. That is the argument for $S = 1$ and a larger batch.
#
# ## Why evaluation still samples $z$
#
# At test time it is tempting to skip the noise and decode the posterior mean: score an image by
# $\log p(x\mid z=\mu) - \mathrm{KL}$. That number is not the ELBO, which is an expectation over
# $q(z\mid x)$, and it is not a bound on $\log p(x)$. Compared, on test images, with the ELBO and with
# the exact $\log p(x)$, which notebook 6 computes by quadrature over the 2-D latent plane
# (`converged_log_px`, each image to within 0.01 nats), for the course model:

# %%
n_eval = 200 if SMOKE else 2000
subset = torch.randperm(len(data.test_x), generator=torch.Generator().manual_seed(0))[:n_eval]  # seeded, random
x_eval = data.test_x[subset].to(device)  # (not the first images: the test file is ordered by writer)
with torch.no_grad():
    mu, logvar = course.encode(x_eval)
    logits = course.decode(mu)  # the decoder at the posterior mean: no sample
    plug_in = elbo_on_page(logits, x_eval, mu, logvar)[0]  # log p(x|z=mu) - KL
elbo = per_image_terms(course, x_eval).elbo
log_px, last_change, _ = converged_log_px(course, x_eval)
above = (plug_in > log_px + last_change).float().mean().item()  # above log p(x) by more than its error
print(f"{n_eval} test images, means in nats: ELBO {elbo.mean():.2f}, log p(x|z=mu) - KL {plug_in.mean():.2f}, "
      f"exact log p(x) {log_px.mean():.2f}")
print(f"the decoded-mean score minus the ELBO: {plug_in.mean() - elbo.mean():+.2f} nats on average; the score "
      f"is above log p(x) itself for {above:.0%} of the images")
if not SMOKE:
    assert plug_in.mean() > elbo.mean() and above > 0.1

# %% [markdown]
# The decoded-mean score ignores that the code is uncertain. For the course model it lies about a nat
# above the ELBO on average, and above $\log p(x)$ itself for about half of the images (more than one
# in ten, asserted): it is not a lower bound on $\log p(x)$, and it flatters the model. The ELBO with sampled $z$ is the honest number to report,
# and importance sampling tightens it (notebook 6).

# %% [markdown]
# ## What the course model learned
#
# Test digits it never saw during training (a seeded random choice), each above the decoder's output
# at the mean of its code, $\sigma(\text{logits}(\mu_\phi(x)))$; then digits decoded from codes drawn
# from the prior, $z\sim\mathcal N(0, I)$. With two numbers per image the reconstructions keep the
# rough shape but lose the writer's details, and some change class (a 3 decoded as a 5, a 4 as a 9);
# the samples are blurred typical digits. Notebook 5 counts how often codes lie among another class's.

# %%
shown = torch.randperm(len(data.test_x), generator=torch.Generator().manual_seed(1))[:16]
plot.plot_reconstructions(course, data.test_x[shown], data.test_y[shown]);

# %%
plot.plot_prior_samples(course, n=64);

# %% [markdown]
# ## Summary
#
# - The VAE is a small `nn.Module` whose outputs equal `vaelib.VAE`'s; the loss sums the
#   log-likelihood over pixels (a mean over pixels trains a $\beta = 784$ VAE) and is computed from
#   logits, which keeps its gradient alive where a sigmoid saturates.
# - The training loop is a dozen lines; `vaelib.train` gives the same losses and trains the course
#   model. Most of its test loss is distortion: two numbers per image keep a digit's rough shape,
#   not always its class.
# - For the same work, more images reduce the gradient's variance more than more samples of $z$;
#   evaluation must still sample $z$.

# %% [markdown]
# ## Exercises
#
# 1. *KL warm-up* (Bowman et al. 2016; Sønderby et al. 2016) weights the KL term by $\beta$ rising
#    linearly from 0 to 1 over the first `warmup_steps` optimiser steps, and 1 from then on, so that
#    the decoder learns to use the code before the KL term pulls the code towards the prior. `step`
#    counts the steps taken before this one: it is 0 for the first step, when $\beta = 0$, and
#    $\beta$ first reaches 1 at `step == warmup_steps`. Write the loss of one batch from the
#    per-image terms. The next cell checks it.

# %% tags=["solution"]
def my_warmup_loss(log_px_z, kl, step, warmup_steps):
    """The warmed-up loss at `step`: minus the batch mean of the ELBO with its KL term weighted by beta
    as described above. Shapes: (B,), (B,), int, int -> ()."""
    # Hint: compute the weight from the step first; the loss is the negative ELBO
    # above with that weight on one of its two terms.
    beta = min(1.0, step / warmup_steps)
    return -(log_px_z - beta * kl).mean()


# %% tags=["nbval-check-output"]
check_warmup_loss(my_warmup_loss)

# %% [markdown]
# With two latent dimensions there is little for warm-up to rescue (notebook 5 finds both in use).
# Notebook 7, exercise 4, puts it to work where it can matter, with 50 latent dimensions, over three
# training seeds.
