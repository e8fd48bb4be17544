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
# # 12. The network: what a convolutional encoder and decoder buy
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/solutions/12_the_network.ipynb)
#
# Every VAE so far used multilayer perceptrons. Most tutorials use convolutions instead (TensorFlow's, Keras's,
# UvA's). Here we swap each half of the course's network for a convolutional one and measure what it buys.
# In two dimensions we measure it exactly, with notebook 8's split of the gap. In brief:
#
# 1. **In two dimensions the MLP wins.** Every convolutional half lowers the exact $\log p_\theta(x)$, for
#    every seed.
# 2. **The encoder sets the amortisation gap.** The convolutional encoder has an eighth of the MLP's
#    parameters, and its gap is about 3.5 nats wider. The best Gaussian for each image comes within 0.2 nats of
#    $\log p_\theta(x)$ on average, for every network.
# 3. **In 50 dimensions the convolutional VAE wins at the same passes**, by about 7 nats of
#    $\mathrm{IWAE}_{5000}$ (our estimate of $\log p_\theta(x)$). Given the same training time, the MLP catches
#    up to within half a nat.
#
# You will write the two formulas that fix a convolutional network's shapes.

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
import json

import matplotlib.pyplot as plt
import torch
from torch import nn

from vaelib.config import ModelConfig, pick_device, smoke
from vaelib.data import describe, load_mnist
from vaelib.diagnostics import benchmark_results
from vaelib.evidence import holds
from vaelib.exact import converged_log_px, covering_half_width
from vaelib.exercises import check_conv_side, check_transposed_side
from vaelib.model import build_model
from vaelib.plot import image_grid
from vaelib.study import fit, settled

SMOKE = smoke()
data = load_mnist("auto")
device = pick_device()  # $VAELIB_DEVICE, else the accelerator PyTorch reports (CUDA, MPS), else the CPU
steps = 20 if SMOKE else 6000  # Adam steps of 100 images per model: notebook 8's budget
seeds = (0, 1) if SMOKE else (0, 1, 2)
NETWORKS = {"mlp": "MLP encoder, MLP decoder", "conv-mlp": "conv encoder, MLP decoder",
            "mlp-conv": "MLP encoder, conv decoder", "conv": "conv encoder, conv decoder"}
results = {name: json.loads(benchmark_results(name).read_text()) if benchmark_results(name).exists() else None
           for name in ("network_gaps.json", "conv_50d.json", "bench_conv.json")}
MISSING = ("the committed runs (benchmarks/results) are not in this installation: open this notebook from a clone "
           "of the repository or on Binder to see them")
print(describe(data))

# %% [markdown]
# ## The side of a convolution's output
#
# A convolution slides a $k \times k$ kernel over the image, $s$ pixels at a time. The image is first padded
# with $p$ rows and columns of zeros on every side. Each position where the kernel fits gives one output pixel.
# With $k = 3$, $s = 2$ and $p = 1$, a 28-pixel side becomes 14, then 7. That is the encoder.
#
# The decoder runs the other way, with *transposed* convolutions. Each input pixel paints a $k \times k$ patch
# of the output, with patches $s$ pixels apart. Then $p$ rows and columns are trimmed from every side, and
# `output_padding` adds some back on one side. That is how 7 becomes 14, and 14 becomes 28.
#
# **Exercise 1.** Write both sides as functions. PyTorch's own layers check them.

# %% tags=["solution"]
def conv_side(side, kernel, stride, padding):
    """The side of nn.Conv2d's output for a square input of `side` pixels."""
    # Hint: count the positions of the kernel's first column, from 0 to the last one that still fits.
    return (side + 2 * padding - kernel) // stride + 1


def transposed_side(side, kernel, stride, padding, output_padding):
    """The side of nn.ConvTranspose2d's output for a square input of `side` pixels."""
    # Hint: where does the last input pixel's patch end? Then trim and add back.
    return (side - 1) * stride - 2 * padding + kernel + output_padding


