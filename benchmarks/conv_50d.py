"""The convolutional VAE against the MLP in a 50-D latent space, at the same number of passes and at the same
training time, three seeds each, on full MNIST. Notebook 12 reads the results.

Three settings, each from seeds 0, 1, 2 (vaelib.study.fit: z of size 50, ReLU, Adam at 1e-3 with the course's
decay, batches of 100, dynamic binarisation):
- "mlp": the course's 784-256-128-50 network, 6,000 steps (notebook 7's committed models);
- "conv": the convolutional encoder and decoder (vaelib.conv, channels 32 and 64), 6,000 steps: the same passes;
- "mlp-time": the MLP trained for EQUAL_TIME_STEPS = 30,000 steps, five times the conv's, about its training
  time: a conv step at z = 50 costs 4.6 MLP steps at two threads and 5.7 at one (bench_conv.json), and a first
  round at four times the steps took 124-140 s against the conv's 169-176 s (one thread each, same machine).
  Each run's train_seconds is in the results.

Each model is scored by IWAE_5000 on N_IWAE test images (a seeded random subset, the same for every model) and by
the ELBO (one draw per image, vaelib's evaluation seed) on all 10,000 test images. IWAE_5000 on all 10,000 would
take each conv model over two hours on one thread here (the first took 243 s for 300 images): a GPU's job.
Each model's result is written as it finishes to benchmarks/results/conv_50d/<setting>-<seed>.json; --collect
gathers them into benchmarks/results/conv_50d.json.

    VAELIB_DATA=/path/to/mnist-full python benchmarks/conv_50d.py [--only conv mlp-time] [--seeds 0 1 2]
    python benchmarks/conv_50d.py --collect
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("VAELIB_ADAPT_THREADS", "0")

from vaelib import ModelConfig, load_mnist  # noqa: E402
from vaelib.evaluate import per_image_iwae, per_image_terms  # noqa: E402
from vaelib.study import fit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "results" / "conv_50d"
RESULTS = ROOT / "benchmarks" / "results" / "conv_50d.json"
STEPS, EQUAL_TIME_STEPS, N_IWAE, K = 6000, 30000, 300, 5000
SETTINGS = {"mlp": ("mlp", STEPS, "MLP, 6,000 steps"), "conv": ("conv", STEPS, "conv, 6,000 steps"),
            "mlp-time": ("mlp", EQUAL_TIME_STEPS, f"MLP, {EQUAL_TIME_STEPS:,} steps (the conv's training time)")}


def run_one(data, name: str, seed: int) -> None:
    out = RUNS / f"{name}-{seed}.json"
    arch, steps, label = SETTINGS[name]
    if out.exists() and (done := json.loads(out.read_text()))["steps"] == steps and len(done["iwae_5000"]) == N_IWAE:
        return
    model, history = fit(data, ModelConfig(z_dim=50, arch=arch), steps, seed=seed)
    model.eval()
    started = time.perf_counter()
    pick = torch.randperm(len(data.test_x), generator=torch.Generator().manual_seed(0))[:N_IWAE]
    iwae, se = per_image_iwae(model, data.test_x[pick], K, return_se=True)
    with torch.no_grad():
        elbo = per_image_terms(model, data.test_x).elbo
    result = {"setting": name, "label": label, "seed": seed, "steps": steps,
              "train_seconds": history.train_seconds, "score_seconds": time.perf_counter() - started,
              "iwae_5000": [round(v, 4) for v in iwae.tolist()], "iwae_se": [round(v, 4) for v in se.tolist()],
              "elbo_all_test_mean": elbo.mean().item(), "elbo_all_test_sd": elbo.std().item()}
    RUNS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result) + "\n")
    print(f"{label}, seed {seed}: IWAE_{K} {iwae.mean():.2f} on {N_IWAE} images, ELBO {elbo.mean():.2f} on all "
          f"({result['score_seconds']:.0f} s)", flush=True)


def collect() -> dict:
    runs = {f"{name}-{seed}": json.loads((RUNS / f"{name}-{seed}.json").read_text())
            for name in SETTINGS for seed in (0, 1, 2) if (RUNS / f"{name}-{seed}.json").exists()}
    result = {"what": __doc__.split("\n\n")[0], "data": "full MNIST, test set binarised once (vaelib.data)",
              "iwae_images": f"{N_IWAE} of the 10,000 test images, torch.randperm with seed 0", "k": K,
              "command": "python benchmarks/conv_50d.py; python benchmarks/conv_50d.py --collect", "runs": runs}
    RESULTS.write_text(json.dumps(result) + "\n")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--collect", action="store_true")
    args = parser.parse_args(argv)
    if args.collect:
        print(f"{len(collect()['runs'])} runs in {RESULTS.relative_to(ROOT)}")
        return
    data = load_mnist("mnist")
    for seed in args.seeds:
        for name in args.only:
            run_one(data, name, seed)


if __name__ == "__main__":
    sys.exit(main())
