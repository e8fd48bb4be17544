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
# # 11. Appendix: learned priors in 50 dimensions
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/11_appendix_learned_priors.ipynb)
#
# Notebook 8 ended with Burda et al.'s 50-D comparison. We also trained two learned priors in that setting,
# and both did worse than $\mathcal N(0, I)$. A mixture of 500 Gaussians lost 7.9 nats of $\log p_\theta(x)$,
# and a VampPrior collapsed: its code carried nothing. This appendix asks why, with the runs of
# `benchmarks/` loaded here. In brief:
#
# 1. The mixture prior's loss is mostly the prior's own. Estimating the KL from one draw, as a learned prior
#    must, costs $\mathcal N(0, I)$ well under a nat.
# 2. With tanh layers, where the VampPrior's pseudo-inputs start made the difference in our runs. From
#    vaelib's start it collapsed in every run; from Tomczak & Welling's, it escaped in four runs of six. Their log-variance clamp made no
#    consistent difference.
#
# Every model is Burda et al.'s 784-200-200-50 network, with tanh layers unless said, trained on full MNIST
# with batches of 100.

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

import matplotlib.pyplot as plt
import torch

from vaelib.config import pick_device, smoke
from vaelib.data import describe, load_mnist
from vaelib.diagnostics import benchmark_results
from vaelib.evaluate import per_image_terms
from vaelib.evidence import holds
from vaelib.model import load_checkpoint

SMOKE = smoke()
data = load_mnist("auto")
device = pick_device()
n_test = 200 if SMOKE else 1000  # test images the collapsed model is examined on, drawn at random with a seed
test_x = data.test_x[torch.randperm(len(data.test_x), generator=torch.Generator().manual_seed(0))[:n_test]].to(device)
results = {name: json.loads(benchmark_results(name).read_text()) if benchmark_results(name).exists() else None
           for name in ("compare_50d.json", "vamp_collapse_50d.json", "vamp_start_clamp_50d.json")}
runs = (results["compare_50d.json"] or {"models": {}})["models"]  # an installed vaelib has no benchmarks/ results
MISSING = ("the committed runs (benchmarks/results) are not in this installation: open this notebook from a clone "
           "of the repository or on Binder to see them")
print(describe(data))

# %% [markdown]
# ## The mixture prior: the prior itself, or its KL?
#
# A learned prior changes two things. The first is the prior. The second is the KL term: against
# $\mathcal N(0, I)$ it has a closed form, but against a mixture it has none. vaelib then estimates it from the
# one draw of $z$ that the reconstruction term uses, $\log q_\phi(z\mid x) - \log p(z)$. That estimate is
# unbiased, but its gradient is noisier. A third model separates the two: $\mathcal N(0, I)$ with the KL
# estimated from one draw (`benchmarks/compare_50d.py` registers it as a model kind). Same budget, same seed:

# %% tags=["nbval-check-output"]
ROWS = ["vae", "vae_one_draw_kl", "mog"]
print(f"{'20 passes, seed 0; nats':60s} {'-IWAE_5000':>10s} {'-ELBO':>8s} {'rate':>6s}" if runs else MISSING)
for name in [name for name in ROWS if name in runs]:
    run = runs[name]
    print(f"{run['what']:60s} {run['test_neg_log_px_iwae5000']:10.2f} {run['test_neg_elbo']:8.2f} {run['test_kl']:6.2f}")
if all(name in runs for name in ROWS):
    nll = {name: runs[name]["test_neg_log_px_iwae5000"] for name in ROWS}
    print(f"the one-draw KL costs {nll['vae_one_draw_kl'] - nll['vae']:.2f} nats; "
          f"the learned prior, on top of it, {nll['mog'] - nll['vae_one_draw_kl']:.2f}")

# %% [markdown]
# **The prior itself costs most of it.** Estimating the KL from one draw costs $\mathcal N(0, I)$ 0.62 nats of
# $\log p_\theta(x)$. The mixture, with that same estimate, loses another 7.31. Each row is one seed, so these
# are sizes, not settled differences. The mixture also learned more slowly from the start, in the two-pass runs
# of `benchmarks/vamp_collapse_50d.py`. Why it is worse at this budget we have not found.

# %%
if all(name in runs for name in ROWS):
    holds(0 < nll["vae_one_draw_kl"] - nll["vae"] < 1 < 5 < nll["mog"] - nll["vae_one_draw_kl"],
          "the one-draw KL costs under a nat; the learned prior, on top of it, over five (one seed each)")
else:
    print(MISSING)
short = (results["vamp_collapse_50d.json"] or {}).get("short_runs")
if short:
    print(f"after {short['steps']:,} steps (2 passes), seed 0: " + "; ".join(
        f"{name} -ELBO {short['runs'][name]['test_neg_elbo']:.1f}" for name in ("normal", "mog")))

