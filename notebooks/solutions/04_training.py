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
# # 4. Training the VAE
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/solutions/04_training.ipynb)
#
# In this notebook you write the VAE and train it. You write four pieces: the model's forward pass, the
# loss of each image, one training step and the learning-rate schedule. Each is checked as soon as it is
# written. Then the loop on this page trains the course model with your pieces: 20 epochs of Adam, a few
# minutes on a CPU. Notebooks 5 and 6 study that model. Figure 1 of notebook 1 draws it as a graphical model
# and as networks; here we build the networks.
#
# Training maximises the ELBO averaged over a batch of $B$ images, each with one draw of $z$:
#
# $$\max_{\theta,\phi}\ \frac{1}{B}\sum_{i=1}^{B}\Big(\log p_\theta(x_i\mid z_i) - \mathrm{KL}\big(q_\phi(z\mid x_i)\,\|\,p(z)\big)\Big),
# \qquad z_i = \mu_\phi(x_i) + \sigma_\phi(x_i)\odot\varepsilon_i,\ \ \varepsilon_i\sim\mathcal N(0, I).$$
#
# A skipped exercise does not stop the notebook. Its check says so, and the rest of the page runs the
# course's reference for that piece.

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

from vaelib import plot
from vaelib.config import TrainConfig, pick_device, seed_everything, smoke
from vaelib.data import binarise, load_mnist
from vaelib.elbo import elbo_terms
from vaelib.evaluate import per_image_terms
from vaelib.evidence import holds
from vaelib.exact import converged_log_px
from vaelib.exercises import (check_elbo_per_image, check_lr_factor, check_train_step, check_vae_forward,
                              check_warmup_loss)
from vaelib.model import VAE
from vaelib.train import History, save_course_model, train

SMOKE = smoke()  # VAELIB_SMOKE=1 (as in `make check`) shrinks every budget
device = pick_device()  # $VAELIB_DEVICE, else the accelerator PyTorch reports (CUDA, MPS), else the CPU
data = load_mnist("auto")

# %% [markdown]
# ## Dynamic binarisation
#
# The Bernoulli likelihood wants black-and-white pixels. Each grey level becomes the probability of a black
# pixel, and every use of a digit draws a fresh binary image. This *dynamic binarisation* is a form of data
# augmentation; appendix notebook 10 measures what it is worth. The test set is binarised once, with a fixed
# seed, so that every epoch is scored on the same images.

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
# The average of many draws is the grey level. With $S = 10{,}000$ draws, no pixel should be off by more than
# $4\sqrt{0.25/S} = 0.02$:

# %%
n_draws = 10_000
mean_of_draws = binarise(digit.expand(n_draws, 784), g).mean(0)
print(f"largest |mean of {n_draws} draws - grey level| = {(mean_of_draws - digit).abs().max():.4f}")
holds((mean_of_draws - digit).abs().max() < 4 * (0.25 / n_draws) ** 0.5,
      "every pixel's mean is within 0.02 of its grey level")

# %% [markdown]
# ## The model
#
# The encoder takes an image through two hidden layers. Two linear *heads* then give $\mu$ and $\log\sigma^2$ of
# $q_\phi(z\mid x)$. The reparametrised draw $z$ goes through the decoder, which returns logits. The sizes are
# those of the course this one grew from (appendix notebook 9): $D = 784$ pixels, hidden widths 256 and 128,
# $L = 2$.
#
# **Your turn.** Write `forward`. It returns the logits, $\mu$ and $\log\sigma^2$ for a batch `x`. Draw
# $\varepsilon$ from the `generator` it is given: a seeded generator then makes every run draw the same noise.

