"""The command line: `python -m vaelib train ...` and `python -m vaelib evaluate MODEL ...`.

Run `python -m vaelib train --help` for the options; the README explains the defaults. A training
run writes its folder after every epoch (model.pt, train_state.pt, metrics.json, each replaced
atomically), so an interrupted run loses at most an epoch; Ctrl-C stops it between two steps, saves
it, and prints the command that continues it: `python -m vaelib train --resume DIR`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

import torch

from . import __version__, registry
from .config import ModelConfig, TrainConfig, allowed, pick_device, seed_everything
from .data import DataError, load_mnist
from .evaluate import evaluating, per_image_iwae, per_image_terms
from .exact import converged_log_px, covering_half_width
from .model import CheckpointError, atomic_write, build_model, load_checkpoint, read_checkpoint, save_checkpoint
from .train import TrainingDiverged, TrainingInterrupted, make_batches, train

RUN_FILES = ("metrics.json", "model.pt", "train_state.pt")
TRAIN_STATE = "train_state.pt"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def options(config_class) -> list:
    """The fields of a settings dataclass that are command-line options."""
    return [f for f in fields(config_class) if f.metadata.get("cli", True)]


def flag(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


# What --resume takes from the run itself, and its flag; giving any of these with --resume is an error.
RUN_SETTINGS = {f.name: flag(f) for c in (TrainConfig, ModelConfig) for f in options(c) if f.name != "device"}
RUN_SETTINGS.update(data_dir="--data-dir", out="--out", overwrite="--overwrite")


def add_config_options(parser: argparse.ArgumentParser, config_class, **defaults) -> None:
    """One option per field of config_class, with the field's default, help and choices; `defaults` overrides."""
    for f in options(config_class):
        meta, kwargs = f.metadata, dict(dest=f.name, default=defaults.get(f.name, f.default), help=f.metadata["help"])
        if meta["choices"] is not None:
            kwargs["choices"] = list(allowed(meta["choices"]))
        elif f.default is not None and not isinstance(f.default, tuple):
            kwargs["type"] = type(f.default)
        parser.add_argument(flag(f), **{**kwargs, **meta["argparse"]})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vaelib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model and write metrics, weights and figures to --out")
    add_config_options(t, TrainConfig, lr=None)  # lr's default depends on the optimizer (train_config)
    add_config_options(t, ModelConfig)
    t.add_argument("--data-dir", **DATA_DIR)
    t.add_argument("--out", type=Path, default=None, help="run folder (default runs/<date-time>)")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    t.add_argument("--resume", type=Path, default=None, metavar="DIR",
                   help="continue the interrupted run in DIR, with its own settings")
    t.add_argument("--no-progress", action="store_true", help="a line per epoch instead of a progress bar")
    e = sub.add_parser("evaluate", help="reload a trained model and print test metrics as JSON")
    e.add_argument("model", type=Path, help="a model.pt written by `train`")
    e.add_argument("--data", choices=["auto", "mnist", "sample"], default=None,
                   help="default: the source the model was trained on")
    e.add_argument("--data-dir", **DATA_DIR)
    e.add_argument("--iwae-k", type=int, default=1000)
    e.add_argument("--limit", type=positive_int, default=None,
                   help="N test images drawn at random with a fixed seed (the same N every time), not all")
    e.add_argument("--exact", action="store_true", help="add exact log p(x) by quadrature (z_dim 2 only)")
    e.add_argument("--per-image", type=Path, default=None, help="write one CSV row per test image")
    e.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: $VAELIB_DEVICE, else the "
                   "accelerator PyTorch reports, else cpu)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--no-progress", action="store_true")
    return parser


DATA_DIR = dict(type=Path, default=None, metavar="DIR",
                help="where full MNIST is, as torchvision.datasets.MNIST(DIR) keeps it (DIR/MNIST/raw); "
                     "default $VAELIB_DATA, else ~/.cache/vaelib; missing files are downloaded there")


