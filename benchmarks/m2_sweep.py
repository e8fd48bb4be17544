"""A sweep of M2's settings at 100 labels (issue 22): runs `python -m vaelib train --model m2` once per setting,
at most --jobs at a time, each on one thread (OMP_NUM_THREADS=1, VAELIB_ADAPT_THREADS=0), and collects every run's
metrics.json into benchmarks/results/m2_sweep.json (merged by name: a rerun replaces its row).

Settings are chosen on the validation split alone. Test accuracy is recorded for every run because the trainer
prints it, but the sweep's choices read only `best_validation` and `final_validation`.

    python benchmarks/m2_sweep.py --data-dir DIR --out /tmp/m2sweep \
        --run a50_e8 "--epochs 8 --z-dim 16" --run a5_e8 "--epochs 8 --z-dim 16 --alpha 5"
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "m2_sweep.json"
BASE = ["--model", "m2", "--labels", "100", "--data", "mnist", "--no-progress", "--overwrite"]


def variant_loss(weight: float, sample_y: bool):
    """m2_loss changed in one of two ways, as experiments outside vaelib's options (issue 22's failure modes):
    - the labelled term (L + alpha CE) multiplied by `weight`: weight = N_l / N_u (1/500 at 100 labels) gives the
      labelled bound L eq. 9's weight per epoch (vaelib.m2's labelled_loss docstring);
    - sample_y: U(x) estimated with one label y ~ q(y|x) per image instead of the sum over all ten,
      -ELBO(x, y) - H(q(y|x)). Its value is an unbiased estimate of U(x), but the draw carries no gradient, so
      the classifier learns from the unlabelled images only through the entropy, which pulls q(y|x) towards
      uniform (the sum's term, sum_y q(y|x) (-ELBO(x, y)), is what rewards a classifier that names labels under
      which the image is likely)."""
    import torch

    from vaelib import m2

    def loss(model, batch, generator=None, cfg=None):
        if sample_y:
            logits = model.classify(batch.x)
            y = torch.multinomial(torch.softmax(logits.detach(), -1), 1, generator=generator)[:, 0]
            terms = m2.labelled_elbo(model, batch.x, m2.one_hot(y, batch.x), generator)
            bound = terms.elbo + m2.entropy(logits)
            kl = terms.kl + math.log(m2.C) - m2.entropy(logits)
        else:
            terms = m2.unlabelled_terms(model, batch.x, generator)
            bound, kl = terms.elbo, terms.kl
        total = -bound.mean()
        if len(batch.y):
            total = total + weight * m2.labelled_loss(model, batch.x_labelled, batch.y, batch.alpha, generator).mean()
        return total, torch.stack([-bound.mean(), kl.mean()]).detach()

    return loss


def child(weight: float, sample_y: bool, argv: list[str]) -> int:
    """`python -m vaelib` with M2's loss changed (variant_loss); vaelib itself is not changed."""
    from dataclasses import replace

    from vaelib import registry
    from vaelib.__main__ import main as vaelib_main
    import vaelib.m2  # noqa: F401  registers the kind

    registry.KINDS["m2"] = replace(registry.KINDS["m2"], loss=variant_loss(weight, sample_y))
    return vaelib_main(argv)


