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
# # 9. Appendix: plain gradient descent against Adam
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/09_appendix_optimisers.ipynb)
#
# Notebook 4 trained the course model with Adam. The original course this package grew from updated
# the weights by hand with plain gradient descent, `param -= lr * param.grad`, at `lr = 5e-3` for 20
# epochs, and reported a test loss of 151.33 nats. This appendix asks four questions of that choice:
#
# 1. Is the hand-written update the same as `torch.optim.SGD`? (Yes, checked on one step.)
# 2. How far apart do plain gradient descent and Adam end on the same budget, and why?
# 3. What does the course's schedule, Adam's learning rate decayed to 0 over the last quarter, add?
# 4. How does the original course's own code, run again, compare with this package's SGD runs?
#
# Every model here trains for 20 epochs with `vaelib.train`, which notebook 4 checked against the loop
# written on its page, from three seeds each. They were trained once and are loaded
# (`vaelib.runs.trained`, as in notebook 7): training all nine again takes about an hour on two CPU
# cores (their histories record 54 minutes of training steps).

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
import math
from dataclasses import asdict

import matplotlib.pyplot as plt
import torch

from vaelib.config import TrainConfig, pick_device, seed_everything, smoke
from vaelib.data import binarise, describe, load_mnist
from vaelib.diagnostics import benchmark_results
from vaelib.elbo import elbo_terms
from vaelib.model import VAE
from vaelib.runs import trained
from vaelib.train import TrainingDiverged, train
from vaelib.train import settings as train_settings

SMOKE = smoke()
device = pick_device()  # $VAELIB_DEVICE, else the accelerator PyTorch reports (CUDA, MPS), else the CPU
data = load_mnist("auto")

# %% [markdown]
# ## The hand-written update is `torch.optim.SGD`
#
# From the same weights and the same batch (with the same $\varepsilon$), one step by hand and one
# step of `torch.optim.SGD(lr=5e-3)` without momentum must give the same weights:

# %% tags=["nbval-check-output"]
g = torch.Generator().manual_seed(0)
x = binarise(data.train_x[torch.randperm(len(data.train_x), generator=g)[:100]], g).to(device)  # (B, D)
seed_everything(0)
by_hand, by_sgd = VAE().to(device), VAE().to(device)
by_sgd.load_state_dict(by_hand.state_dict())
for model in (by_hand, by_sgd):
    (-elbo_terms(model, x, torch.Generator(device).manual_seed(1)).elbo.mean()).backward()
with torch.no_grad():  # the update must not itself be differentiated
    for param in by_hand.parameters():
        param -= 5e-3 * param.grad
torch.optim.SGD(by_sgd.parameters(), lr=5e-3).step()
for p, q in zip(by_hand.parameters(), by_sgd.parameters()):
    torch.testing.assert_close(p, q)
print("hand-written update == torch.optim.SGD(lr=5e-3): True")

# %% [markdown]
# ## Plain gradient descent against Adam, on the same budget
#
# Both optimisers start from the same weights and see the same batches in the same order for 20
# epochs, the original's budget. SGD uses the original learning rate $5\cdot 10^{-3}$, Adam its usual
# $10^{-3}$; both keep it constant, as the original did. (The course model of notebook 4 also decays
# Adam's rate over the last quarter; that is a separate choice, left out here so that the optimiser is
# the only difference.) Each is trained from three seeds (the initial weights and the batches), so that
# the gap between the optimisers can be set beside the gap between two runs of the same one. The
# models were trained once and are loaded.

# %%
epochs = 1 if SMOKE else 20
seeds = (0, 1, 2)


