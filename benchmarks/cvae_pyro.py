"""Pyro's CVAE table, reproduced with vaelib.cvae (issue 22, item 4): for 1, 2 and 3 given quadrants, the baseline
network then the CVAE on top of it, trained with Pyro's settings (Adam 1e-3, batches of 128, up to 101 epochs,
patience 3) but stopped on a validation split of the training set, then scored on the test images:

    baseline   -log p(y|x), exact (one Bernoulli log-likelihood), as Pyro's table averages it and per image
    CVAE       Pyro's "Monte Carlo" number: the 10-particle negative ELBO (vaelib.cvae.pyro_nll, seeded), and
               -log p(y|x) by importance sampling with K = 1000 draws of q(z|x, y) (conditional_log_likelihood)

Every difference from Pyro's protocol is in benchmarks/cvae_protocol.md. The trained models go to --out (one
CVAE per setting and seed, its baseline inside it; --score-only scores them again), the numbers to
benchmarks/results/cvae_pyro.json. One thread by default (--threads).

    python benchmarks/cvae_pyro.py --data-dir DIR --out /tmp/cvae                    # Pyro's protocol, full length
    python benchmarks/cvae_pyro.py --data-dir DIR --out /tmp/cvae --budget 600 --seeds 0 1
    python benchmarks/cvae_pyro.py --data sample --out /tmp/cvae_smoke --budget 5 --test-images 200 --k 100 \\
        --results /tmp/cvae_smoke.json                                              # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from vaelib import cvae
from vaelib.data import TEST_BINARISATION_SEED, load_full_mnist, load_mnist, load_sample

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cvae_pyro.json"
PYRO = {"cvae": {1: 71.8, 2: 51.0, 3: 24.2}, "baseline": {1: 100.4, 2: 61.9, 3: 25.4}}  # pyro.ai/examples/cvae.html


def images(source: str, folder, pixels: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(training images as grey levels, test images, what they are): the test images binarised once with vaelib's
    fixed seed for pixels="binary" (vaelib.data.load_mnist's test set), left grey for "grey" (Pyro's)."""
    if pixels == "binary":
        data = load_mnist(source, folder)
        return data.train_x, data.test_x, data.source
    train_x, _, test_x, _ = load_sample() if source == "sample" else load_full_mnist(folder)
    return train_x, test_x, source


def mean_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean and its standard error over images, each image counted once. Shapes: (N,) -> 2 floats."""
    values = values.double()
    return values.mean().item(), (values.std() / len(values) ** 0.5).item()


def score(baseline: cvae.Baseline, model: cvae.CVAE, test_x: torch.Tensor, args) -> dict:
    """Both models' numbers on the test images, nats per image (lower is better)."""
    base = cvae.baseline_nll(baseline, test_x)
    start = time.perf_counter()
    pyro = cvae.pyro_nll(model, test_x, args.particles, seed=args.score_seed)
    pyro_seconds = time.perf_counter() - start
    log_p, mc_se = cvae.conditional_log_likelihood(model, test_x, args.k, seed=args.score_seed)
    (base_mean, base_se), (pyro_mean, pyro_se), (is_mean, is_se) = (mean_se(v) for v in (base, pyro, -log_p))
    return {
        "baseline_pyro_table": cvae.batch_means(base), "baseline_nll": base_mean, "baseline_nll_se": base_se,
        "cvae_pyro_table": cvae.batch_means(pyro), "cvae_pyro_mean": pyro_mean, "cvae_pyro_se": pyro_se,
        "cvae_is_nll": is_mean, "cvae_is_nll_se": is_se,
        "cvae_is_mc_se": (mc_se.double().pow(2).sum().sqrt() / len(mc_se)).item(),
        "score_seconds_pyro": pyro_seconds, "score_seconds_is": time.perf_counter() - start - pyro_seconds,
    }


def history_row(history: cvae.History) -> dict:
    epochs = len(history.validation_loss)
    return {"epochs": epochs, "best_epoch": history.best_epoch + 1, "steps": history.steps,
            "stopped": history.stopped, "train_seconds": history.seconds,
            "seconds_per_epoch": history.seconds / max(1, epochs),  # the last epoch may be cut short by --budget
            "steps_per_second": history.steps / history.seconds, "validation_loss": history.validation_loss}


