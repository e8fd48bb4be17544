"""What the network buys in two dimensions, exactly: the MLP VAE, a convolutional encoder with the MLP decoder,
the MLP encoder with a convolutional decoder, and both convolutional (vaelib.conv), three training seeds each,
scored on the same seeded random test images of full MNIST. Notebook 12 reads the results.

For each model, on N test images (a seeded random subset, the same for every model): the exact log p(x) by
quadrature (vaelib.exact.converged_log_px, notebook 6), and the ELBO, IWAE_200 and the rate from the same 200
draws of z per image. On 50 of them (also seeded, the same for every model): the inference gap split into
approximation and amortisation (Cremer, Li & Duvenaud 2018) by notebook 8's method: q*_x, the best Gaussian
for each image alone, found by gradient ascent from two starts (the encoder's output and the true posterior's
moments), the better kept (vaelib.gaps.fit_local, 200 steps of 16 draws, scored with 1,000 draws).

Models: vaelib.study.fit with notebook 8's settings (z of size 2, 6,000 Adam steps of 100 images, seeds 0, 1, 2);
the MLP ones are notebook 7's committed models, and the others are committed in vaelib/pretrained too, so that
notebook 12 loads the very models scored here. The quadrature on a convolutional decoder costs tens of times the
MLP's per grid point (bench_conv.py, "grid points decoded per second"), which is why this runs here and not in
the notebook. Each model's result is written as it finishes, to benchmarks/results/network_gaps/<arch>-<seed>.json;
a finished one is not computed again unless it was scored on other numbers of images; --collect gathers them
into benchmarks/results/network_gaps.json.

    VAELIB_DATA=/path/to/mnist-full python benchmarks/network_gaps.py [--only conv mlp-conv] [--seeds 0 1 2]
    python benchmarks/network_gaps.py --collect
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("VAELIB_ADAPT_THREADS", "0")

from vaelib import ModelConfig, load_mnist  # noqa: E402
from vaelib.elbo import bernoulli_log_likelihood  # noqa: E402
from vaelib.evaluate import evaluating  # noqa: E402
from vaelib.exact import converged_log_px, covering_half_width, posterior_grid  # noqa: E402
from vaelib.gaps import fit_local, local_elbo, local_parameters, posterior_moments_start  # noqa: E402
from vaelib.study import fit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "results" / "network_gaps"
RESULTS = ROOT / "benchmarks" / "results" / "network_gaps.json"
ARCHS = {"mlp": "MLP encoder, MLP decoder", "conv-mlp": "conv encoder, MLP decoder",
         "mlp-conv": "MLP encoder, conv decoder", "conv": "conv encoder, conv decoder"}
STEPS, N_TEST, N_FIT, K_EVAL, K_FIT, SPACING = 6000, 500, 50, 200, 1000, 0.05
FIT_STEPS, FIT_SAMPLES = 200, 16


def test_images(data):
    """The N_TEST scored images and, among them, the rows of the N_FIT whose q is fitted: seeded random draws."""
    pick = torch.randperm(len(data.test_x), generator=torch.Generator().manual_seed(0))[:N_TEST]
    fit_pick = torch.randperm(N_TEST, generator=torch.Generator().manual_seed(1))[:N_FIT]
    return pick, fit_pick


@torch.no_grad()
def measure(model, x, k=K_EVAL, batch=20) -> dict:
    """Per image: exact log p(x), the ELBO, IWAE_k and the rate from k draws of z each (notebook 8's measure)."""
    exact, _, _ = converged_log_px(model, x, half_width=covering_half_width(model, x, margin=6.0))
    generator = torch.Generator().manual_seed(0)
    elbo, iwae, rate = [], [], []
    with evaluating(model):
        for xb in x.split(batch):
            z, log_q = model.sample_posterior(xb, k, generator)
            log_prior = model.prior.log_prob(z)
            log_w = bernoulli_log_likelihood(model.decode(z), xb) + log_prior - log_q
            elbo.append(log_w.mean(0)), iwae.append(torch.logsumexp(log_w, 0) - math.log(k))
            rate.append((log_q - log_prior).mean(0))
    return {"exact": exact, "elbo": torch.cat(elbo), "iwae": torch.cat(iwae), "rate": torch.cat(rate)}


def split_gaps(model, xs, exact) -> dict:
    """Per image: the inference gap, its approximation and amortisation parts (notebook 8's split)."""
    log_post, z1, z2 = posterior_grid(model, xs, covering_half_width(model, xs), SPACING, chunk=20_000)
    starts = [local_parameters(model, xs), posterior_moments_start(model, xs, log_post, z1, z2)]
    _, elbo_star = fit_local(model, xs, starts, FIT_STEPS, FIT_SAMPLES, eval_samples=K_FIT)
    elbo_enc = local_elbo(model, xs, local_parameters(model, xs), K_FIT, seed=2)
    return {"inference": exact - elbo_enc, "approximation": exact - elbo_star, "amortisation": elbo_star - elbo_enc}


def run_one(data, arch: str, seed: int) -> None:
    out = RUNS / f"{arch}-{seed}.json"
    if out.exists():
        done = json.loads(out.read_text())
        if len(done["scores"]["exact"]) == N_TEST and len(done["gaps"]["inference"]) == N_FIT:
            return
        print(f"{out.name} was scored on other numbers of images: scoring it again", flush=True)
    model, history = fit(data, ModelConfig(z_dim=2, arch=arch), STEPS, seed=seed)
    model.eval()
    pick, fit_pick = test_images(data)
    x = data.test_x[pick]
    started = time.perf_counter()
    scores = measure(model, x)
    gaps = split_gaps(model, x[fit_pick], scores["exact"][fit_pick])
    params = {part: sum(p.numel() for n, p in model.named_parameters() if n.startswith("decoder") == (part == "decoder"))
              for part in ("encoder and heads", "decoder")}
    result = {"arch": arch, "seed": seed, "network": ARCHS[arch], "parameters": params,
              "train_seconds": history.train_seconds, "seconds": time.perf_counter() - started,
              "scores": {k: [round(v, 4) for v in t.tolist()] for k, t in scores.items()},
              "gaps": {k: [round(v, 4) for v in t.tolist()] for k, t in gaps.items()}}
    RUNS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result) + "\n")
    print(f"{arch} seed {seed}: exact {scores['exact'].mean():.2f}, ELBO {scores['elbo'].mean():.2f}, "
          f"approximation {gaps['approximation'].mean():.2f}, amortisation {gaps['amortisation'].mean():.2f} "
          f"({result['seconds']:.0f} s)", flush=True)