# %% tags=["solution", "training-code"]
class CourseVAE(nn.Module):
    """Encoder D-H1-H2 (ReLU), heads for mu and logvar, decoder L-H2-H1-D returning logits."""

    def __init__(self, D=784, H1=256, H2=128, L=2):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(D, H1), nn.ReLU(), nn.Linear(H1, H2), nn.ReLU())
        self.mu_head = nn.Linear(H2, L)
        self.logvar_head = nn.Linear(H2, L)
        self.decoder = nn.Sequential(nn.Linear(L, H2), nn.ReLU(), nn.Linear(H2, H1), nn.ReLU(), nn.Linear(H1, D))

    def forward(self, x, generator=None):
        """One reparametrised pass. Shapes: x (B, D) -> logits (B, D), mu (B, L), logvar (B, L)."""
        # Hint: the encoder, then the two heads; z = mu + sigma * eps as in notebook 3, with eps from
        # torch.randn(..., generator=generator, device=mu.device); then the decoder, and nothing after it.
        h = self.encoder(x)  # (B, H2)
        mu, logvar = self.mu_head(h), self.logvar_head(h)  # (B, L) each
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)  # (B, L), eps ~ N(0, I)
        z = mu + torch.exp(0.5 * logvar) * eps  # (B, L), a draw of q(z|x)
        return self.decoder(z), mu, logvar  # logits (B, D)


# %% tags=["nbval-check-output", "training-code"]
CourseVAE = check_vae_forward(CourseVAE).use()

# %% [markdown]
# `vaelib.model.VAE` has the same layers under the same names, so it can load this module's weights. With the
# same weights and the same $\varepsilon$, the two must agree on every output:

# %%
seed_everything(0)
page_model = CourseVAE().to(device)
print(page_model)
library_model = VAE().to(device)
library_model.load_state_dict(page_model.state_dict())  # strict: every name and shape must match
x = binarise(data.train_x[:100], g).to(device)  # B = 100 images of D = 784 pixels
same_eps = lambda: torch.Generator(device).manual_seed(1)  # noqa: E731
outputs = zip(page_model(x, same_eps()), library_model(x, same_eps()))
holds(all(torch.allclose(ours, theirs) for ours, theirs in outputs), "logits, mu and logvar equal vaelib.VAE's")

# %% [markdown]
# ## The loss
#
# **Your turn.** Write the ELBO of each image from the model's three outputs, with its two terms. Sum the
# log-likelihood over the $D$ pixels, from the logits as in notebook 1. Sum the KL over the $L$ latent
# dimensions, as in notebook 2. Return one value per image for each of the three.

# %% tags=["solution", "training-code"]
def my_elbo_per_image(logits, x, mu, logvar):
    """ELBO per image and its two terms, in nats.
    Shapes: (B, D), (B, D), (B, L), (B, L) -> elbo, log_px_z, kl, each (B,)."""
    # Hint: log p(x|z) from the logits with softplus, summed over the last axis; the KL in closed form,
    # summed over the last axis; the ELBO is the first minus the second.
    log_px_z = (x * logits - F.softplus(logits)).sum(-1)  # sum over the D pixels
    kl = 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(-1)  # sum over the L latent dims
    return log_px_z - kl, log_px_z, kl


# %% tags=["nbval-check-output", "training-code"]
elbo_per_image = check_elbo_per_image(my_elbo_per_image).use()

# %% [markdown]
# Predict the loss of the untrained model before you run the next cell. Hint: its logits are near 0
# (notebook 1), so what is each pixel's probability? The cell also checks the three terms against
# `vaelib.elbo.elbo_terms`.

# %%
logits, mu, logvar = page_model(x, same_eps())
terms = elbo_per_image(logits, x, mu, logvar)
library = elbo_terms(library_model, x, same_eps())
print(f"loss of the untrained model: {-terms[0].mean().item():.1f} nats per image; 784 log 2 = {784 * math.log(2):.1f}")
holds(all(torch.allclose(ours, theirs) for ours, theirs in zip(terms, library)),
      "elbo, log_px_z and kl equal vaelib.elbo.elbo_terms'")
holds(abs(-terms[0].mean().item() - 784 * math.log(2)) < 10, "the untrained loss is within 10 nats of 784 log 2")