def run(name: str, args: str, out: Path, data_dir: str, collect: bool = False) -> dict:
    """Train one setting (or, with collect, read a finished run of it from out/name) and return its row."""
    folder = out / name
    words = shlex.split(args)
    weight, sample_y = None, "--sample-y" in words
    if "--labelled-weight" in words:
        i = words.index("--labelled-weight")
        weight, words = float(words[i + 1]), words[:i] + words[i + 2:]
    words = [w for w in words if w != "--sample-y"]
    changed = weight is not None or sample_y
    variant = {"weight": weight if weight is not None else 1.0, "sample_y": sample_y}  # child's (variant_loss's)
    child_args = ["--child", json.dumps(variant), "--"]  # one argument, read by name
    head = ([sys.executable, str(Path(__file__).resolve()), *child_args] if changed else
            [sys.executable, "-m", "vaelib"])
    command = [*head, "train", *BASE, *words, "--data-dir", data_dir, "--out", str(folder)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VAELIB_ADAPT_THREADS": "0", "PYTHONPATH": str(ROOT)}
    wall = None
    if not collect:
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(f"{name} failed:\n{done.stderr[-2000:]}")
    m = json.loads((folder / "metrics.json").read_text())
    if m.get("complete") is False:
        raise RuntimeError(f"{folder} stopped at step {m['steps_done']:,} of {m['steps_total']:,}: finish it with "
                           f"python -m vaelib train --resume {folder}")
    validation = m["history"]["metrics"]["validation_accuracy"]
    best = max(range(len(validation)), key=validation.__getitem__)
    cfg = m["config"]
    return {"name": name,
            "command": shlex.join([*(["python", "benchmarks/m2_sweep.py", *child_args] if changed else
                                     ["python", "-m", "vaelib"]), "train", *BASE[:-1], *words]),
            "labelled_weight": weight if weight is not None else 1.0, "sample_y": sample_y,
            "seed": m["seed"], "epochs": m["epochs"], "steps": m["steps"], "alpha": m["alpha"],
            "hidden": cfg["model"]["hidden"], "z_dim": cfg["model"]["z_dim"], "lr": cfg["lr"],
            "batch_size": cfg["batch_size"],
            "best_validation": validation[best], "best_epoch": best + 1,
            "final_validation": m["validation_accuracy"], "validation_per_epoch": validation,
            "test_accuracy": m["test_accuracy"], "test_neg_elbo": m["test_neg_elbo"],
            "train_seconds": round(m["train_seconds"], 1), "wall_seconds": None if wall is None else round(wall, 1),
            "train_images_per_second": round(m["train_images_per_second"]),
            "threads": 1, "device": m["device"], "torch_version": m["torch_version"]}


def main() -> None:
    if len(sys.argv) > 3 and sys.argv[1] == "--child":  # --child '{"weight": W, "sample_y": S}' -- train ...
        sys.exit(child(argv=sys.argv[4:], **json.loads(sys.argv[2])))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", nargs=2, action="append", metavar=("NAME", "ARGS"), required=True,
                   help="a setting: its name and the train arguments beyond --model m2 --labels 100; "
                        "--labelled-weight W among them multiplies the labelled term, --sample-y draws one label per "
                        "unlabelled image instead of summing over all ten (variant_loss)")
    p.add_argument("--data-dir", required=True, help="full MNIST, as torchvision.datasets.MNIST(DIR) keeps it")
    p.add_argument("--out", type=Path, required=True, help="where the run folders go (outside the repository)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each")
    p.add_argument("--collect", action="store_true",
                   help="train nothing: read each named run from --out, where it finished (after a --resume, say)")
    a = p.parse_args()
    with ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(lambda r: run(r[0], r[1], a.out, a.data_dir, a.collect), a.run))
    table = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": []}
    names = {r["name"] for r in rows}
    table["runs"] = [r for r in table["runs"] if r["name"] not in names] + rows
    table["note"] = ("M2 at 100 labels on full MNIST, chosen on the validation split (10,000 training images held "
                     "out); test accuracy recorded, not used for choosing. Each run on 1 thread, 2 runs at a time "
                     "on a 2-core machine. benchmarks/m2_sweep.py")
    RESULTS.write_text(json.dumps(table, indent=1) + "\n")
    for r in rows:
        print(f"{r['name']:<22} best val {r['best_validation']:.4f} (ep {r['best_epoch']}) final val "
              f"{r['final_validation']:.4f} test {r['test_accuracy']:.4f} {r['train_seconds']:.0f} s "
              f"{r['train_images_per_second']} img/s")


if __name__ == "__main__":
    main()
