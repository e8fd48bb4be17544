"""Notebook 13's 2-D M2, scored exactly on all 10,000 test images (issue 22): the model's own classifier p(y|x) by
Bayes' rule over the ten integrals log p(x|y) (vaelib.m2.exact_log_px_given_y), beside the amortised q(y|x).

Trains the model with vaelib.study.fit (loaded when trained before, as the notebook loads it), then writes
benchmarks/results/m2_exact_2d.json: both accuracies, the images where the two classifiers disagree, each
image's two predictions, the exact log p(x) and the bound -U(x) (the mean of 20 draws) over all test images,
the quadrature's reports and the seconds it took.

    python benchmarks/m2_exact_2d.py --data-dir /work/shared/data/mnist-full
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from dataclasses import asdict
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vaelib import m2  # noqa: E402
from vaelib.config import ModelConfig  # noqa: E402
from vaelib.data import load_mnist  # noqa: E402
from vaelib.study import fit  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "m2_exact_2d.json"
SETTINGS = dict(config=ModelConfig(kind="m2", z_dim=2), epochs=20, labels=100, alpha=5000.0, seed=0)  # notebook 13's
HALF_WIDTH = 12.0  # the square [-12, 12]^2: at vaelib.exact's default 8, two test images held up to e^-2.8 of
# p(x|y) beyond |z| = 7.6 under some label (a wrong label's posterior lies far out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="full MNIST, as torchvision.datasets.MNIST(DIR) keeps it")
    a = p.parse_args()
    data = load_mnist("mnist", a.data_dir)
    options = {k: v for k, v in SETTINGS.items() if k != "config"}
    model, history = fit(data, SETTINGS["config"], None, **options)
    x, y = data.test_x, data.test_y
    started = time.perf_counter()
    log_px_given_y, reports = m2.exact_log_px_given_y(model, x, half_width=HALF_WIDTH)  # (C, N)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        q_label = torch.cat([model.classify(part).argmax(-1) for part in x.split(1000)])
        generator = torch.Generator().manual_seed(0)
        bound = torch.stack([torch.cat([-m2.unlabelled_loss(model, part, generator) for part in x.split(1000)])
                             for _ in range(20)]).mean(0)
    bayes_label = log_px_given_y.argmax(0)
    log_px = torch.logsumexp(log_px_given_y, 0) - math.log(m2.C)
    disagree = (q_label != bayes_label).nonzero()[:, 0]
    out = {
        "settings": {k: (asdict(v) if k == "config" else v) for k, v in SETTINGS.items()},
        "data": "full MNIST, all 10,000 test images (binarised once with vaelib.data's fixed test seed)",
        "accuracy_q": (q_label == y).double().mean().item(),
        "accuracy_bayes": (bayes_label == y).double().mean().item(),
        "n_disagree": len(disagree), "disagree": disagree.tolist(),
        "right_q_when_disagree": int((q_label[disagree] == y[disagree]).sum()),
        "right_bayes_when_disagree": int((bayes_label[disagree] == y[disagree]).sum()),
        "q_label": q_label.tolist(), "bayes_label": bayes_label.tolist(),
        "mean_log_px": log_px.mean().item(), "mean_bound_20_draws": bound.mean().item(),
        "validation_accuracy": history.metrics["validation_accuracy"][-1],
        "quadrature": {"seconds": seconds, "converged": all(r["converged"] for r in reports),
                       "max_image_change": max(r["max_image_change"] for r in reports),
                       "edge_images": max(r["edge_images"] for r in reports), "half_width": HALF_WIDTH},
        "threads": torch.get_num_threads(), "torch_version": torch.__version__, "machine": platform.machine(),
    }
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"q(y|x) {out['accuracy_q']:.4f}, Bayes p(y|x) {out['accuracy_bayes']:.4f}, {len(disagree)} disagree; "
          f"log p(x) {out['mean_log_px']:.2f}, -U {out['mean_bound_20_draws']:.2f}; quadrature {seconds:.0f} s")


if __name__ == "__main__":
    main()