# %% [markdown]
# ## The VampPrior collapses into a constant encoder
#
# The VampPrior [Tomczak & Welling 2018] is the average of the encoder's own Gaussians at $C = 500$ learned
# pseudo-inputs $u_c$:
#
# $$p(z) = \frac1C \sum_{c=1}^{C} q_\phi(z \mid u_c).$$
#
# Suppose the encoder gives every input the same Gaussian. Then $p(z)$ is that Gaussian, and the KL of every
# image is exactly 0, whichever Gaussian it is. $\mathcal N(0, I)$ lets a constant encoder off only if the
# constant is $\mathcal N(0, I)$ itself. Our collapsed VampPrior found that way out. Its encoder's
# last tanh layer is saturated, $|h| > 0.99$, where tanh's slope $1 - h^2$ is below 0.02:

# %%
path = benchmark_results("compare_50d") / "vamp" / "model.pt"
if path.exists():
    vamp = load_checkpoint(path).to(device).eval()
    with torch.no_grad():
        h = vamp.encoder(test_x)  # (N, 200): the last tanh layer
        mu, logvar = vamp.encode(test_x)
        pseudo_mu, _ = vamp.encode(vamp.prior.pseudo_inputs)
    saturated = (h.abs() > 0.99).float().mean().item()
    spread = mu.std(0).max().item()  # the largest sd over the images of one coordinate of q's mean
    rate = per_image_terms(vamp, test_x).kl.mean().item()
    print(f"on {n_test:,} random test images: last layer saturated {saturated:.1%}; q's mean varies by at most "
          f"{spread:.1e} between images and sits {(mu.mean(0) - pseudo_mu.mean(0)).abs().max():.1e} from the "
          f"pseudo-inputs'; q's log-variance {logvar.mean():.1f}; rate {rate:.1e} nats")
    holds(saturated > 0.99 and spread < 1e-4 and rate < 0.01,
          "the encoder is a constant: saturated, the same q for every image, and no rate")
else:
    print(MISSING)

# %% [markdown]
# ## What decides the collapse: the start, or a clamp?
#
# Tomczak & Welling's code differs from vaelib's VampPrior in two ways we can test. It starts the pseudo-inputs'
# pixels at $\mathcal N(0.05, 0.01^2)$, near black, where vaelib draws them from $U[0, 1)$. And it clamps the
# encoder's log-variance to $[-6, 2]$. `benchmarks/vamp_start_clamp_50d.py` tries all four combinations, from
# three seeds each, for 3,000 steps (5 passes). The clamp is a forward hook on the encoder's `logvar_head`. The
# figure shows each run's test rate after every pass; a collapsed run stays at 0.

# %%
study = results["vamp_start_clamp_50d.json"]
CONDITIONS = {"uniform": "vaelib's start", "clamp": "vaelib's start, clamped",
              "tw_start": "T&W's start", "tw_start_clamp": "T&W's start, clamped"}
if study:
    found = {c: [r for key, r in study["runs"].items() if r["condition"] == c and r["steps"] == 3000
                 and r["data"] == "mnist"] for c in CONDITIONS}
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.2), sharey=True, layout="constrained")
    for ax, (condition, label) in zip(axes, CONDITIONS.items()):
        for r in found[condition]:
            ax.plot(range(1, len(r["test_rate_by_pass"]) + 1), r["test_rate_by_pass"], "o-", label=f"seed {r['seed']}")
        ax.set(title=label, xlabel="pass over the training set", ylabel="test rate (nats)" if ax is axes[0] else None)
        ax.legend(fontsize=8)
    fig.suptitle("Figure 1. The VampPrior's test rate after each pass: two starts, with and without the clamp")
    for condition, rows in found.items():
        print(f"{CONDITIONS[condition]:26s} " + "; ".join(
            f"seed {r['seed']}: rate {r['test_rate']:.2f}, {r['active_units']} active" for r in rows))
    if short:
        print("2 passes, seed 0 (vamp_collapse_50d.py): " + "; ".join(
            f"{name} rate {short['runs'][name]['test_rate']:.3f}"
            for name in ("vamp", "vamp_tw_start", "vamp_data_start", "vamp_warm_up")))
    longer = [r for r in study["runs"].values() if r["steps"] == 6000]
    for r in longer:
        print(f"10 passes, {CONDITIONS[r['condition']]}, seed {r['seed']}: rate by pass "
              f"{', '.join(f'{rate:.2f}' for rate in r['test_rate_by_pass'])}")
else:
    print(MISSING)

# %% [markdown]
# **In these runs the start made the difference.** From vaelib's start the VampPrior collapsed in all six
# runs, clamped or not. From Tomczak & Welling's start it escaped in four runs of six, two with the clamp and
# two without. Each escape
# came in the third pass, after two passes at a rate below 0.01 nats. The two runs still collapsed after
# five passes stayed so for ten, as did one from vaelib's start. The clamp made no consistent difference: it
# rescued seed 0 and lost seed 2.
#
# Twelve runs are few. If the start made no difference, a split as uneven as 0 of 6 against 4 of 6 would
# come about once in sixteen times (Fisher's exact test, two-sided $p \approx 0.06$). And runs from vaelib's
# start lasted five passes; only one went on to ten. Two other starts, at 500 training images and with a KL
# weight warmed up from 0, ran for two passes only (`benchmarks/vamp_collapse_50d.py`): too short to see an
# escape in the third. Why a near-black start would help we have not tested.

