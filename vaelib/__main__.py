"""The command line: `python -m vaelib train ...` and `python -m vaelib evaluate MODEL ...`.

Run `python -m vaelib train --help` for the options; the README explains the defaults.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from . import __version__
from .config import ModelConfig, TrainConfig, pick_device, seed_everything
from .data import DataError, describe, load_mnist
from .model import VAE, CheckpointError, load_checkpoint, save_checkpoint
from .train import TrainingDiverged, per_image_elbo, per_image_iwae, train

RUN_FILES = ("metrics.json", "model.pt")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vaelib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a VAE and write metrics, weights and figures to --out")
    t.add_argument("--data", choices=["auto", "mnist", "sample"], default="auto")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=20)
    budget.add_argument("--steps", type=int, default=None, help="optimiser steps (overrides --epochs)")
    t.add_argument("--z-dim", type=int, default=2)
    t.add_argument("--batch-size", type=int, default=100)
    t.add_argument("--lr", type=float, default=None, help="default 1e-3 for adam, 5e-3 for sgd")
    t.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    t.add_argument("--lr-schedule", choices=["decay", "constant"], default="decay",
                   help="decay: constant, then linear to 0 over the last quarter of the steps")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    t.add_argument("--iwae-k", type=int, default=1000, help="importance samples for log p(x) at the end")
    t.add_argument("--out", type=Path, default=None, help="run folder (default runs/<date-time>)")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    e = sub.add_parser("evaluate", help="reload a trained model and print test metrics as JSON")
    e.add_argument("model", type=Path, help="a model.pt written by `train`")
    e.add_argument("--data", choices=["auto", "mnist", "sample"], default=None,
                   help="default: the source the model was trained on")
    e.add_argument("--iwae-k", type=int, default=1000)
    e.add_argument("--limit", type=int, default=None, help="only the first N test images")
    e.add_argument("--exact", action="store_true", help="add exact log p(x) by quadrature (z_dim 2 only)")
    e.add_argument("--per-image", type=Path, default=None, help="write one CSV row per test image")
    e.add_argument("--device", default=None)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--no-progress", action="store_true")
    return parser


def check_out_dir(out: Path, overwrite: bool) -> None:
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held and not overwrite:
        raise SystemExit(f"error: {out} already holds a run ({', '.join(held)}); choose another --out, "
                         f"or pass --overwrite to replace it")


def cmd_train(args) -> dict:
    out = args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    check_out_dir(out, args.overwrite)
    lr = args.lr if args.lr is not None else (1e-3 if args.optimizer == "adam" else 5e-3)
    cfg = TrainConfig(data=args.data, epochs=args.epochs, steps=args.steps, batch_size=args.batch_size,
                      lr=lr, optimizer=args.optimizer, lr_schedule=args.lr_schedule, seed=args.seed,
                      device=args.device,
                      iwae_k=args.iwae_k, progress=not args.no_progress, model=ModelConfig(z_dim=args.z_dim))
    device = pick_device(cfg.device)
    data = load_mnist(cfg.data)
    seed_everything(cfg.seed)
    model = VAE(cfg.model).to(device)
    history = train(model, data, cfg)
    metrics = run_metrics(model, data, cfg, history, device)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "model.pt", model, data_source=data.source, seed=cfg.seed)
    save_figures(model, data, history, out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {out}/metrics.json, model.pt and figures")
    return metrics


def run_metrics(model, data, cfg: TrainConfig, history, device) -> dict:
    test_x = data.test_x.to(device)
    started = time.perf_counter()
    log_px = per_image_iwae(model, test_x, cfg.iwae_k, progress=cfg.progress)
    return {
        "data_source": data.source, "n_train": len(data.train_x), "n_test": len(data.test_x),
        "epochs": history.epoch[-1], "steps": history.step[-1],
        "train_neg_elbo": history.train_neg_elbo[-1], "test_neg_elbo": history.test_neg_elbo[-1],
        "iwae_k": cfg.iwae_k, "test_neg_log_px_iwae": -log_px.mean().item(),
        "iwae_seconds": time.perf_counter() - started,
        "train_seconds": history.train_seconds,
        "train_images_per_second": history.train_images / history.train_seconds,
        "device": str(device), "torch_version": torch.__version__, "vaelib_version": __version__,
        "seed": cfg.seed, "config": {**asdict(cfg), "device": str(device)},
        "history": asdict(history),
    }


def save_figures(model, data, history, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from . import plot

    model = model.cpu().eval()
    figures = {"elbo_history": plot.plot_history(history),
               "reconstructions": plot.plot_reconstructions(model, data.test_x),
               "prior_samples": plot.plot_prior_samples(model)}
    if model.config.z_dim == 2:
        figures["latent_grid"] = plot.plot_latent_grid(model)
        figures["embedding"] = plot.plot_embedding(model, data.test_x, data.test_y)
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=100, bbox_inches="tight")
        matplotlib.pyplot.close(fig)


def cmd_evaluate(args) -> dict:
    device = pick_device(args.device)
    model = load_checkpoint(args.model).to(device).eval()
    source = args.data or torch.load(args.model, weights_only=True).get("data_source", "auto")
    data = load_mnist(source)
    x, labels = data.test_x[:args.limit].to(device), data.test_y[:args.limit]
    seed_everything(args.seed)
    elbo = per_image_elbo(model, x)
    log_px, se = per_image_iwae(model, x, args.iwae_k, progress=not args.no_progress, return_se=True)
    result = {"model": str(args.model), "data_source": data.source, "n_test": len(x),
              "test_elbo": elbo.mean().item(), "iwae_k": args.iwae_k, "test_log_px_iwae": log_px.mean().item()}
    columns = {"index": test_indices(data)[:len(x)], "label": labels, "elbo": elbo,
               "log_px_iwae": log_px, "log_px_iwae_se": se}
    if args.exact:
        from .exact import converged_log_px

        exact, grid = converged_log_px(model, x)
        result.update(test_log_px_exact=exact.mean().item(), exact_grid=grid)
        columns["log_px_exact"] = exact
    if args.per_image:
        write_csv(args.per_image, columns)
        result["per_image"] = str(args.per_image)
    return result


def test_indices(data) -> torch.Tensor:
    """Each test image's index in its source file (the sample's test images are every 5th digit)."""
    n = len(data.test_x)
    return torch.arange(n) * 5 + 4 if data.source == "sample" else torch.arange(n)


def write_csv(path: Path, columns: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = zip(*[c.tolist() for c in columns.values()])
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            cmd_train(args)
        else:
            print(json.dumps(cmd_evaluate(args)))
    except (DataError, CheckpointError, TrainingDiverged, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