def fit(optimizer, lr, seed, lr_schedule="constant"):
    cfg = TrainConfig(epochs=epochs, optimizer=optimizer, lr=lr, lr_schedule=lr_schedule, seed=seed,
                      device=str(device))

    def train_now():
        seed_everything(cfg.seed)
        model = VAE(cfg.model).to(device)
        return model, train(model, data, cfg)

    settings = {**train_settings(asdict(cfg)), "data": data.source}
    label = (f"{optimizer}, lr {lr:g}, {epochs} epochs" + (", decayed" if lr_schedule == "decay" else "")
             + (f", seed {seed}" if seed else ""))
    return trained(settings, train_now, label).history


print(f"{describe(data)}; {epochs} epoch(s) of {len(data.train_x) // 100} steps per optimiser and seed")
runs = {"SGD": [fit("sgd", 5e-3, seed) for seed in seeds], "Adam": [fit("adam", 1e-3, seed) for seed in seeds]}
histories = {name: h[0] for name, h in runs.items()}  # seed 0, drawn below
runs["Adam, decayed"] = [fit("adam", 1e-3, seed, "decay") for seed in seeds]  # the course's schedule, below

# %%
fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
for name, h in histories.items():
    line, = left.plot(h.epoch, h.test_neg_elbo, "s-", label=name)
    middle.plot(h.epoch, [e - k for e, k in zip(h.test_neg_elbo, h.test_kl)], "s-", color=line.get_color(), label=name)
    right.plot(h.epoch, h.test_kl, "s-", color=line.get_color(), label=name)
left.set(xlabel="epoch", ylabel="nats per image", title="Test -ELBO")
middle.set(xlabel="epoch", ylabel="nats per image", title="Test distortion")
right.set(xlabel="epoch", ylabel="nats per image", title="Test rate (KL)")
for ax in (left, middle, right):
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.legend()
    ax.grid(alpha=0.3)
fig.suptitle("Seed 0 of each optimiser, scored after every epoch");

# %%
final = {name: torch.tensor([h.test_neg_elbo[-1] for h in hs]) for name, hs in runs.items()}
for name, values in final.items():
    print(f"{name:13s} after {epochs} epoch(s): test -ELBO {', '.join(f'{v:.2f}' for v in values)} nats "
          f"(seeds {seeds}); mean {values.mean():.2f}, spread between seeds {values.max() - values.min():.2f}")
gaps = final["SGD"] - final["Adam"]  # seed by seed
print(f"SGD minus Adam, seed by seed: {', '.join(f'{g:.2f}' for g in gaps)} nats")
if not SMOKE:
    spread = max((final[name].max() - final[name].min()).item() for name in ("SGD", "Adam"))
    assert gaps.min() > 3 and gaps.min() > 3 * spread  # Adam ends lower for every seed, by far more than seeds move

# %% [markdown]
# On the full budget Adam ends several nats lower than plain gradient descent at the original's step
# size, for every seed, and by more than three times the spread between seeds of either optimiser
# (asserted): a claim about these settings, not about tuned SGD, whose step size exercise 1 varies. Why? One global step size must suit every weight, but the
# gradients of the layers differ in size. Measured on one batch, at the start of training, as the
# root mean square of each weight matrix's gradient:

# %%
seed_everything(0)
fresh = VAE().to(device)
(-elbo_terms(fresh, x, torch.Generator(device).manual_seed(1)).elbo.mean()).backward()
rms = {name: p.grad.pow(2).mean().sqrt().item() for name, p in fresh.named_parameters() if name.endswith("weight")}
for name, value in rms.items():
    print(f"{name:18s} gradient RMS {value:.2e}")
largest, smallest = max(rms, key=rms.get), min(rms, key=rms.get)
print(f"the largest ({largest}) is {rms[largest] / rms[smallest]:,.0f} times the smallest ({smallest})")
assert rms[largest] / rms[smallest] > 10