def check_out_dir(out: Path, overwrite: bool) -> None:
    held = [name for name in RUN_FILES if (out / name).exists()]
    if not held or overwrite:
        return
    if (out / TRAIN_STATE).exists():
        raise SystemExit(f"error: {out} holds an unfinished run; continue it with `python -m vaelib train "
                         f"--resume {out}`, or pass --overwrite to start again")
    raise SystemExit(f"error: {out} already holds a run ({', '.join(held)}); choose another --out, "
                     f"or pass --overwrite to replace it")


def train_config(args) -> TrainConfig:
    """The TrainConfig the options describe (lr: 1e-3 for adam, 5e-3 for sgd, unless given)."""
    chosen = {f.name: getattr(args, f.name) for f in options(TrainConfig)}
    if args.lr is None:
        chosen["lr"] = 1e-3 if args.optimizer == "adam" else 5e-3
    model = ModelConfig(**{f.name: getattr(args, f.name) for f in options(ModelConfig)})
    return TrainConfig(**chosen, model=model, progress=not args.no_progress)


def cmd_train(args) -> dict:
    if args.resume is not None:
        return cmd_resume(args)
    out = args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    check_out_dir(out, args.overwrite)
    cfg = train_config(args)
    device = pick_device(cfg.device)
    data = load_mnist(cfg.data, args.data_dir)
    make_batches(data, cfg, torch.Generator())  # a batch larger than the training set, too many labels: refused now
    seed_everything(cfg.seed)
    model = build_model(cfg.model).to(device)
    origin = {"data_source": data.source, "data_dir": str(args.data_dir) if args.data_dir else None,
              "device": str(device)}
    return run(model, data, cfg, out, origin)


def cmd_resume(args) -> dict:
    """Continue the run in args.resume where it stopped, with the settings it was started with."""
    given = [flag_name for name, flag_name in RUN_SETTINGS.items() if getattr(args, name) != PARSER_DEFAULTS[name]]
    if given:
        raise SystemExit(f"error: --resume continues a run with its own settings; leave out {', '.join(given)}")
    out, state = args.resume, read_state(args.resume)
    origin = state["origin"]
    if args.device is not None and str(pick_device(args.device)) != origin["device"]:
        raise SystemExit(f"error: this run started on {origin['device']} and must go on there: its random "
                         f"numbers come from that device's generator; pass --device {origin['device']}")
    cfg = TrainConfig(**{**state["config"], "device": origin["device"], "progress": not args.no_progress})
    data = load_mnist(origin["data_source"], origin["data_dir"])
    model = build_model(cfg.model).to(origin["device"])
    print(f"vaelib: resuming {out} after step {state['step']:,} of {state['total']:,}")
    return run(model, data, cfg, out, origin, resume=state)


def read_state(out: Path) -> dict:
    path = out / TRAIN_STATE
    if not path.exists():
        done = (out / "metrics.json").exists() and json.loads((out / "metrics.json").read_text()).get("complete")
        raise SystemExit(f"error: {out} holds a finished run: there is nothing to resume" if done else
                         f"error: no {TRAIN_STATE} in {out}: nothing to resume (a run writes it after its first "
                         f"epoch); start the run again with --out {out} --overwrite")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != "vaelib-train-state-1":
            raise ValueError(f"format {state.get('format')!r}")
    except Exception as err:
        raise CheckpointError(f"{path} is not a vaelib training state or is damaged ({type(err).__name__}: "
                              f"{err}); start the run again with --out {out} --overwrite") from err
    return state


