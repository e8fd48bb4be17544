"""The VampPrior run of compare_50d.py collapsed: its encoder is a constant, its last tanh layer saturated.

compare_50d.py's VampPrior model (784-200-200-50 tanh, 500 pseudo-inputs, 20 passes) ended with a rate of
0 nats and no active unit. This script says how, in two parts, and writes
benchmarks/results/vamp_collapse_50d.json.

1. The committed model (benchmarks/results/compare_50d/vamp/model.pt), on all 10,000 test images: the share
   of the encoder's tanh units at |h| > 0.99, how much q's mean varies from image to image, and q's mean
   and log-variance at the images and at the pseudo-inputs. A VampPrior is the average of the encoder's
   Gaussians at the pseudo-inputs, so an encoder that gives every input the same Gaussian makes
   KL(q(z|x) || p(z)) exactly 0, whatever that Gaussian is. N(0, I) allows a zero KL only for the one
   encoder that outputs N(0, I) itself.
2. Short runs from the same start (seed 0, --steps steps of batches of 100, Adam at 1e-3 constant):
   the prior N(0, I), the mixture of 500 Gaussians, and the VampPrior four ways: as vaelib starts it
   (uniform-noise pseudo-inputs), started as Tomczak & Welling's code starts MNIST's (N(0.05, 0.01) pixels;
   theirs are then kept in [0, 1] by a hardtanh, vaelib's are not constrained), started
   at 500 training images, and with the KL weight warmed up linearly from 0 over the run. For each, the
   test rate (KL, all 10,000 images, vaelib's evaluation draw), the active units and the share of
   saturated units in the encoder's last layer; and the VampPrior with ReLU layers in place of tanh (a ReLU
   unit counts as saturated where it outputs 0).

   These runs are two passes long, seed 0 only: too short to judge a start. vamp_start_clamp_50d.py runs five
   passes from three seeds, where Tomczak & Welling's start escaped the collapse in the third pass for most seeds.

    VAELIB_DATA=/path/to/mnist-full python benchmarks/vamp_collapse_50d.py [--steps 1200]

One thread; about 5 minutes here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from vaelib.config import ModelConfig, TrainConfig
from vaelib.data import load_mnist
from vaelib.diagnostics import active_units
from vaelib.model import VAE, load_checkpoint
from vaelib.priors import VampPrior
from vaelib.evaluate import evaluate_terms
from vaelib.train import Batches, make_optimizer, steps_per_epoch, train_step

HERE = Path(__file__).resolve().parent / "results"
MODEL, RESULTS = HERE / "compare_50d" / "vamp" / "model.pt", HERE / "vamp_collapse_50d.json"
SATURATED = 0.99  # |tanh| above this: the unit's gradient factor 1 - h^2 is below 0.02


@torch.no_grad()
def inspect(model: VAE, x: torch.Tensor) -> dict:
    """Saturation of each hidden layer of the encoder, and the spread of q's mean over the images of x."""
    h, layers = x, []
    for layer in model.encoder:
        h = layer(h)
        if isinstance(layer, (torch.nn.Tanh, torch.nn.ReLU)):
            stuck = h.abs() > SATURATED if isinstance(layer, torch.nn.Tanh) else h == 0  # no gradient through it
            layers.append({"saturated_share": stuck.float().mean().item(),
                           "sd_over_images": h.std(0).mean().item()})
    mu, logvar = model.encode(x)
    out = {"encoder_layers": layers, "q_mean_sd_over_images": mu.std(0).mean().item(),
           "q_logvar_mean": logvar.mean().item(), "active_units": active_units(model, x).count}
    if isinstance(model.prior, VampPrior):
        pm, plv = model.encode(model.prior.pseudo_inputs)
        out.update(pseudo_q_mean_sd=pm.std(0).mean().item(), pseudo_q_logvar_mean=plv.mean().item(),
                   largest_q_mean_gap=(mu.mean(0) - pm.mean(0)).abs().max().item())
    return out


def short_run(data, name: str, steps: int) -> dict:
    prior, start, warm = {"normal": ("normal", None, False), "mog": ("mog", None, False),
                          "vamp": ("vamp", None, False), "vamp_tw_start": ("vamp", "tw", False),
                          "vamp_data_start": ("vamp", "data", False), "vamp_warm_up": ("vamp", None, True),
                          "vamp_relu": ("vamp", None, False)}[name]
    activation = "relu" if name.endswith("_relu") else "tanh"
    config = ModelConfig(hidden=(200, 200), z_dim=50, activation=activation, prior=prior,
                         **({} if prior == "normal" else {"prior_components": 500}))
    torch.manual_seed(0)
    model = VAE(config)
    with torch.no_grad():
        if start == "tw":  # Tomczak & Welling's code: pseudo-inputs drawn from N(0.05, 0.01)
            model.prior.pseudo_inputs.normal_(0.05, 0.01)
        elif start == "data":  # 500 training images drawn at random (seed 1)
            pick = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(1))[:500]
            model.prior.pseudo_inputs.copy_(data.train_x[pick].float())
    cfg = TrainConfig(model=config, lr_schedule="constant", progress=False)
    optimizer = make_optimizer(model, "adam", cfg.lr)
    generator = torch.Generator().manual_seed(0)
    batches, per_epoch = Batches(data.train_x, cfg.batch_size, generator), steps_per_epoch(len(data.train_x), cfg.batch_size)
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        if step % per_epoch == 0:
            batches.shuffle()
        cfg.beta = min(1.0, step / steps) if warm else 1.0  # linear warm-up over the whole run
        train_step(model, optimizer, batches(step % per_epoch), generator, cfg)
    seconds = time.perf_counter() - started
    model.eval()
    neg_elbo, rate = evaluate_terms(model, data.test_x)
    row = {"prior": prior, "activation": activation, "pseudo_input_start": start, "kl_warm_up": warm, "test_neg_elbo": neg_elbo,
           "test_rate": rate, **inspect(model, data.test_x), "seconds": seconds}
    print(f"{name:16s} -ELBO {neg_elbo:7.2f}  rate {rate:6.2f}  active {row['active_units']:2d}  saturated "
          f"(last layer) {row['encoder_layers'][-1]['saturated_share']:.3f}", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1200, help="training steps of each short run (600 a pass)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = load_mnist("mnist", verbose=False)
    committed = inspect(load_checkpoint(MODEL).eval(), data.test_x)
    print("committed VampPrior model:", json.dumps(committed))
    runs = {name: short_run(data, name, args.steps)
            for name in ("normal", "mog", "vamp", "vamp_tw_start", "vamp_data_start", "vamp_warm_up", "vamp_relu")}
    RESULTS.write_text(json.dumps({
        "data": "full MNIST: 60,000 training images (binarised afresh each step), all 10,000 test images",
        "command": f"python benchmarks/vamp_collapse_50d.py --steps {args.steps}",
        "saturated": f"a tanh unit at |h| > {SATURATED}, a ReLU unit at 0 (either passes almost no gradient)", "committed_vamp_model": committed,
        "short_runs": {"steps": args.steps, "batch_size": 100, "lr": "1e-3 constant", "seed": 0, "runs": runs},
    }, indent=2) + "\n")
    print(f"written: {RESULTS.relative_to(HERE.parents[1])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