# %% [markdown]
# With plain gradient descent every weight moves by `lr` times its gradient, so a step size small
# enough for the layer with the largest gradients barely moves the one with the smallest (more than
# ten times smaller, asserted). Adam divides each parameter's step by a running estimate of its own
# gradient's size, so every layer's weights take steps of a similar size. That is the explanation the
# measurement suggests, not one this notebook tests: the sizes are measured at the start and change
# during training, and SGD's step size is the original's, not tuned. Exercise 1 shows how much SGD's
# one-epoch loss depends on it, so part of the gap may be the step size.
#
# ## Decaying the learning rate
#
# Notebook 4's course model used Adam with the learning rate held at $10^{-3}$ and then decayed linearly
# to 0 over the last quarter of the steps (`python -m vaelib train`'s default). Against Adam held at
# $10^{-3}$ throughout, on the same seeds:

# %%
decay_gain = final["Adam"] - final["Adam, decayed"]  # seed by seed: how much lower the decayed run ends
print(f"Adam held minus Adam decayed, seed by seed: {', '.join(f'{g:+.2f}' for g in decay_gain)} nats of test -ELBO")
if not SMOKE:  # a gain for every seed, and far beyond the spread of the gains
    assert decay_gain.min() > 1 and decay_gain.mean() > 3 * decay_gain.std() / math.sqrt(len(seeds))

# %% [markdown]
# Decaying the rate over the last quarter lowers the test $-$ELBO by more than a nat for every seed,
# about one and a half to two (asserted). The two runs of a seed start from the same weights and see the
# same batches, so the difference is the schedule's alone; the gain is about as large as the spread
# between seeds of either schedule, so without that pairing three seeds would barely show it.
#
# ## The original course's code, run again
#
# The original's decoder ended in a sigmoid, and its test batches were binarised afresh at each
# evaluation. `benchmarks/original_notebook.py` runs its code as written on full MNIST and also scores
# the resulting model as this course does:

# %%
REPORTED = 151.33  # the original course's test loss after 20 epochs, as it printed it
original_run = benchmark_results("original_notebook.json")  # committed with its command
if data.source == "mnist" and epochs == 20 and original_run.exists():
    original = json.loads(original_run.read_text())
    print(f"the original's code, run again: its own test loss {original['final_test_loss']:.2f} "
          f"(its reported run: {REPORTED:.2f}, other random draws); the course's test -ELBO of its model "
          f"{original['vaelib_test_neg_elbo']:.2f} nats; this notebook's SGD runs: {final['SGD'].mean():.2f} (mean of {len(seeds)} seeds)")
    assert abs(final["SGD"].mean() - original["vaelib_test_neg_elbo"]) < 2  # the same optimiser and budget: close
else:
    print(f"not comparable: this run used {describe(data)} for {epochs} epoch(s), the original full MNIST for 20")

# %% [markdown]
# Scored the same way, the original's model and the mean of this notebook's SGD runs are within 2
# nats of each other (asserted): the same optimiser on the same budget gives the same quality, whichever code
# runs it. What the course model gains over the original comes from the optimiser settings (and
# notebook 4's learning-rate schedule), not from the rewriting.

# %% [markdown]
# ## Summary
#
# - The original's hand-written update is `torch.optim.SGD` without momentum.
# - On the original's budget, Adam ends several nats below plain gradient descent at the original's
#   step size, for each of three seeds. The layers' gradients differ in size by more than a factor of
#   ten, and Adam scales each parameter's step by its own gradient's size.
# - Decaying Adam's learning rate over the last quarter lowers the test $-$ELBO by more than a nat for
#   each seed, seen because each seed's two runs share weights and batches.
# - The original course's code, run again and scored as this course scores, lands within 2 nats of
#   this package's SGD runs.

# %% [markdown]
# ## Exercises
#
# 1. Train with plain SGD for one epoch at learning rates $10^{-3}$, $5\cdot10^{-3}$, $2\cdot10^{-2}$
#    and $10^{-1}$. Which is best after one epoch, and what happens at the largest?

# %% [markdown]
# 2. Add momentum (`torch.optim.SGD(..., momentum=0.9)`) to the hand-written update: what must the
#    loop keep from one step to the next, and how does it change the comparison with Adam?
