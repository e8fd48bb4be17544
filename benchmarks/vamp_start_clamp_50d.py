"""Does the 50-D VampPrior collapse because of how its pseudo-inputs start, or for want of a log-variance clamp?

compare_50d.py's VampPrior model (784-200-200-50 tanh, 500 pseudo-inputs) collapsed: rate 0, no active unit,
its encoder a constant (vamp_collapse_50d.py). Tomczak & Welling's code differs from vaelib's VampPrior in
two ways tried here, two by two, each from three seeds:

- start: vaelib draws the pseudo-inputs' pixels from U[0, 1); their code draws them from N(0.05, 0.01);
- clamp: their encoder clamps q's log-variance to [-6, 2] (a hardtanh); vaelib's does not. Here the clamp is
  a forward hook on the model's logvar_head, so it holds wherever the encoder runs (images and pseudo-inputs).

Everything else is compare_50d's VampPrior: tanh layers, 500 pseudo-inputs (not kept in [0, 1]), Adam at 1e-3,
batches of 100, dynamic binarisation, full MNIST; the learning rate is held constant (these runs follow the
trajectory, not a final score), and the weights of seed s are those `python -m vaelib train --seed s` starts
from. vaelib's training loop scores the test rate (the KL, one draw of z per test image, all 10,000) after
every pass; at the end, the active units and the saturation of the encoder's last tanh layer
(vamp_collapse_50d.inspect). A run counts as collapsed when its final test rate is below 0.01 nats.

    VAELIB_DATA=/path/to/mnist-full OMP_NUM_THREADS=1 python benchmarks/vamp_start_clamp_50d.py [--steps 3000]
        [--seeds 0 1 2] [--only uniform tw_start ...] [--data sample]

Each finished run is written to benchmarks/results/vamp_start_clamp_50d.json at once, and skipped when the
script is run again with the same --steps (so a stopped study goes on where it stopped).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vamp_collapse_50d import inspect  # noqa: E402  (the same measurements as the collapsed model's)

from vaelib.config import ModelConfig, TrainConfig, seed_everything  # noqa: E402
from vaelib.data import load_mnist  # noqa: E402
from vaelib.model import build_model  # noqa: E402
from vaelib.train import train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "vamp_start_clamp_50d.json"
CONDITIONS = {  # name: (pseudo-inputs drawn as Tomczak & Welling's code draws them, log-variance clamped to [-6, 2])
    "uniform": (False, False), "tw_start": (True, False), "clamp": (False, True), "tw_start_clamp": (True, True)}
LOGVAR_RANGE = (-6.0, 2.0)  # Tomczak & Welling's hardtanh on q's log-variance
COLLAPSED = 0.01  # nats of rate


def vamp_model(seed: int, tw_start: bool, clamp: bool) -> torch.nn.Module:
    """compare_50d's tanh VampPrior as `python -m vaelib train --seed seed` builds it, then started and clamped."""
    seed_everything(seed)
    model = build_model(ModelConfig(hidden=(200, 200), z_dim=50, activation="tanh", prior="vamp",
                                    prior_components=500))
    if tw_start:
        with torch.no_grad():  # from a generator of its own, so that the weights and the training draws stay the same
            u = torch.randn(model.prior.pseudo_inputs.shape, generator=torch.Generator().manual_seed(seed))
            model.prior.pseudo_inputs.copy_(0.05 + 0.01 * u)
    if clamp:
        model.logvar_head.register_forward_hook(lambda module, args, out: out.clamp(*LOGVAR_RANGE))
    return model


def run(data, name: str, seed: int, steps: int) -> dict:
    tw_start, clamp = CONDITIONS[name]
    model = vamp_model(seed, tw_start, clamp)
    cfg = TrainConfig(steps=steps, lr_schedule="constant", seed=seed, model=model.config, progress=False)
    started = time.perf_counter()
    history = train(model, data, cfg)
    seconds = time.perf_counter() - started
    model.eval()
    found = inspect(model, data.test_x)
    row = {"condition": name, "tw_start": tw_start, "logvar_clamp": list(LOGVAR_RANGE) if clamp else None,
           "seed": seed, "steps": steps, "test_rate_by_pass": history.test_kl, "test_neg_elbo": history.test_neg_elbo[-1],
           "test_rate": history.test_kl[-1], "collapsed": history.test_kl[-1] < COLLAPSED,
           "active_units": found["active_units"], "last_layer_saturated": found["encoder_layers"][-1]["saturated_share"],
           "q_logvar_mean": found["q_logvar_mean"], "train_seconds": history.train_seconds, "seconds": seconds}
    print(f"{name:15s} seed {seed}  rate {row['test_rate']:7.3f}  active {row['active_units']:2d}  -ELBO "
          f"{row['test_neg_elbo']:7.2f}  last layer saturated {row['last_layer_saturated']:.3f}  "
          f"rate by pass {' '.join(f'{r:.2f}' for r in history.test_kl)}  ({seconds:.0f} s)", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="training steps of each run (600 a pass)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=list(CONDITIONS), default=list(CONDITIONS))
    parser.add_argument("--data", choices=("mnist", "sample"), default="mnist",
                        help="full MNIST, or the offline sample of vaelib.data (where a reader saw other results)")
    args = parser.parse_args(argv)
    data = load_mnist(args.data, verbose=False)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {
        "data": "full MNIST (60,000 training images binarised afresh each step, all 10,000 test images) unless a "
                "run says sample: vaelib's offline sample",
        "model": "784-200-200-50 tanh, VampPrior of 500 pseudo-inputs; Adam at 1e-3 constant, batches of 100",
        "collapsed": f"final test rate below {COLLAPSED} nats", "runs": {}}
    for seed in args.seeds:  # seed by seed, so that an early stop leaves every condition with the same seeds
        for name in args.only:
            key = f"{name}/seed{seed}/steps{args.steps}" + ("/sample" if args.data == "sample" else "")
            if key in results["runs"]:
                print(f"{key}: done already")
                continue
            results["runs"][key] = {**run(data, name, seed, args.steps), "data": data.source, "command": (
                f"OMP_NUM_THREADS=1 python benchmarks/vamp_start_clamp_50d.py --steps {args.steps} --seeds {seed} "
                f"--only {name} --data {args.data}")}
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