def collect() -> dict:
    runs = {f"{arch}-{seed}": json.loads((RUNS / f"{arch}-{seed}.json").read_text())
            for arch in ARCHS for seed in (0, 1, 2) if (RUNS / f"{arch}-{seed}.json").exists()}
    result = {"what": __doc__.split("\n\n")[0], "data": "full MNIST, test set binarised once (vaelib.data)",
              "test_images": f"{N_TEST} of the 10,000, torch.randperm with seed 0; gaps on {N_FIT} of those (seed 1)",
              "settings": {"steps": STEPS, "k_eval": K_EVAL, "k_fit": K_FIT, "fit_steps": FIT_STEPS,
                           "fit_samples": FIT_SAMPLES, "spacing": SPACING},
              "command": "python benchmarks/network_gaps.py; python benchmarks/network_gaps.py --collect",
              "runs": runs}
    RESULTS.write_text(json.dumps(result) + "\n")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(ARCHS), default=list(ARCHS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--collect", action="store_true")
    args = parser.parse_args(argv)
    if args.collect:
        print(f"{len(collect()['runs'])} runs in {RESULTS.relative_to(ROOT)}")
        return
    data = load_mnist("mnist")
    for seed in args.seeds:
        for arch in args.only:
            run_one(data, arch, seed)


if __name__ == "__main__":
    sys.exit(main())
