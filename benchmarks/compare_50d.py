"""Burda et al.'s 784-200-200-50 model trained nine ways at one equal budget, scored by IWAE-5000 on all
10,000 test images of full MNIST: the plain VAE (ELBO), IWAE with K = 5 and K = 50 (Burda et al. 2016),
the ELBO with a learned prior, a mixture of 500 Gaussians or a VampPrior of 500 pseudo-inputs (Tomczak &
Welling 2018), and the VAE and the VampPrior again with ReLU layers. The tanh VampPrior run collapses;
benchmarks/vamp_collapse_50d.py measures how, vamp_start_clamp_50d.py tries Tomczak & Welling's start and clamp.

Two controls, each a variant vaelib lacks, registered here (vaelib.registry) and trained in this process:
- vae_one_draw_kl: N(0, I) with its KL estimated at the one drawn z, log q(z|x) - log p(z), as a learned prior's
  is (a model kind whose closed_form_kl is False). Against the VAE it costs the one-draw KL alone; against the
  mixture prior, the prior alone.
- vae_5_draws: the ELBO with its reconstruction term averaged over 5 draws of z (KL in closed form), the control
  Burda et al. ran: the decoder work of IWAE with K = 5 and the same expected objective as the VAE.

Every model: tanh (unless named ReLU), 784-200-200-50, Adam at 1e-3 with the course's decay (linear to 0 over the last quarter),
batches of 100, dynamic binarisation, seed 0, --epochs passes over the 60,000 training images: equal
passes, not equal computation (an IWAE step decodes K samples per image, so K = 50 costs about 50 times
the VAE's decoder work). Each is trained by the command line (`python -m vaelib train ...`, printed and
stored with its result), which scores it by IWAE-5000 on all 10,000 test images at the end; this script
adds the test ELBO (one draw of z per image, vaelib's fixed evaluation seed) and the active units (Burda
et al.'s criterion, Var_x E_q[z_j] > 0.01, on the test images).

    VAELIB_DATA=/path/to/mnist-full python benchmarks/compare_50d.py [--epochs 20] [--only vae iwae5 ...]
    python benchmarks/compare_50d.py --collect      # benchmarks/results/compare_50d.json from the runs

Runs are written to benchmarks/results/compare_50d/<name>/ (model.pt and metrics.json, committed); a
finished one is not trained again (asking for other --epochs than it has is refused), and an unfinished
one is resumed (python -m vaelib train --resume). OMP_NUM_THREADS sets the threads; the times it reports are
those of the machine it ran on (the committed runs: one thread each, on a shared 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from vaelib import registry
from vaelib.elbo import bernoulli_log_likelihood, kl_standard_normal
from vaelib.model import VAE

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks" / "results"
RUNS, RESULTS = HERE / "compare_50d", HERE / "compare_50d.json"
BURDA = ["--hidden", "200", "200", "--z-dim", "50"]  # and tanh, unless a model's flags name another activation
MODELS = {  # name: (flags beyond BURDA's, what it is)
    "vae": ([], "VAE: the ELBO, N(0, I) prior"),
    "iwae5": (["--objective", "iwae", "--iwae-train-k", "5"], "IWAE, K = 5"),
    "iwae50": (["--objective", "iwae", "--iwae-train-k", "50"], "IWAE, K = 50"),
    "mog": (["--prior", "mog", "--prior-components", "500"], "VAE with a learned prior: a mixture of 500 Gaussians"),
    "vamp": (["--prior", "vamp", "--prior-components", "500"], "VAE with a VampPrior of 500 pseudo-inputs"),
    "vae_relu": (["--activation", "relu"], "VAE, ReLU layers"),
    "vamp_relu": (["--activation", "relu", "--prior", "vamp", "--prior-components", "500"],
                  "VAE with a VampPrior of 500 pseudo-inputs, ReLU layers"),
    "vae_one_draw_kl": (["--model", "vae-one-draw-kl"], "VAE, N(0, I) prior, its KL estimated from the one draw of z"),
    "vae_5_draws": (["--objective", "elbo-5-draws"], "VAE, its ELBO averaged over 5 draws of z"),
}
REGISTERED = {"vae_one_draw_kl", "vae_5_draws"}  # trained in this process: the registrations below live here


class OneDrawKL(VAE):
    """The VAE with N(0, I), but its KL estimated at the drawn z, log q(z|x) - log p(z) (vaelib.model.VAE.kl), as
    the learned priors' is: unbiased, with a noisier gradient than the closed form."""
    closed_form_kl = False


def elbo_of_draws(model, x: torch.Tensor, generator: torch.Generator, cfg, draws: int = 5):
    """-ELBO with log p(x|z) averaged over `draws` draws of z per image and the KL in closed form (N(0, I) prior):
    the VAE's objective in expectation, at the decoder work of IWAE with K = draws. Returns the batch loss and
    (-ELBO, KL) of the batch, as vaelib.train's objectives do."""
    params = model.posterior_params(x)
    z, _ = model.draw_posterior(params, draws, generator)  # (draws, B, L)
    log_px_z = bernoulli_log_likelihood(model.decode(z), x).mean(0)  # (B,)
    kl = kl_standard_normal(params["mu"], params["logvar"])  # (B,)
    elbo = log_px_z - kl
    return -elbo.mean(), torch.stack([-elbo.mean(), kl.mean()]).detach()


registry.KINDS["vae-one-draw-kl"] = registry.Kind(build=OneDrawKL)
registry.OBJECTIVES["elbo-5-draws"] = elbo_of_draws
PUBLISHED = {  # Burda et al. 2016, Table 1, MNIST, one stochastic layer (k = 5000 test estimate), 3,280 passes
    "vae": 86.76, "iwae5": 85.54, "iwae50": 84.78}