# %%
conv_side = check_conv_side(conv_side).use()
transposed_side = check_transposed_side(transposed_side).use()

# %% [markdown]
# ## The network, written out
#
# Here is the convolutional VAE of `vaelib.conv`, in the shape of the TensorFlow and Keras tutorials. The encoder
# has two convolutions of stride 2, with 32 and 64 channels. Their $64 \times 7 \times 7$ output feeds the same
# two heads as before, $\mu$ and $\log\sigma^2$. The decoder mirrors it: a linear layer to $64 \times 7 \times 7$,
# then two transposed convolutions back to one $28 \times 28$ channel of logits. Your functions fix the sizes:

# %%
C1, C2, KERNEL, STRIDE, PAD = 32, 64, 3, 2, 1
SMALL = conv_side(conv_side(28, KERNEL, STRIDE, PAD), KERNEL, STRIDE, PAD)  # 7
sides = [28, conv_side(28, KERNEL, STRIDE, PAD), SMALL, transposed_side(SMALL, KERNEL, STRIDE, PAD, 1)]
sides.append(transposed_side(sides[-1], KERNEL, STRIDE, PAD, 1))
print("sides of the feature maps, encoder then decoder: " + " -> ".join(map(str, sides)))


class ConvVAE(nn.Module):
    """The convolutional VAE: x (B, 784) -> mu, logvar (B, L); z (..., L) -> logits (..., 784)."""

    def __init__(self, z_dim=2):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, C1, KERNEL, STRIDE, PAD), nn.ReLU(),
            nn.Conv2d(C1, C2, KERNEL, STRIDE, PAD), nn.ReLU(), nn.Flatten())  # (B, C2 * 7 * 7)
        self.mu_head = nn.Linear(C2 * SMALL * SMALL, z_dim)
        self.logvar_head = nn.Linear(C2 * SMALL * SMALL, z_dim)
        self.decoder = nn.Sequential(
            nn.Linear(z_dim, C2 * SMALL * SMALL), nn.ReLU(), nn.Unflatten(1, (C2, SMALL, SMALL)),
            nn.ConvTranspose2d(C2, C1, KERNEL, STRIDE, PAD, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(C1, 1, KERNEL, STRIDE, PAD, output_padding=1))  # (N, 1, 28, 28)

    def encode(self, x):
        h = self.encoder(x)
        return self.mu_head(h), self.logvar_head(h)

    def decode(self, z):
        return self.decoder(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], 784)


# %% [markdown]
# The page's network and the library's are the same function. Give them the same weights and compare:

# %%
torch.manual_seed(0)
library_vae = build_model(ModelConfig(arch="conv", z_dim=2))
page_vae = ConvVAE(z_dim=2)
page_vae.load_state_dict(dict(zip(page_vae.state_dict(), library_vae.state_dict().values())))  # same order
x_check = data.test_x[torch.randperm(len(data.test_x), generator=torch.Generator().manual_seed(0))[:8]]
z_check = torch.randn(3, 8, 2)  # three draws of z for each of the eight images
with torch.no_grad():
    same_function = all(torch.allclose(a, b, atol=1e-5)
                        for a, b in zip(page_vae.encode(x_check), library_vae.encode(x_check)))
    same_function = same_function and torch.allclose(page_vae.decode(z_check), library_vae.decode(z_check), atol=1e-5)
n_params = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
mlp_vae = build_model(ModelConfig(z_dim=2))
print("parameters, encoder and heads / decoder: "
      f"MLP {n_params(mlp_vae) - n_params(mlp_vae.decoder):,} / {n_params(mlp_vae.decoder):,}; "
      f"conv {n_params(library_vae) - n_params(library_vae.decoder):,} / {n_params(library_vae.decoder):,}")
holds(same_function and n_params(page_vae) == n_params(library_vae),
      "the page's convolutional VAE is the library's, weight for weight")

# %% [markdown]
# The convolutional network has about an eighth of the MLP's parameters. It does more arithmetic, though. Every
# weight of a convolution is used at each of its positions. `benchmarks/bench_conv.py` times a training step of
# each network side by side:

# %%
speed = results["bench_conv.json"]
if speed:
    for threads, run in speed["threads"].items():
        ratios = run["over the mlp (median of paired blocks)"]
        decoding = run["grid points decoded per second (z of size 2)"]["conv / mlp"]
        print(f"{threads} thread(s), images/s over the MLP's: " + ", ".join(
            f"{name} {ratios[name]:.2f}" for name in ratios if not name.startswith("mlp z"))
            + f"; grid points decoded per second, conv over MLP: {decoding:.3f}")
else:
    print(MISSING)

# %% [markdown]
# **On this machine a convolutional step costs four to six MLP steps.** Decoding costs more still: for the exact integral,
# one grid point through the convolutional decoder costs about 30 through the MLP's. That is why this
# notebook loads its exact numbers from `benchmarks/` instead of computing them here.

# %%
if speed:
    ratios = {threads: run["over the mlp (median of paired blocks)"] for threads, run in speed["threads"].items()}
    decoding = {threads: run["grid points decoded per second (z of size 2)"]["conv / mlp"]
                for threads, run in speed["threads"].items()}
    holds(all(1 / 6.5 < r[f"conv z={L}"] < 1 / 3.5 for r in ratios.values() for L in (2, 50)),
          "a convolutional VAE's step costs between 3.5 and 6.5 MLP steps, at one and two threads, z of size 2 and 50")
    holds(all(1 / 35 < d < 1 / 25 for d in decoding.values()), "a grid point costs 25 to 35 times the MLP's to decode")
else:
    print(MISSING)

# %% [markdown]
# ## In two dimensions, exactly
#
# Four networks, each trained from three seeds with notebook 8's budget: 6,000 steps of 100 images. The MLP
# models are notebook 7's; the others come committed with the course. Loading them takes seconds:

# %%
models = {arch: [fit(data, ModelConfig(z_dim=2, arch=arch), steps, seed=seed, device=device)[0] for seed in seeds]
          for arch in NETWORKS}

# %% [markdown]
# For each model we need the exact $\log p_\theta(x)$, and notebook 8's split of the gap on 50 images. The
# quadrature decodes tens of thousands of grid points per image. A convolutional decoder makes that slow:
# about 30 times the MLP's cost per point. So `benchmarks/network_gaps.py` computed it once, on 500 random test
# images, the same for every model. Here we recompute a few of those numbers from the models just loaded:

# %%
gaps = results["network_gaps.json"]
if gaps and not SMOKE:
    pick = torch.randperm(len(data.test_x), generator=torch.Generator().manual_seed(0))[:500]
    model, ten = models["conv"][0], data.test_x[pick[:10]].to(device)
    exact, _, _ = converged_log_px(model, ten, half_width=covering_half_width(model, ten, margin=6.0))
    committed = torch.tensor(gaps["runs"]["conv-0"]["scores"]["exact"][:10])
    print(f"conv, seed 0, ten images: exact log p(x) now {exact.mean():.3f}, committed {committed.mean():.3f}")
    holds((exact.cpu() - committed).abs().max() < 0.05,
          "the committed exact log p(x) is these models' own, to 0.05 nats on each of ten images")
else:
    print(MISSING if not gaps else "the smoke setting's models are not the committed ones: nothing to recompute")

# %% [markdown]
# Now the whole table. Each entry is a mean over the images, then mean ± sd over the three seeds. The first
# three columns are over the 500 images. The last three split the gap on 50 of them, which are easier than
# average: every model's gap is smaller there. Per-image gaps have heavy tails, too. One image's amortisation gap
# is 88 nats, so 50 images give noisy means. (Notebook 8's 50 images are others; its MLP gap was 1.68 nats.) The
# conclusions below rest on the gap over all 500 images.