def run(model, data, cfg: TrainConfig, out: Path, origin: dict, resume: dict | None = None) -> dict:
    """Train, saving the run folder after every epoch; then write the final metrics, model and figures."""
    def save(state):
        write_run(out, model, {**state, "origin": origin}, complete=False)
        if not cfg.progress:
            h, bound = state["history"], f"-IWAE_{cfg.iwae_train_k}" if cfg.objective == "iwae" else "-ELBO"
            extra = "".join(f", {name.replace('_', ' ')} {values[-1]:.4f}" for name, values in h.get("metrics", {}).items())
            print(f"epoch {h['epoch'][-1]:g}: train {bound} {h['train_neg_elbo'][-1]:.2f}, test -ELBO "
                  f"{h['test_neg_elbo'][-1]:.2f} (KL {h['test_kl'][-1]:.2f}) nats per image{extra}", flush=True)

    out.mkdir(parents=True, exist_ok=True)
    try:
        history = train(model, data, cfg, resume=resume, on_record=save)
    except TrainingInterrupted as stop:
        write_run(out, model, {**stop.state, "origin": origin}, complete=False)
        print(f"\ninterrupted after step {stop.step:,} of {stop.total:,}: {out}/model.pt holds the model as it is "
              f"now. Continue with: python -m vaelib train --resume {out}", file=sys.stderr)
        raise SystemExit(130)
    try:
        metrics = run_metrics(model, data, cfg, history, torch.device(origin["device"]))
    except KeyboardInterrupt:
        raise SystemExit(f"\ninterrupted while scoring the trained model; {out}/model.pt holds it. Finish with: "
                         f"python -m vaelib train --resume {out}") from None
    write_run(out, model, {"history": history.asdict(), "config": asdict(cfg), "origin": origin}, metrics=metrics)
    figures = save_figures(model, data, history, out)
    print(results_block(metrics, out, figures))
    return metrics


def results_block(metrics: dict, out: Path, figures: list[str]) -> str:
    """What a finished run prints: its numbers (as in metrics.json) and the files it wrote."""
    data = "full MNIST" if metrics["data_source"] == "mnist" else "offline sample"
    seconds = metrics["train_seconds"]
    took = f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
    scores = [(f"-log p(x), IWAE estimate (K={metrics['iwae_k']:,})", f"{metrics['test_neg_log_px_iwae']:8.2f}")
              ] if "iwae_k" in metrics else []
    scores += [(f"{name.replace('_', ' ')} (q(y|x))", f"{metrics[name]:8.4f}")
               for name in ("test_accuracy", "validation_accuracy") if name in metrics]
    return "\n".join([
        f"results ({data}, {metrics['n_test']:,} test images; nats per image):",
        f"  {'test -ELBO':<36}{metrics['test_neg_elbo']:8.2f}",
        *(f"  {name:<36}{value}" for name, value in scores),
        f"  trained {metrics['epochs']:g} epoch{'' if metrics['epochs'] == 1 else 's'} ({metrics['steps']:,} steps) "
        f"in {took}, {metrics['train_images_per_second']:,.0f} images/s",
        f"  written to {out}/: metrics.json, model.pt",
        f"  figures: {', '.join(figures)}",
    ])


def write_run(out: Path, model, state: dict, complete: bool = True, metrics: dict | None = None) -> None:
    """The run folder, each file replaced atomically: train_state.pt (while unfinished), model.pt, metrics.json."""
    if complete:
        (out / TRAIN_STATE).unlink(missing_ok=True)
    else:
        atomic_write(out / TRAIN_STATE, lambda path: torch.save(state, path))
    save_checkpoint(out / "model.pt", model, data_source=state["origin"]["data_source"], seed=state["config"]["seed"])
    summary = metrics or {"steps_done": state["step"], "steps_total": state["total"],
                          "config": state["config"], "history": state["history"]}
    text = json.dumps({"complete": complete, **summary}, indent=2) + "\n"
    atomic_write(out / "metrics.json", lambda path: Path(path).write_text(text))


def run_metrics(model, data, cfg: TrainConfig, history, device) -> dict:
    """The numbers of a finished run: the IWAE estimate of log p(x), or the model kind's own (Kind.final)."""
    started, final = time.perf_counter(), registry.KINDS[cfg.model.kind].final
    if final is not None:
        scores = final(model, data, cfg)
    else:
        log_px = per_image_iwae(model, data.test_x.to(device), cfg.iwae_k, progress=cfg.progress)
        scores = {"iwae_k": cfg.iwae_k, "test_neg_log_px_iwae": -log_px.mean().item()}
    return {
        "data_source": data.source, "n_train": len(data.train_x), "n_test": len(data.test_x),
        "epochs": history.epoch[-1], "steps": history.step[-1],
        "train_neg_elbo": history.train_neg_elbo[-1], "test_neg_elbo": history.test_neg_elbo[-1],
        "test_kl": history.test_kl[-1], **scores,
        "iwae_seconds" if final is None else "final_seconds": time.perf_counter() - started,
        "train_seconds": history.train_seconds,
        # B images per step over the optimiser's seconds; for M2 the unlabelled batch's images only (vaelib.m2)
        "train_images_per_second": history.train_images / history.train_seconds,
        "device": str(device), "torch_version": torch.__version__, "vaelib_version": __version__,
        "seed": cfg.seed, "config": {**asdict(cfg), "device": str(device)},
        "history": history.asdict(),
    }


