"""Put finished `python -m vaelib train --model m2` runs where `vaelib.study.fit` finds them (runs/cache/<key>), so
that a notebook loads them with fit(data, ModelConfig(kind="m2", ...), None, epochs=..., labels=..., ...) instead
of training them again. `python -m vaelib.runs publish KEY` then copies them into vaelib/pretrained.

The command line and `fit` run the same trainer (vaelib.train.train) on the same TrainConfig; only the keys they
file a model under are made differently. This script rebuilds, from the run's metrics.json, the TrainConfig that
`fit(data, model, steps, **options)` builds from the run's settings, checks that every setting the run recorded
survives the rebuild unchanged, and saves the run's model and history under fit's key for the data the run
recorded. (That `fit` then trains the same weights bit for bit was checked once by hand, on the sample: a
command-line run and `fit` from its settings gave identical state_dicts.)

    python benchmarks/m2_publish.py /tmp/m2r1/h500_z50_a5000_e30_s0 ...
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vaelib import runs  # noqa: E402
from vaelib.config import ModelConfig, TrainConfig  # noqa: E402
from vaelib.model import load_checkpoint  # noqa: E402
from vaelib.study import fit_label, fit_settings  # noqa: E402
from vaelib.train import History  # noqa: E402

FIT_DEFAULTED = ("data", "device", "progress")  # TrainConfig fields fit leaves at their defaults (data: its source)


def fit_config(run_config: dict) -> TrainConfig:
    """The TrainConfig `fit(data, model, steps, **options)` builds for the run's settings."""
    options = {k: v for k, v in run_config.items() if k not in ("model", "steps", *FIT_DEFAULTED)}
    return TrainConfig(steps=run_config["steps"], model=ModelConfig(**run_config["model"]), **options)


def publish(folder: Path) -> str:
    metrics = json.loads((folder / "metrics.json").read_text())
    if not metrics.get("complete"):
        raise SystemExit(f"error: {folder} is not a finished run (resume it with python -m vaelib resume {folder})")
    source = metrics["data_source"]  # what the run trained on ("mnist", or "sample" when "auto" fell back to it)
    cfg = fit_config(metrics["config"])
    given = {k: v for k, v in metrics["config"].items() if k not in FIT_DEFAULTED}
    rebuilt = {k: v for k, v in json.loads(json.dumps(asdict(cfg))).items() if k not in FIT_DEFAULTED}
    if given != rebuilt:
        raise SystemExit(f"error: {folder}'s settings do not rebuild as fit's: {given} != {rebuilt}")
    model, history = load_checkpoint(folder / "model.pt"), History(**metrics["history"])
    if model.config != cfg.model:
        raise SystemExit(f"error: {folder}'s model is not the shape its settings name")
    settings = fit_settings(cfg, source)
    key = runs.settings_key(settings)
    runs.save(runs.cache_dir() / key, settings, model, history, fit_label(cfg, "dynamic"))
    return key


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path, help="finished run folders (--out of python -m vaelib train)")
    a = p.parse_args()
    for folder in a.folders:
        print(f"{folder.name}: runs/cache/{publish(folder)}")


if __name__ == "__main__":
    main()