# %% tags=["nbval-check-output"]
def per_image(arch, seed, key):
    """One score of one model, per image: the 500 images' scores, or the 50 images' split of the gap."""
    run = gaps["runs"][f"{arch}-{seed}"]
    if key == "gap":  # log p(x) - ELBO, the inference gap, on all 500 images
        return torch.tensor(run["scores"]["exact"]) - torch.tensor(run["scores"]["elbo"])
    return torch.tensor(run["scores"][key] if key in run["scores"] else run["gaps"][key])


COLUMNS = {"-log p(x)": ("exact", -1), "-ELBO": ("elbo", -1), "gap (500)": ("gap", 1),
           "gap (50)": ("inference", 1), "approximation": ("approximation", 1), "amortisation": ("amortisation", 1)}
if gaps:
    print(f"{'nats per image':27s}" + "".join(f"{c:>16s}" for c in COLUMNS))
    for arch, label in NETWORKS.items():
        cells = [sign * torch.tensor([per_image(arch, s, key).mean().item() for s in (0, 1, 2)])
                 for key, sign in COLUMNS.values()]
        print(f"{label:27s}" + "".join(f"{v.mean():9.2f} ± {v.std():4.2f}" for v in cells))
else:
    print(MISSING)

# %% [markdown]
# Now swap one half at a time, seed by seed on the same images. A difference counts when notebook 7's rule,
# `settled`, finds it beyond both the seeds' noise and the images':

# %%
SWAPS = {"encoder to conv, MLP decoder": ("mlp", "conv-mlp"), "encoder to conv, conv decoder": ("mlp-conv", "conv"),
         "decoder to conv, MLP encoder": ("mlp", "mlp-conv"), "decoder to conv, conv encoder": ("conv-mlp", "conv")}
if gaps:
    direction = {}
    for swap, (before, after) in SWAPS.items():
        for key in ("exact", "gap"):
            diffs = [per_image(after, s, key) - per_image(before, s, key) for s in (0, 1, 2)]
            d, se = torch.stack([one.mean() for one in diffs]), max(one.std().item() / len(one) ** 0.5 for one in diffs)
            direction[swap, key] = settled(d, se)
            print(f"{swap:30s} {'log p(x)' if key == 'exact' else 'log p(x) - ELBO':16s} by seed "
                  f"{', '.join(f'{v:+.2f}' for v in d)} (image se {se:.2f}): "
                  f"{['down', 'no direction', 'up'][direction[swap, key] + 1]}")
else:
    print(MISSING)

# %% [markdown]
# **In two dimensions the MLP is the better network.** Each convolutional half lowers the exact
# $\log p_\theta(x)$, for every seed. The encoder costs 4 to 9 nats, the decoder 2 to 8, and both together
# about 11.
#
# **The Gaussian fits every network's posterior.** The best Gaussian for each image comes within 0.2 nats of
# $\log p_\theta(x)$ on average, for every network and seed. So almost all of each gap is amortisation.
# Cremer et al. found that the decoder shapes its posterior to suit $q$. A small approximation gap is what that
# shaping would give, and also what a posterior that is Gaussian anyway would give. These runs cannot tell the
# two apart.
#
# **The encoder sets the amortisation gap.** The convolutional encoder has an eighth of the MLP's
# parameters. Its gap over the 500 images is wider by 2.7 to 4.4 nats, with either decoder, for every seed.
# That is Cremer et al.'s finding from the other side: a weaker encoder, a wider amortisation gap. The
# decoder's effect on the gap is smaller. With the convolutional encoder all three seeds narrow it a little,
# but by less than three image standard errors, so `settled` finds no direction.

# %%
if gaps:
    approximation = max(per_image(a, s, "approximation").mean().item() for a in NETWORKS for s in (0, 1, 2))
    holds(all(direction[swap, "exact"] == -1 for swap in SWAPS),
          "every swap to a convolutional half lowers the exact log p(x), beyond both kinds of noise")
    holds(approximation < 0.2, "the mean approximation gap over the 50 images is below 0.2 nats, every network and seed")
    holds(direction["encoder to conv, MLP decoder", "gap"] == direction["encoder to conv, conv decoder", "gap"] == 1,
          "the convolutional encoder widens the gap, with either decoder")
    holds(direction["decoder to conv, MLP encoder", "gap"] == direction["decoder to conv, conv encoder", "gap"] == 0,
          "the decoder's effect on the gap is not settled, with either encoder")