def command(name: str, epochs: int) -> list[str]:
    flags = MODELS[name][0]
    tanh = [] if "--activation" in flags else ["--activation", "tanh"]
    return [sys.executable, "-m", "vaelib", "train", "--data", "mnist", *BURDA, *tanh, *flags,
            "--epochs", str(epochs), "--seed", "0", "--iwae-k", "5000", "--no-progress",
            "--out", str((RUNS / name).relative_to(ROOT))]


def train(name: str, epochs: int) -> None:
    metrics_path = RUNS / name / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {"complete": False}
    if metrics["complete"]:
        trained_for = metrics["config"]["epochs"]
        if trained_for != epochs:
            raise SystemExit(f"{RUNS / name} holds a run of {trained_for} epochs, not {epochs}: remove it to train "
                             f"again, or pass --epochs {trained_for}")
        print(f"{name}: trained already, {RUNS / name}")
        return
    if (RUNS / name / "train_state.pt").exists():  # unfinished: go on from where it stopped
        cmd = [sys.executable, "-m", "vaelib", "train", "--resume", str((RUNS / name).relative_to(ROOT)),
               "--no-progress"]
    else:
        cmd = command(name, epochs) + (["--overwrite"] if (RUNS / name).exists() else [])
    print("$", shlex.join(["python", *cmd[1:]]), flush=True)
    started = time.perf_counter()
    if name in REGISTERED:  # the kind or objective is registered in this process only
        from vaelib.__main__ import main as vaelib_main

        os.chdir(ROOT)
        if vaelib_main(cmd[3:]) != 0:
            raise SystemExit(f"{name}: training failed")
    else:
        subprocess.run(cmd, check=True, cwd=ROOT)
    print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)


@torch.no_grad()
def collect() -> dict:
    from vaelib.data import load_mnist
    from vaelib.diagnostics import active_units
    from vaelib.model import load_checkpoint
    from vaelib.evaluate import per_image_terms

    data = load_mnist("mnist", verbose=False)
    x = data.test_x
    rows = {}
    collected = json.loads(RESULTS.read_text())["models"] if RESULTS.exists() else {}
    for name, (flags, what) in MODELS.items():
        metrics_path = RUNS / name / "metrics.json"
        if not (RUNS / name / "model.pt").exists() and name in collected:  # model not committed: keep its row
            rows[name] = collected[name]
            continue
        if not metrics_path.exists():
            print(f"{name}: no run in {RUNS / name}; left out")
            continue
        metrics = json.loads(metrics_path.read_text())
        if not metrics["complete"]:  # trained to the end but not scored (stopped during IWAE-5000): what it has
            if metrics["steps_done"] < metrics["steps_total"]:
                print(f"{name}: unfinished run in {RUNS / name}; left out")
                continue
            h = metrics["history"]
            metrics = {**metrics, "epochs": h["epoch"][-1], "steps": h["step"][-1], "test_kl": h["test_kl"][-1],
                       "test_neg_log_px_iwae": None, "train_seconds": h["train_seconds"], "iwae_seconds": None}
        model = load_checkpoint(RUNS / name / "model.pt").eval()
        elbo = per_image_terms(model, x).elbo
        cfg = metrics["config"]
        rows[name] = {
            "what": what, "command": (f"python benchmarks/compare_50d.py --epochs {int(cfg['epochs'])} --only {name}"
                                      if name in REGISTERED else
                                      shlex.join(["python", *command(name, int(cfg["epochs"]))[1:]])),
            "epochs": metrics["epochs"], "steps": metrics["steps"],
            "test_neg_elbo": -elbo.mean().item(), "test_neg_log_px_iwae5000": metrics["test_neg_log_px_iwae"],
            "test_kl": metrics["test_kl"], "active_units": active_units(model, x).count,
            "train_seconds": metrics["train_seconds"], "iwae_seconds": metrics["iwae_seconds"],
            "budget": f"{metrics['epochs']:g} passes, batches of 100, seed 0",
            "note": "; ".join(note for note, applies in [
                ("posterior collapse: the rate was below 0.01 nats from the first epoch on, every z ignored "
                 "(benchmarks/vamp_collapse_50d.py examines the VampPrior's)",
                 max(metrics["history"]["test_kl"]) < 0.01),
                ("stopped while scoring, not scored by IWAE-5000", metrics["test_neg_log_px_iwae"] is None)]
                if applies) or None,
            "published_burda_2016": PUBLISHED.get(name),
            "published_budget": "3,280 passes, batches of 20" if name in PUBLISHED else None,
        }
    return {"data": "full MNIST: 60,000 training images (binarised afresh each step), all 10,000 test images",
            "note": "negative log-likelihoods in nats per image; IWAE-5000 is each run's own estimate "
                    "(python -m vaelib train --iwae-k 5000)", "models": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--only", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--collect", action="store_true", help="write the results file from the finished runs")
    args = parser.parse_args(argv)
    if not args.collect:
        for name in args.only:
            train(name, args.epochs)
    result = collect()
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for name, row in result["models"].items():
        nll = row["test_neg_log_px_iwae5000"]
        print(f"{name:9s} -ELBO {row['test_neg_elbo']:6.2f}  -log p(x) {'not scored' if nll is None else f'{nll:6.2f}'}  "
              f"active {row['active_units']:2d}  (Burda et al.: {row['published_burda_2016']})")
    print(f"written: {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