# %% tags=["nbval-check-output"]
if study:
    escaped = {c: sum(not r["collapsed"] for r in rows) for c, rows in found.items()}
    holds(all(len(rows) == 3 for rows in found.values()), "every condition ran from three seeds")
    holds(escaped["uniform"] == escaped["clamp"] == 0, "from vaelib's start, every run collapsed, clamped or not")
    holds(escaped["tw_start"] == escaped["tw_start_clamp"] == 2,
          "from Tomczak & Welling's start, two runs of three escaped, with the clamp and without")
    holds(all(max(r["test_rate_by_pass"][:2]) < 0.01 < r["test_rate_by_pass"][2]
              for rows in found.values() for r in rows if not r["collapsed"]),
          "every escape came in the third pass, after two passes below 0.01 nats")
    holds(all(r["collapsed"] for r in longer), "the runs still collapsed after five passes stayed so for ten")
    by_seed = {c: {r["seed"]: r["collapsed"] for r in rows} for c, rows in found.items()}
    holds(by_seed["tw_start"][0] and not by_seed["tw_start_clamp"][0]
          and not by_seed["tw_start"][2] and by_seed["tw_start_clamp"][2],
          "from T&W's start the clamp rescued seed 0 and lost seed 2")
    # Fisher's exact test on (escaped, collapsed) from each start: the tables at least as uneven as the one seen
    n_tw, n_uniform = len(found["tw_start"]) + len(found["tw_start_clamp"]), len(found["uniform"]) + len(found["clamp"])
    k, total = escaped["tw_start"] + escaped["tw_start_clamp"] + escaped["uniform"] + escaped["clamp"], n_tw + n_uniform
    table_p = [math.comb(n_tw, j) * math.comb(n_uniform, k - j) / math.comb(total, k) for j in range(k + 1)]
    seen = table_p[escaped["tw_start"] + escaped["tw_start_clamp"]]
    p_two_sided = sum(q for q in table_p if q <= seen * (1 + 1e-9))
    print(f"Fisher's exact test, {k} escapes in {total} runs: two-sided p = {p_two_sided:.3f}")
    holds(0.05 < p_two_sided < 0.1, "a split this uneven would come about by chance about once in sixteen times")
else:
    print(MISSING)

# %% [markdown]
# ## With ReLU layers
#
# With ReLU layers, and vaelib's start, the VampPrior trained (one seed, 20 passes). Its $-\log p_\theta(x)$
# is 1.19 nats below the ReLU VAE's; with one seed each we claim no direction. Compare rows of one
# activation: ReLU layers alone gain 2.7 nats on tanh here. The active units of a learned prior say less
# than they seem. The criterion asks whether a mean varies by more than 0.1 between images, a scale that
# $\mathcal N(0, I)$ fixes and a learned prior does not.

# %%
if runs:
    for name in ("vae_relu", "vamp_relu"):
        run = runs[name]
        print(f"{run['what']:56s} -IWAE_5000 {run['test_neg_log_px_iwae5000']:.2f}, rate {run['test_kl']:.2f}, "
              f"{run['active_units']} active")
    holds(runs["vamp_relu"]["test_kl"] > 5 and runs["vamp_relu"]["active_units"] > 0,
          "with ReLU layers and vaelib's start, the VampPrior trains (one seed)")
else:
    print(MISSING)

# %% [markdown]
# ## Summary
#
# - **A learned prior changes two things**: the prior, and a KL estimated from one draw instead of in closed
#   form. In 50-D at 20 passes the one-draw KL cost $\mathcal N(0, I)$ 0.62 nats; the mixture prior cost 7.31
#   more. One seed each.
# - **A VampPrior charges a constant encoder no KL**, whatever Gaussian it outputs. With tanh layers it found
#   that way out from vaelib's start in every run. From Tomczak & Welling's near-black start it escaped in
#   four runs of six, in the third pass; their log-variance clamp made no consistent difference.
# - **The rate shows a collapse**: watch it in the first passes of any model with a learned prior.

# %% [markdown]
# ## Exercises
#
# 1. A constant encoder pays no KL under a VampPrior. Now take two inputs that the encoder maps to
#    $q_1 = \mathcal N(m_1, S)$ and $q_2 = \mathcal N(m_2, S)$, and a VampPrior with two pseudo-inputs, one
#    equal to each input. Show that the first input's KL lies between 0 and $\log 2$ nats, whatever $m_1$
#    and $m_2$. What does that say about how much a VampPrior charges an encoder for telling C inputs apart?

# %% [markdown]
# 2. Twelve runs gave $p \approx 0.06$. Suppose the escape rates stayed what we saw: none from vaelib's start,
#    two in three from Tomczak & Welling's. With $n$ runs from each start, what two-sided $p$ would Fisher's
#    exact test give? How many runs per start would bring it below 0.01?