else:
    print(MISSING)

# %% [markdown]
# ## What the models draw
#
# Figure 1 shows each network's decoder over the latent plane, and digits decoded from draws of the prior, for seed
# 0. Both panels show pixel probabilities, $\mathrm{sigmoid}$ of the logits.

# %%
@torch.no_grad()
def latent_picture(model, n=15, half_width=3.0):
    """Decoder means over an n x n grid of z in [-hw, hw]^2, z2 growing upwards, as one (n * 28, n * 28) image."""
    axis = torch.linspace(-half_width, half_width, n)
    codes = torch.cartesian_prod(axis.flip(0), axis)[:, [1, 0]].to(device)  # rows from the top: z2 falls, z1 rises
    return image_grid(torch.sigmoid(model.decode(codes)), rows=n)


fig, axes = plt.subplots(2, 4, figsize=(14, 7.4), layout="constrained")
generator = torch.Generator().manual_seed(0)
prior_z = torch.randn(36, 2, generator=generator).to(device)  # the same draws for every network
for col, (arch, label) in enumerate(NETWORKS.items()):
    model = models[arch][0]
    axes[0, col].imshow(latent_picture(model), cmap="gray_r", vmin=0, vmax=1, extent=(-3.2, 3.2, -3.2, 3.2))
    axes[0, col].set(title=label, xlabel="$z_1$", ylabel="$z_2$" if col == 0 else None)
    with torch.no_grad():
        axes[1, col].imshow(image_grid(torch.sigmoid(model.decode(prior_z)), rows=6), cmap="gray_r", vmin=0, vmax=1)
    axes[1, col].set_title("the same 36 draws of p(z)", fontsize=10)
    axes[1, col].axis("off")
fig.suptitle("Figure 1. Decoder means over the latent plane (top) and at the same 36 draws of N(0, I) (bottom), "
             "seed 0");

# %% [markdown]
# **The convolutional decoders' digits are speckled.** Their last layer is a transposed convolution of stride 2.
# It paints each output pixel from 1, 2 or 4 kernel taps, alternating like a checkerboard. Odena et al. (2016)
# named these "checkerboard artifacts". The tutorials end with one more layer, of stride 1 (exercise 1). To
# measure the speckle, filter each image with the $2 \times 2$ checkerboard
# $\tfrac14\begin{pmatrix}1 & -1\\ -1 & 1\end{pmatrix}$ and take the mean square, at 500 draws of $p(z)$.
# Every model with a convolutional decoder has more of it than every model with the MLP's, by a small margin;
# sharp edges raise this measure too.

# %%
def checkerboard(probabilities):
    """Mean square of each image filtered by the 2 x 2 checkerboard [[1, -1], [-1, 1]] / 4. (N, 784) -> float."""
    kernel = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], device=probabilities.device).reshape(1, 1, 2, 2) / 4
    return (nn.functional.conv2d(probabilities.reshape(-1, 1, 28, 28), kernel) ** 2).mean().item()


draws = torch.randn(500, 2, generator=torch.Generator().manual_seed(1)).to(device)
with torch.no_grad():
    speckle = {arch: [checkerboard(torch.sigmoid(m.decode(draws))) for m in models[arch]] for arch in NETWORKS}
for arch, label in NETWORKS.items():
    print(f"{label:27s} checkerboard energy x 1e4, by seed: {', '.join(f'{1e4 * v:.2f}' for v in speckle[arch])}")
holds(min(speckle["mlp-conv"] + speckle["conv"]) > max(speckle["mlp"] + speckle["conv-mlp"]),
      "every model with a convolutional decoder has more checkerboard energy than every model with the MLP's",
      full_only=True)

