"""Trained models kept by their settings: a model is trained once and loaded after.

`trained(settings, fit)` returns the model `fit()` trains, with its History, from the first of:
1. `vaelib/pretrained/<key>/`, the models committed with the course (a fresh clone runs the studies of
   notebooks 5 to 10 in seconds);
2. `runs/cache/<key>/` (under `runs_dir()`): what this machine trained before;
3. `fit()`, run now, the model then saved in `runs/cache/<key>/`.

`key` hashes `settings`, everything the model's numbers depend on (shape, optimiser, budget, seed, data,
...); `settings.json` beside the model holds the dict itself, checked on every load. A changed setting is
another key, so it trains anew; the printed line says which of the three happened. After changing how `fit`
trains, add a field to the settings (e.g. "version": 2). The device is not a setting. In the smoke setting
nothing is loaded or saved; VAELIB_PRETRAINED=0 skips the committed models; `python -m vaelib.runs publish
KEY ...` copies models from runs/cache into vaelib/pretrained.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, NamedTuple

from torch import nn

from .config import ModelConfig, runs_dir, smoke
from .model import CheckpointError, load_checkpoint, save_checkpoint
from .train import History

PRETRAINED = Path(__file__).resolve().parent / "pretrained"


class Trained(NamedTuple):
    model: nn.Module  # on the CPU when loaded; where fit() left it when trained now
    history: History
    source: str  # "pretrained", "cache" or "trained"


def settings_key(settings: dict) -> str:
    """12 hex digits of the SHA-256 of the settings as canonical JSON (sorted keys)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_dir() -> Path:
    return Path(runs_dir()) / "cache"


def stores() -> list[tuple[str, Path]]:
    """Where trained models are looked for, in order."""
    skip_committed = os.environ.get("VAELIB_PRETRAINED", "1") in ("0", "false", "False")
    return ([] if skip_committed else [("pretrained", PRETRAINED)]) + [("cache", cache_dir())]


def canonical(settings: dict) -> dict:
    """The settings as they read back from JSON (tuples become lists), to compare with a saved copy."""
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def load(folder: Path, settings: dict) -> tuple[nn.Module, History] | None:
    """The model and history saved in `folder` for exactly these settings, else None."""
    try:
        saved = json.loads((folder / "settings.json").read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if saved != canonical(settings):
        return None  # another model under the same key: trained anew below, never mistaken for this one
    try:
        history = History(**json.loads((folder / "history.json").read_text()))
        model = load_checkpoint(folder / "model.pt").eval()
    except (OSError, ValueError, TypeError, KeyError, CheckpointError):
        return None  # damaged or from another version of vaelib: trained anew, which replaces it
    shape = settings.get("model")
    if isinstance(shape, dict) and ModelConfig(**shape) != model.config:
        return None
    return model, history


def save(folder: Path, settings: dict, model: nn.Module, history: History, label: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "model.pt", model)  # CPU copies of the weights; the model stays where it is
    (folder / "history.json").write_text(json.dumps(history.asdict()))
    text = json.dumps({"label": label, "settings": canonical(settings)}, indent=1, sort_keys=True)
    (folder / "settings.json").write_text(text + "\n")


def shown(path: Path) -> str:
    """The path as a reader knows it: relative to the package's checkout or to runs_dir()'s parent, whichever is
    nearer (runs_dir may lie above the checkout, or the other way round), never this machine's."""
    relative = [path.relative_to(base) for base in (PRETRAINED.parents[1], Path(runs_dir()).parent)
                if path.is_relative_to(base)]
    return str(min(relative, key=lambda p: len(p.parts))) if relative else path.name


def trained(settings: dict, fit: Callable[[], tuple[nn.Module, History]], label: str = "model") -> Trained:
    """The model `fit()` trains for `settings`, loaded when it was trained before (see the module's docstring).

    fit() must seed itself from the settings and return (model, history); a VAE, whose checkpoint
    holds its shape. Prints one line: `label`, and whether the model was loaded or trained now.
    """
    key = settings_key(settings)
    if not smoke():
        for source, store in stores():
            found = load(store / key, settings)
            if found is not None:
                print(f"{label}: loaded from {shown(store / key)} (trained earlier with these settings)")
                return Trained(*found, source)
    started = time.perf_counter()
    model, history = fit()
    seconds = time.perf_counter() - started
    if smoke():
        print(f"{label}: trained now in {seconds:.0f} s (smoke setting: not cached)")
    else:
        save(cache_dir() / key, settings, model, history, label)
        print(f"{label}: trained now in {seconds:.0f} s; saved in {shown(cache_dir() / key)}, "
              "loaded from there next time")
    return Trained(model, history, "trained")


def publish(keys: list[str]) -> None:
    """Copy runs/cache/<key> into vaelib/pretrained/<key> for each key (to commit them with the course)."""
    for key in keys:
        source = cache_dir() / key
        if not (source / "settings.json").exists():
            raise SystemExit(f"error: no trained model in {shown(source)}; run the notebook that trains it first")
        shutil.copytree(source, PRETRAINED / key, dirs_exist_ok=True)
        print(f"{shown(PRETRAINED / key)}: {json.loads((source / 'settings.json').read_text()).get('label', '')}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vaelib.runs", description="the cache of trained models")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the models in vaelib/pretrained and runs/cache, with their labels")
    p = sub.add_parser("publish", help="copy runs/cache/KEY into vaelib/pretrained/KEY")
    p.add_argument("keys", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "publish":
        publish(args.keys)
        return
    for source, store in stores():
        for folder in sorted(store.glob("*/settings.json")):
            print(f"{source:10s} {folder.parent.name}  {json.loads(folder.read_text()).get('label', '')}")


if __name__ == "__main__":
    main()
