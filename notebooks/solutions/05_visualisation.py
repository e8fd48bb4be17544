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
# With a two-dimensional latent space we can *see* the model: what it reconstructs, what it
# generates from the prior $p(z)=\mathcal N(0, I)$, how the decoder maps every point of the latent
# plane to an image, and where the encoder puts each test digit.
#
# This notebook loads the model that notebook 4 saved. If you have not run notebook 4, it says so
# and trains a small model here instead (about a minute on a laptop CPU).

# %%
import matplotlib.pyplot as plt
import torch

from vaelib import plot
from vaelib.config import smoke
from vaelib.data import describe, load_mnist
from vaelib.exercises import check_interpolate
from vaelib.train import course_model, evaluate

SMOKE = smoke()
data = load_mnist("auto")

# %%
model, history = course_model(data, fallback_steps=40 if SMOKE else 3000)
print(f"test negative ELBO: {evaluate(model, data.test_x):.2f} nats per image ({describe(data)})")

# %% [markdown]
# ## The training curve
#
# The negative ELBO per image on the training batches (mean over each epoch) and on the whole test
# set after each epoch. The test set is binarised once, so its curve is not blurred by resampling.

# %%
plot.plot_history(history, title=f"Negative ELBO during training ({data.source} data)");

# %% [markdown]
# ## Reconstructions
#
# Top row: test digits $x$. Bottom row: the decoder's pixel probabilities
# $\sigma(\mathrm{logits}(\mu_\phi(x)))$ at the posterior mean. With only two latent numbers per image,
# the reconstructions keep the digit's identity and slant and lose the details.

# %%
plot.plot_reconstructions(model, data.test_x, n=16);

# %% [markdown]
# ## Samples from the prior
#
# The generative model in action: $z\sim\mathcal N(0, I)$, then the pixel probabilities
# $\sigma(\mathrm{logits}(z))$. (Drawing binary pixels from these would add salt-and-pepper noise;
# showing the probabilities is the usual convention.)

# %%
plot.plot_prior_samples(model, n=64, seed=0);

# %% [markdown]
# ## The latent space, decoded
#
# A $20\times 20$ grid of points $z=(z_1, z_2)$ over $[-4, 4]^2$, each decoded. The original notebook
# built its grid with `torch.meshgrid` without `indexing=` and so drew $z_1$ down the rows. Here the
# horizontal axis is $z_1$, increasing to the right, and the vertical axis is $z_2$, increasing
# upwards, as the tick labels say. Let us first check that orientation numerically: the tile in the
# top-left corner must be the decoding of $z=(-4, 4)$.

# %%
grid = plot.plot_latent_grid(model, n=20, half_width=4.0)
with torch.no_grad():
    corner = torch.sigmoid(model.decode(torch.tensor([[-4.0, 4.0]]))).reshape(28, 28)
top_left = torch.as_tensor(grid.axes[0].images[0].get_array()[:28, :28])
print("top-left tile is z = (-4, 4):", torch.allclose(top_left.float(), corner, atol=1e-6))

# %% [markdown]
# Most of the prior's mass lies within $|z_j| < 2$; the outer tiles show what the decoder does where
# it was rarely trained. Digits that look alike (4 and 9, 3, 5 and 8) sit next to each other.
#
# ## Where the encoder puts the test digits
#
# Each test image at its posterior mean $\mu_\phi(x)$, coloured by its label, which the model never
# saw. (The original notebook plotted one random sample $z\sim q(z\mid x)$ per image instead, which
# scatters each point by its posterior standard deviation.)

# %%
plot.plot_embedding(model, data.test_x, data.test_y);

# %% [markdown]
# The classes form clusters although no label was used in training: the ELBO rewards codes that let
# the decoder reconstruct, and digits of one class look alike. Where two clusters overlap, the model
# has merged digits it cannot tell apart in two dimensions. Check how close the embedding is to the
# prior, as the KL term asks: the posterior means should have roughly zero mean and at most unit spread.

# %%
with torch.no_grad():
    mu, logvar = model.encode(data.test_x)
print("mean of mu:", [round(v, 2) for v in mu.mean(0).tolist()], " std of mu:", [round(v, 2) for v in mu.std(0).tolist()])
print("mean posterior std:", [round(v, 3) for v in (0.5 * logvar).exp().mean(0).tolist()])

# %% [markdown]
# ## Summary
#
# - Reconstructions and prior samples show a model that captures digit identity and style with two numbers.
# - The decoded grid is the generative model laid out on the plane: $z_1$ across, $z_2$ up.
# - The embedding uses posterior *means* and shows unsupervised class structure.
#
# ## Exercises
#
# 1. Interpolate: write a function that returns `n` points evenly spaced on the straight line from
#    one code to another, both ends included. The next cell checks it and, when it is right, decodes
#    the line between the posterior means of two test digits of different classes.

# %% tags=["solution"]
def my_interpolate(z_a, z_b, n):
    """n points evenly spaced from z_a to z_b, both included. Shapes: (L,), (L,) -> (n, L)."""
    # Hint: t = torch.linspace(0, 1, n) gives the n fractions, ends included; row i is (1 - t_i) * z_a + t_i * z_b.
    t = torch.linspace(0, 1, n).unsqueeze(1)
    return (1 - t) * z_a + t * z_b


# %%
# NBVAL_CHECK_OUTPUT
interpolation_ok = check_interpolate(my_interpolate)

# %%
if interpolation_ok:  # once the check passes: decode the line between two digits
    a, b = (int((data.test_y == digit).nonzero()[0]) for digit in (1, 8))  # the first 1 and the first 8
    with torch.no_grad():
        line = my_interpolate(mu[a], mu[b], 10)
        decoded = torch.sigmoid(model.decode(line))
    fig, axes = plt.subplots(1, 10, figsize=(10, 1.4))
    for ax, image, point in zip(axes, decoded, line):
        ax.imshow(image.reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"({point[0]:.1f}, {point[1]:.1f})", fontsize=7)
        ax.axis("off")
    fig.suptitle("Decoded codes on the line from a 1 to an 8 (posterior means; z in brackets)", fontsize=9)

# %% [markdown]
# 2. Draw the posterior standard deviations $\sigma_\phi(x)$ as ellipses on the embedding for 30
#    test digits. Which digits is the encoder least sure about?
# 3. Notebook 6 asks how good $q(z\mid x)$ really is. Before you open it, guess: for which digits in
#    the embedding would you expect the true posterior to be far from a Gaussian?