# %% [markdown]
# ## In 50 dimensions
#
# With 50 latent dimensions the posterior has room to spread, and the exact integral is out of reach. So we
# score by $\mathrm{IWAE}_{5000}$ instead (notebook 6). `benchmarks/conv_50d.py` trained three settings, each
# from three seeds: the MLP and the convolutional VAE for 6,000 steps each, the same passes over the data; and
# the MLP for 30,000 steps, about the time the convolutional VAE takes for 6,000. Each model is scored on the
# same 300 random test images. All 10,000 would take this machine over two hours per convolutional model. The
# last column is each run's training time; the 6,000-step MLPs are notebook 7's, trained on another day.

# %% tags=["nbval-check-output"]
fifty = results["conv_50d.json"]
SETTINGS = {"mlp": "MLP, 6,000 steps", "conv": "conv, 6,000 steps", "mlp-time": "MLP, 30,000 steps (same time)"}
if fifty:
    iwae = {name: [torch.tensor(fifty["runs"][f"{name}-{s}"]["iwae_5000"]) for s in (0, 1, 2)] for name in SETTINGS}
    print(f"{'z of size 50, nats':32s} {'-IWAE_5000 (300 images)':>26s} {'-ELBO (all 10,000)':>20s} "
          f"{'training, one thread':>22s}")
    for name, label in SETTINGS.items():
        nll = torch.tensor([-v.mean().item() for v in iwae[name]])
        runs = [fifty["runs"][f"{name}-{s}"] for s in (0, 1, 2)]
        elbo = torch.tensor([-run["elbo_all_test_mean"] for run in runs])
        seconds = ", ".join(f"{run['train_seconds']:.0f}" for run in runs)
        print(f"{label:32s} {nll.mean():17.2f} ± {nll.std():4.2f} {elbo.mean():13.2f} ± {elbo.std():4.2f} "
              f"{seconds:>20s} s")
    gains = {}
    for better, worse in (("conv", "mlp"), ("mlp-time", "mlp"), ("conv", "mlp-time")):
        diffs = [a - b for a, b in zip(iwae[better], iwae[worse])]
        d, se = torch.stack([one.mean() for one in diffs]), max(one.std().item() / len(one) ** 0.5 for one in diffs)
        gains[better, worse] = (d, settled(d, se))
        print(f"{SETTINGS[better]} minus {SETTINGS[worse]}, IWAE_5000 by seed: {', '.join(f'{v:+.2f}' for v in d)} "
              f"(image se {se:.2f}): {['lower', 'no direction', 'higher'][gains[better, worse][1] + 1]}")
else:
    print(MISSING)

# %% [markdown]
# **In 50 dimensions the convolutional VAE wins at the same passes.** At 6,000 steps it beats the MLP by 6.4 to 7.3
# nats of $\log p_\theta(x)$, for every seed.
#
# **Given the same training time, the MLP catches up.** Five times the steps raise it by 6.1 to 6.8 nats. That
# leaves it under half a nat behind, for every seed, and 300 images cannot settle so small a lead.
#
# **The ELBO separates them, the other way.** At the same time the MLP's ELBO on all 10,000 test images is higher by
# about 2 nats, for every seed. A course that compared networks by their ELBO would pick the MLP.

# %%
if fifty:
    elbo_all = {name: torch.tensor([fifty["runs"][f"{name}-{s}"]["elbo_all_test_mean"] for s in (0, 1, 2)])
                for name in SETTINGS}
    holds(gains["conv", "mlp"][1] == 1 and gains["conv", "mlp"][0].min() > 5,
          "at the same passes the convolutional VAE's IWAE_5000 is higher, by more than 5 nats for every seed")
    holds(gains["mlp-time", "mlp"][1] == 1, "five times the steps raise the MLP's IWAE_5000, for every seed")
    lead = gains["conv", "mlp-time"][0]
    holds(gains["conv", "mlp-time"][1] == 0 and 0 < lead.min() and lead.max() < 0.5,
          "at the same time the convolutional VAE leads by under half a nat for every seed, not settled")
    holds((elbo_all["mlp-time"] > elbo_all["conv"]).all(),
          "at the same training time the MLP's ELBO on all 10,000 test images is the higher, for every seed")