def one_setting(quadrants: int, seed: int, train_x, test_x, args) -> dict:
    """Train (or with --score-only load) the baseline and the CVAE for one setting and seed, save them, score them."""
    config = cvae.CVAEConfig(quadrants=quadrants, z_dim=args.z_dim, hidden=tuple(args.hidden),
                             decoder_sees_given=args.decoder_sees_given)
    fit = cvae.FitConfig(epochs=args.epochs, patience=args.patience, budget_s=args.budget, pixels=args.pixels,
                         seed=seed, lr=args.lr, batch_size=args.batch_size)
    path = args.out / f"q{quadrants}_seed{seed}_cvae.pt"  # the CVAE's checkpoint holds its baseline too
    row = {"quadrants": quadrants, "seed": seed}
    if args.score_only:
        model = cvae.load(path)
        baseline = model.baseline
    else:
        torch.manual_seed(seed)  # the initial weights
        baseline = cvae.Baseline(config)
        row["baseline"] = history_row(cvae.fit_baseline(baseline, train_x, fit))
        model = cvae.CVAE(config, baseline)
        row["cvae"] = history_row(cvae.fit_cvae(model, train_x, fit))
        cvae.save(model, path)
    row.update(score(baseline, model, test_x, args))
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data", choices=("mnist", "sample"), default="mnist")
    parser.add_argument("--data-dir", help="full MNIST's folder (torchvision's MNIST/raw layout); else $VAELIB_DATA")
    parser.add_argument("--out", type=Path, required=True, help="folder for the trained models")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--quadrants", type=int, nargs="+", default=[1, 2, 3], choices=(1, 2, 3))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (weights, split, batches)")
    parser.add_argument("--epochs", type=int, default=101, help="most epochs per model (Pyro's default 101)")
    parser.add_argument("--patience", type=int, default=3, help="early stopping's patience in epochs (Pyro's 3)")
    parser.add_argument("--budget", type=float, default=None, help="seconds of training at most, per model")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--pixels", choices=("binary", "grey"), default="binary",
                        help="binary: vaelib's binarised MNIST; grey: Pyro's grey levels")
    parser.add_argument("--z-dim", type=int, default=200)
    parser.add_argument("--hidden", type=int, nargs="+", default=[500, 500])
    parser.add_argument("--decoder-sees-given", action="store_true", help="p(y|x, z) on [z, x_given] (Sohn's)")
    parser.add_argument("--k", type=int, default=1000, help="importance samples per test image")
    parser.add_argument("--particles", type=int, default=10, help="Pyro's num_particles for its table's number")
    parser.add_argument("--score-seed", type=int, default=0)
    parser.add_argument("--test-images", type=int, default=None, help="the first N test images only (smoke runs)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--score-only", action="store_true", help="load the models from --out instead of training")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    train_x, test_x, source = images(args.data, args.data_dir, args.pixels)
    test_x = test_x[:args.test_images]
    rows = []
    for quadrants in args.quadrants:
        for seed in args.seeds:
            rows.append(one_setting(quadrants, seed, train_x, test_x, args))
            r = rows[-1]
            print(f"q={quadrants} seed={seed}: baseline {r['baseline_pyro_table']:.2f} (Pyro "
                  f"{PYRO['baseline'][quadrants]}), CVAE Pyro's metric {r['cvae_pyro_table']:.2f} (Pyro "
                  f"{PYRO['cvae'][quadrants]}), CVAE IS -log p(y|x) {r['cvae_is_nll']:.2f}", flush=True)
            write(args, source, len(train_x), len(test_x), rows)


def write(args, source: str, n_train: int, n_test: int, rows: list) -> None:
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "data_dir"}
    report = {"what": "Pyro's CVAE protocol on vaelib (benchmarks/cvae_protocol.md); nats per test image",
              "pyro_reported": PYRO, "data": source, "n_train_and_validation": n_train, "n_test": n_test,
              "test_binarisation_seed": TEST_BINARISATION_SEED if args.pixels == "binary" else None,
              "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "settings": settings, "runs": rows}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