def save_figures(model, data, history, out: Path) -> list[str]:
    """Write the run's figures (the VAE's, or the model kind's own: Kind.figures) as PNGs in `out`; returns their
    file names."""
    import matplotlib

    matplotlib.use("Agg")
    with evaluating(model):  # the model stays on its device; the plots copy their inputs there
        figures = (registry.KINDS[model.config.kind].figures or vae_figures)(model, data, history)
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=100, bbox_inches="tight")
        matplotlib.pyplot.close(fig)
    return [f"{name}.png" for name in figures]


def vae_figures(model, data, history) -> dict:
    """Training curves, reconstructions, samples and, for a 2-D latent space, the decoded grid and the embedding."""
    from . import plot

    figures = {"elbo_history": plot.plot_history(history),
               "reconstructions": plot.plot_reconstructions(model, data.test_x, data.test_y),
               "prior_samples": plot.plot_prior_samples(model)}
    if model.config.z_dim == 2:
        figures["latent_grid"] = plot.plot_latent_grid(model)
        figures["embedding"] = plot.plot_embedding(model, data.test_x, data.test_y)
    return figures


def cmd_evaluate(args) -> dict:
    device = pick_device(args.device)
    saved = read_checkpoint(args.model)
    model = load_checkpoint(args.model, saved=saved).to(device).eval()
    if not registry.KINDS[model.config.kind].evaluates:
        raise ValueError(f"evaluate scores models of the VAE protocol (vaelib.model.LatentVariableModel); a "
                         f"{model.config.kind!r} model is not one (vaelib.registry.Kind.evaluates): its numbers, "
                         f"test accuracy and bound for M2, are in its run's metrics.json")
    source = args.data or saved.get("data_source", "auto")
    data = load_mnist(source, args.data_dir)
    chosen = test_subset(len(data.test_x), args.limit)
    x, labels = data.test_x[chosen].to(device), data.test_y[chosen]
    seed_everything(args.seed)
    elbo = per_image_terms(model, x).elbo
    log_px, se = per_image_iwae(model, x, args.iwae_k, progress=not args.no_progress, return_se=True)
    result = {"model": str(args.model), "data_source": data.source, "n_test": len(x),
              "test_elbo": elbo.mean().item(), "iwae_k": args.iwae_k, "test_log_px_iwae": log_px.mean().item()}
    columns = {"index": test_indices(data)[chosen], "label": labels, "elbo": elbo,
               "log_px_iwae": log_px, "log_px_iwae_se": se}
    if args.exact:
        # [-8, 8]^2, or wider where q puts codes beyond it (a learned prior can)
        exact, change, grid = converged_log_px(model, x, half_width=covering_half_width(model, x))
        result.update(test_log_px_exact=exact.mean().item(), exact_grid=grid)
        columns.update(log_px_exact=exact, log_px_exact_last_change=change)
    if args.per_image:
        write_csv(args.per_image, columns)
        result["per_image"] = str(args.per_image)
    return result


def test_subset(n: int, limit: int | None, seed: int = 0) -> torch.Tensor:
    """Positions of the test images to score: all of them, or `limit` of them drawn at random with a fixed
    seed (the same ones every time) and kept in file order. Not the first `limit`: MNIST's test file is
    ordered by writer, and its two halves score differently."""
    if limit is None or limit >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].sort().values


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


PARSER_DEFAULTS = vars(build_parser().parse_args(["train"]))


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
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