# %% [markdown]
# ### Why from logits
#
# Many VAE scripts end the decoder in a sigmoid and take the binary cross-entropy (BCE) of the probabilities.
# In float32, PyTorch's $\sigma(\ell)$ rounds to exactly 1 from $\ell = 17$, and to 0 only below about $-88$. PyTorch's
# BCE then clamps $\log 0$ at $-100$. For a pixel the decoder gets confidently wrong:

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
# Past the saturation point the probability form reports $-100$ whatever the truth. Its gradient vanishes too:
# $\sigma(\ell)$ has rounded to 1, so $\sigma(\ell)(1-\sigma(\ell)) = 0$. The logits form keeps the gradient
# $x - \sigma(\ell)$:

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
# Many VAE scripts use PyTorch's default `reduction="mean"`, a mean over the $B\times D$ pixels of the batch,
# and add the KL averaged over the batch. That loss is $\frac1D\big(\text{reconstruction} + D\cdot\mathrm{KL}\big)$:
# a VAE whose KL term weighs $\beta = D = 784$ times, scaled by $1/D$. Adam's per-parameter normalisation all but
# removes the scale. The weight stays, and pushes the encoder to copy the prior; notebook 7 measures the cost.

# %%
logits, mu, logvar = page_model(x, same_eps())
_, log_px_z, kl = elbo_per_image(logits, x, mu, logvar)
D = x.shape[1]
mean_reduced = F.binary_cross_entropy_with_logits(logits, x) + kl.mean()  # a common script's loss
beta_vae = -(log_px_z - D * kl).mean() / D  # the beta = D loss, scaled by 1 / D
gradients = zip(torch.autograd.grad(mean_reduced, page_model.parameters(), retain_graph=True),
                torch.autograd.grad(beta_vae, page_model.parameters()))
holds(torch.allclose(mean_reduced, beta_vae) and all(torch.allclose(a, b) for a, b in gradients),
      f"the mean-reduced loss is (reconstruction + {D} KL) / {D}: values and gradients equal")

# %% [markdown]
# ## The training step and the schedule
#
# **Your turn.** Write one training step. Clear the old gradients, compute the loss of the batch, backpropagate
# and update. The loss is minus the batch mean of the ELBO, from `elbo_per_image` with the noise drawn from
# `generator`. Return the loss detached: a tensor that stays on the device, so the loop never waits for it.

# %% tags=["solution", "training-code"]
def my_train_step(model, optimizer, x, generator):
    """One optimiser step on the batch x (B, D); returns the batch's loss, detached. Shape: ()."""
    # Hint: PyTorch's usual order: clear the gradients, compute the loss, backpropagate, step. The loss needs
    # model(x, generator) and elbo_per_image. Detach what you return.
    logits, mu, logvar = model(x, generator)
    loss = -elbo_per_image(logits, x, mu, logvar)[0].mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


# %% tags=["nbval-check-output", "training-code"]
train_step = check_train_step(my_train_step).use()

# %% [markdown]
# The learning rate is held at $10^{-3}$, then falls linearly to 0 over the last quarter of the steps. The decay
# settles the weights into a lower loss at the end (appendix notebook 9 measures it). PyTorch's `LambdaLR`
# multiplies the rate by a factor before each step.
#
# **Your turn.** Write that factor for the step `step` of `total`, counting from 0. The last step,
# `step = total - 1`, should still move the weights.

# %% tags=["solution", "training-code"]
def my_lr_factor(step, total):
    """The learning rate's multiplier before step `step` (0, 1, ..., total - 1): 1, then linear to 0 over the
    last quarter of the steps."""
    # Hint: 1 while more than a quarter of the steps remain; after that, the fraction of the last
    # quarter still to go, this step included.
    return min(1.0, (total - step) / (0.25 * total))


# %% tags=["nbval-check-output", "training-code"]
lr_factor = check_lr_factor(my_lr_factor).use()

# %% [markdown]
# ## The training loop
#
# One epoch visits the training images in a fresh random order, in batches of $B = 100$, each binarised afresh.
# After each epoch the loop scores the test set with a fixed $\varepsilon$. It records the two terms of the test
# loss: the *distortion* $-\mathbb E_q[\log p(x\mid z)]$ and the *rate* $\mathrm{KL}(q(z\mid x)\,\|\,p(z))$.