else:
    print(MISSING)

# %% [markdown]
# **Beside the literature.** Kingma et al. (2016, Table 1) trained a far larger convolutional VAE on dynamically
# binarised MNIST: ResNet blocks, $z$ of size 32, many more passes. With a diagonal Gaussian posterior it
# reached an ELBO of $-84.08$ and $\log p(x) \approx -81.08$, by importance sampling with 128 draws. Ours,
# after ten passes, is about 10 nats behind. Their network, their budget and their estimate all differ from
# ours, so that distance is a size, not a measured cause.

# %% [markdown]
# ## Summary
#
# - Two formulas, the sides of a convolution's output and of a transposed convolution's, fix every shape of a
#   convolutional VAE. The heads, the loss and the training are the MLP's.
# - In two dimensions, at this budget, every convolutional half lowered the exact $\log p_\theta(x)$.
# - The best Gaussian comes within 0.2 nats of $\log p_\theta(x)$ on average. What is left is amortisation, and the weaker
#   convolutional encoder leaves about 3.5 nats more of it.
# - A transposed convolution of stride 2 at the end of the decoder leaves a checkerboard in the digits.
# - In 50 dimensions the convolutional VAE has the higher $\log p_\theta(x)$ at equal passes. At equal time the
#   MLP comes within half a nat, and its ELBO is the higher.

# %% [markdown]
# ## Exercises
#
# 1. Our decoder's last layer, `nn.ConvTranspose2d(C1, 1, 3, 2, 1, output_padding=1)`, goes straight to the
#    logits. The tutorials' keeps $C_1$ channels, and a third layer, `nn.ConvTranspose2d(C1, 1, 3, 1, 1)`, makes
#    the logits. Use your two functions: what side does the third layer give? How many parameters does the change
#    add? Why should it lower the checkerboard energy?

# %% [markdown] tags=["answer"]
# A stride-1 transposed convolution with $k = 3$, $p = 1$ keeps the side: $(28 - 1) \cdot 1 - 2 + 3 + 0 = 28$.
# The second layer now makes $C_1$ channels, not 1, and the third maps them to 1: together they add
# $C_1^2 \cdot 9 + C_1 = 9{,}248$ parameters (the code counts them). Each pixel of the third layer sums a
# $3 \times 3$ window of the map below it. Every window holds pixels of all four checkerboard classes, so the
# 1, 2, 4 pattern of the stride-2 layer is averaged out, to the extent the layer learns to.

# %% tags=["answer"]
old_tail = nn.ConvTranspose2d(C1, 1, 3, 2, 1, output_padding=1)
new_tail = (nn.ConvTranspose2d(C1, C1, 3, 2, 1, output_padding=1), nn.ReLU(), nn.ConvTranspose2d(C1, 1, 3, 1, 1))
print(f"side of the third layer: {transposed_side(28, 3, 1, 1, 0)}; parameters added: "
      f"{sum(n_params(m) for m in new_tail) - n_params(old_tail):,}")

# %% [markdown]
# 2. The split of the gap used 50 images, and per-image amortisation gaps have heavy tails. From the committed
#    per-image gaps, about how many images would the split need for `settled` to find the direction of the
#    convolutional encoder's extra amortisation gap (MLP decoder) with three seeds?

# %% tags=["answer"]
if gaps:
    diffs = [per_image("conv-mlp", s, "amortisation") - per_image("mlp", s, "amortisation") for s in (0, 1, 2)]
    means = torch.stack([one.mean() for one in diffs])
    sd = max(one.std().item() for one in diffs)  # the image standard error is sd / sqrt(n)
    needed = (3 * sd / means.min().item()) ** 2  # every seed's difference beyond 3 image standard errors
    print(f"differences by seed {', '.join(f'{v:+.2f}' for v in means)}; largest per-image sd {sd:.1f} nats: "
          f"about {needed:,.0f} images, if the means held")