# %% tags=["training-code"]
@torch.no_grad()
def evaluate_on_page(model, test_x, batch=1000, seed=1234):
    """Mean -ELBO and mean KL over the test images, one eps per image from a fixed seed (vaelib's too)."""
    generator, neg_elbo, kl = torch.Generator(test_x.device).manual_seed(seed), 0.0, 0.0
    for i in range(0, len(test_x), batch):
        x = test_x[i:i + batch]
        logits, mu, logvar = model(x, generator)
        elbo, _, kl_i = elbo_per_image(logits, x, mu, logvar)
        neg_elbo, kl = neg_elbo - elbo.sum().item(), kl + kl_i.sum().item()
    return neg_elbo / len(test_x), kl / len(test_x)

# %% [markdown]
# The loop itself. Adam uses its fused kernel where PyTorch has one, which updates every weight in one pass.
# The losses stay on the device until the end of the epoch.

# %% tags=["training-code"]
NEW_TORCH = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4)
FUSED = True if NEW_TORCH and device.type in ("cpu", "cuda") else None  # None: PyTorch's default Adam


def train_on_page(model, data, epochs, lr=1e-3, B=100, seed=0):
    """Train `model` in place with Adam and the schedule above; print each epoch and return its History."""
    train_x, test_x = data.train_x.to(device), data.test_x.to(device)
    N, generator, history = len(train_x), torch.Generator(device).manual_seed(seed), History()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=FUSED)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, epochs * (N // B)))
    for epoch in range(1, epochs + 1):
        order, losses = torch.randperm(N, generator=generator, device=device), []
        for i in range(N // B):  # full batches only
            x = binarise(train_x[order[i * B:(i + 1) * B]], generator)  # (B, D), drawn afresh
            losses.append(train_step(model, optimizer, x, generator))
            schedule.step()
        test_neg_elbo, test_kl = evaluate_on_page(model, test_x)
        history.record(epoch=epoch, step=epoch * (N // B), train_neg_elbo=torch.stack(losses).mean().item(),
                       test_neg_elbo=test_neg_elbo, test_kl=test_kl)
        print(f"epoch {epoch:2d}: train -ELBO {history.train_neg_elbo[-1]:7.2f} | test -ELBO {test_neg_elbo:7.2f}"
              f" = distortion {test_neg_elbo - test_kl:7.2f} + rate {test_kl:5.2f}")
    return history

# %% [markdown]
# ### The page's loop and `vaelib.train`
#
# `vaelib.train.train` runs the same loop. It draws the same random numbers in the same order, computes the same
# loss and takes the same Adam steps on the same schedule. So from the same weights and seed, one step gives the
# same loss up to float rounding. Over many steps, Adam amplifies rounding. One step of each, then one epoch of
# each, and a third run explained below:

# %%
seed_everything(0)
page = CourseVAE().to(device)
start = {name: w.clone() for name, w in page.state_dict().items()}
library, nudged = VAE().to(device), VAE().to(device)
library.load_state_dict(start)  # the same initial weights
nudged_start = {name: torch.nextafter(w, w + 1) for name, w in start.items()}  # one unit in the last place up
nudged.load_state_dict(nudged_start)
# The first step alone, from the same weights: the loop's first batch and noise, one Adam step.
first_page, first_library = CourseVAE().to(device), VAE().to(device)
first_page.load_state_dict(start)
first_library.load_state_dict(start)
first_generator, train_x = torch.Generator(device).manual_seed(0), data.train_x.to(device)
first_x = binarise(train_x[torch.randperm(len(train_x), generator=first_generator, device=device)[:100]],
                   first_generator)
first_step = {"the page": train_step(first_page, torch.optim.Adam(first_page.parameters(), fused=FUSED), first_x,
                                     first_generator).item(),
              "vaelib.train": train(first_library, data, TrainConfig(steps=1, device=str(device))).train_neg_elbo[0]}
# One epoch in all, so the rate decays over its last quarter: epoch 1 of the 20-epoch run below differs.
runs = {"the page": (page, train_on_page(page, data, epochs=1))}
for name, model in [("vaelib.train", library), ("vaelib.train, nudged", nudged)]:
    runs[name] = (model, train(model, data, TrainConfig(epochs=1, device=str(device))))  # seed 0, the same schedule

# %%
print(f"first step's loss: the page {first_step['the page']:.6f}, vaelib.train {first_step['vaelib.train']:.6f}")
holds(abs(first_step["the page"] - first_step["vaelib.train"]) < 1e-5 * first_step["vaelib.train"],
      "one step from the same weights: the page's loss and vaelib.train's agree to 1 part in 100,000")
print(f"{'after one epoch':21s} {'train -ELBO':>11s} {'test -ELBO':>10s}  largest weight difference from vaelib.train")
for name, (model, h) in runs.items():
    gap = max((p - q).abs().max().item() for p, q in zip(model.parameters(), library.parameters()))
    print(f"{name:21s} {h.train_neg_elbo[-1]:11.4f} {h.test_neg_elbo[-1]:10.4f}  {gap:.1e}")
nudge = max((w - start[name]).abs().max().item() for name, w in nudged_start.items())
print(f"(nudged: every initial weight one unit in the last place up, by at most {nudge:.0e})")
ours, theirs = runs["the page"][1], runs["vaelib.train"][1]
# Adam turns rounding into drift: in the committed run the nudged row drifted 1.5 parts in 1,000, a seventh of this.
holds(all(abs(p[-1] - q[-1]) < 1e-2 * abs(q[-1]) for p, q in [(ours.train_neg_elbo, theirs.train_neg_elbo),
                                                               (ours.test_neg_elbo, theirs.test_neg_elbo)]),
      "after one epoch, the page's losses and vaelib.train's still agree to 1 part in 100")

# %% [markdown]
# The two loops differ in where they do the work, not in what they compute. The library reuses its batch
# buffers and records the KL of every step. It can also stop and resume.
#
# The weights drift apart, though. The page's softplus and the library's `binary_cross_entropy_with_logits`
# round differently in the last bit, and Adam's steps amplify such differences. The third row shows what
# rounding alone does: the library's own run, with every initial weight nudged by one unit in the last place.
#
# ## The course model
#
# The page's loop trains the course model: 20 epochs from seed 0, with your functions. It is the longest cell of
# the notebook, a few minutes on a CPU.

# %%
epochs = 1 if SMOKE else 20
seed_everything(0)
course_page = CourseVAE().to(device)
course_history = train_on_page(course_page, data, epochs)

# %% [markdown]
# Its weights go into a `vaelib.model.VAE`, whose layers have the same names. `save_course_model` stores them
# with the training history; notebooks 5 and 6 read them back with `course_model`.

# %%
course = VAE().to(device)
course.load_state_dict(course_page.state_dict())
run = save_course_model(course.eval(), {"course": course_history}, data_source=data.source)
print(f"saved the course model and its history in runs/{run.name}")

# %% [markdown]
# Its learning curves. The training loss is the mean over an epoch's steps, drawn at the epoch's middle; the
# test loss is measured after it. On the right, the test loss's two terms, each on its own scale.

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
left.legend();

# %% [markdown]
# Most of the test loss is distortion. The rate is small: averaged over images, it bounds from above the
# information the code carries about the image, the mutual information $I(x; z)$ under the encoder (Hoffman &
# Johnson 2016). With so little information per image, the decoder can only draw a typical version of each digit.

# %%
last, rate = h.test_neg_elbo[-1], h.test_kl[-1]
print(f"after epoch {h.epoch[-1]}: test -ELBO {last:.2f} = distortion {last - rate:.2f} + rate {rate:.2f} nats")
holds(last - rate > 10 * rate, "the distortion is more than ten times the rate")

# %% [markdown]
# ## Is one sample of $z$ per image enough?
#
# Yes. For the same work, more images reduce the gradient's variance more than more samples of $z$ do. That
# holds for the encoder's weights and for the decoder's, measured apart below.
#
# Let $g(x, \varepsilon)$ be the gradient of one image's loss with respect to a group of weights. A batch of $B$
# images with $S$ samples each estimates the mean gradient with total variance
#
# $$\frac{1}{B}\Big(\sigma^2_{\text{data}} + \frac{\sigma^2_z}{S}\Big), \qquad
# \sigma^2_{\text{data}} = \mathrm{tr\,Var}_x\big(\mathbb E_\varepsilon\, g\big), \quad
# \sigma^2_z = \mathbb E_x\,\mathrm{tr\,Var}_\varepsilon(g).$$
#
# With $S$ samples an image costs one encoder pass and $S$ decoder passes, of about the same size. So ten samples
# cost $(1 + 10)/2 = 5.5$ times one sample. A batch of 100 images with ten samples each costs as much as 550
# images with one sample each. The 550 images win
# whenever $\sigma^2_z < 10\,\sigma^2_{\text{data}}$. We measure both terms from per-image gradients, for the
# encoder (with its two heads) and for the decoder.

# %%
def gradient_variances(model, x, samples, seed=0):
    """{group: (sigma^2_z, sigma^2_data)} of each image's -ELBO gradient, from `samples` draws of eps per image."""
    groups = {"encoder": [p for n, p in model.named_parameters() if not n.startswith("decoder")],
              "decoder": list(model.decoder.parameters())}
    generator, per_image = torch.Generator(device).manual_seed(seed), {name: ([], []) for name in groups}
    for image in x[:, None]:  # (1, D) at a time
        grads = {name: [] for name in groups}
        for _ in range(samples):
            model.zero_grad()
            logits, mu, logvar = model(image, generator)
            (-elbo_per_image(logits, image, mu, logvar)[0].sum()).backward()
            for name, params in groups.items():
                grads[name].append(torch.cat([p.grad.flatten() for p in params]))
        for name, (noise, means) in per_image.items():
            stacked = torch.stack(grads[name])  # (samples, P)
            noise.append(stacked.var(0).sum())  # tr Var_eps(g) for this image
            means.append(stacked.mean(0))
    # the variance of the images' means still holds 1 / samples of sigma^2_z: take it out
    return {name: (torch.stack(noise).mean().item(),
                   torch.stack(means).var(0).sum().item() - torch.stack(noise).mean().item() / samples)
            for name, (noise, means) in per_image.items()}


subset = torch.randperm(len(data.train_x), generator=g)[:32 if SMOKE else 64]  # seeded, random
variances = gradient_variances(course_page, binarise(data.train_x[subset], g).to(device), samples=8)
same_work = {}  # the variance of the mean gradient at B = 100, S = 10 and at B = 550, S = 1
for name, (sigma2_z, sigma2_data) in variances.items():
    same_work[name] = [(sigma2_data + sigma2_z / S) / B for B, S in [(100, 10), (550, 1)]]
    print(f"{name}: sigma^2_data = {sigma2_data:.3g}, sigma^2_z = {sigma2_z:.3g} (ratio {sigma2_z / sigma2_data:.2f});"
          f" the same work: B = 100, S = 10 gives {same_work[name][0]:.3g}, B = 550, S = 1 {same_work[name][1]:.3g}")
print(f"the encoder's sigma^2_data is {variances['encoder'][1] / variances['decoder'][1]:.0f} times the decoder's")
holds(variances["encoder"][1] > 10 * variances["decoder"][1],
      "the encoder's gradient varies more than ten times as much as the decoder's", full_only=True)
holds(all(many_images < ten_samples / 2 for ten_samples, many_images in same_work.values()),
      "for the encoder and for the decoder, 550 images with one sample each give less than half the variance "
      "of 100 images with ten samples", full_only=True)

# %% [markdown]
# The encoder's gradient varies far more than the decoder's: a trace over all the weights would have measured
# the encoder alone. Extra samples of $z$ shrink only the $\sigma^2_z$ part, extra images both. For both groups
# $\sigma^2_z$ is well below the factor ten that would favour more samples. That is the argument for $S = 1$ and a
# larger batch. Kingma & Welling found one sample enough with batches of 100.
#
# ## Why evaluation still samples $z$
#
# It is tempting to score a test image without noise, decoding the posterior mean: $\log p(x\mid z=\mu) -
# \mathrm{KL}$. That number is not the ELBO, which is an expectation over $q(z\mid x)$. It is not a bound on
# $\log p(x)$ either. We compare it with the ELBO and with the exact $\log p(x)$ on 2,000 random test images. The
# exact value comes by quadrature over the 2-D latent plane, as in notebook 6 (`converged_log_px`, refined image
# by image until the grid resolves each posterior and the estimate settles to 0.01 nats).

# %%
n_eval = 200 if SMOKE else 2000
subset = torch.randperm(len(data.test_x), generator=torch.Generator().manual_seed(0))[:n_eval]  # seeded, random
x_eval = data.test_x[subset].to(device)  # (not the first images: the test file is ordered by writer)
with torch.no_grad():
    mu, logvar = course.encode(x_eval)
    plug_in = elbo_per_image(course.decode(mu), x_eval, mu, logvar)[0]  # log p(x|z=mu) - KL: no sample
elbo = per_image_terms(course, x_eval).elbo
log_px, last_change, _ = converged_log_px(course, x_eval)
above = (plug_in > log_px + last_change).float().mean().item()  # above log p(x) by more than its error
print(f"{n_eval} test images, means in nats: ELBO {elbo.mean():.2f}, log p(x|z=mu) - KL {plug_in.mean():.2f}, "
      f"exact log p(x) {log_px.mean():.2f}")
print(f"the decoded-mean score minus the ELBO: {plug_in.mean() - elbo.mean():+.2f} nats on average; the score "
      f"is above log p(x) itself for {above:.0%} of the images")
holds(plug_in.mean() > elbo.mean() and above > 0.1,
      "the decoded-mean score lies above the ELBO on average, and above log p(x) for more than one image in ten",
      full_only=True)

# %% [markdown]
# The decoded-mean score ignores that the code is uncertain, and it flatters the model: it is no lower bound on
# $\log p(x)$. The ELBO with sampled $z$ is the honest number to report. Importance sampling tightens it
# (notebook 6).
#
# ## What the course model learned
#
# Test digits the model never saw (a seeded random choice), each above the decoder's means at its code,
# $\sigma(\text{logits}(\mu_\phi(x)))$. Then decoder means at codes drawn from the prior, $z\sim\mathcal N(0, I)$.
# With two numbers per image, the reconstructions keep the rough shape but lose the writer's details. Some change
# class: look for a digit whose reconstruction reads as another. The decoder means at prior draws are blurred
# typical digits. Notebook 5 counts how often codes lie among another class's.

# %%
shown = torch.randperm(len(data.test_x), generator=torch.Generator().manual_seed(1))[:16]
plot.plot_reconstructions(course, data.test_x[shown], data.test_y[shown]);

# %%
plot.plot_prior_samples(course, n=64);

# %% [markdown]
# ## Summary
#
# - The VAE is a small `nn.Module`: an encoder with two heads, a reparametrised draw and a decoder that returns
#   logits. Its loss sums the log-likelihood over pixels; a mean over pixels trains a $\beta = 784$ VAE.
# - A training step is four calls; the schedule holds the rate, then decays it over the last quarter.
# - The page's loop trained the course model. Its first step's loss is `vaelib.train`'s, up to rounding.
#   Most of the test loss is distortion: two numbers per image keep a digit's rough shape, not always its class.
# - For the same work, more images reduce the gradient's variance more than more samples of $z$, for encoder and
#   decoder alike. Evaluation must still sample $z$.

# %% [markdown]
# ## Exercises
#
# 1. *KL warm-up* weights the KL term by a $\beta$ rising from 0 to 1 (Bowman et al. 2016 used a sigmoid-shaped
#    rise, Sønderby et al. 2016 a linear one). Ours rises linearly over the first `warmup_steps` optimiser steps,
#    and is 1 from then on. The decoder then learns to use the code before the KL term pulls the code towards
#    the prior. `step` counts the steps taken
#    before this one: $\beta = 0$ at the first step, and $\beta$ first reaches 1 at `step == warmup_steps`.
#    Write the loss of one batch from the per-image terms. The next cell checks it.

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
# With two latent dimensions there is little for warm-up to rescue: notebook 5 finds the codes spread along both.
# Notebook 7, exercise 4, tries a staged warm-up where it can matter, with 50 latent dimensions, over three seeds.
