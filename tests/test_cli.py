"""The command line, end to end on the offline sample (tiny budgets)."""

import csv
import json

import pytest
import torch

from vaelib.__main__ import main
from vaelib.config import ModelConfig
from vaelib.model import VAE, save_checkpoint

KEYS = {"data_source", "n_train", "n_test", "epochs", "steps", "train_neg_elbo", "test_neg_elbo", "iwae_k",
        "test_neg_log_px_iwae", "train_seconds", "train_images_per_second", "device", "torch_version", "seed"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    assert main(["train", "--data", "sample", "--steps", "40", "--iwae-k", "5", "--out", str(out),
                 "--no-progress"]) == 0
    return out


def test_train_writes_metrics_weights_and_figures(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert KEYS <= metrics.keys()
    assert metrics["data_source"] == "sample" and metrics["steps"] == 40 and metrics["n_test"] == 2000
    assert metrics["test_neg_log_px_iwae"] <= metrics["test_neg_elbo"] + 1.0  # IWAE_5 >= ELBO, up to MC noise
    names = {"elbo_history", "reconstructions", "prior_samples", "latent_grid", "embedding"}
    assert {p.stem for p in run_dir.glob("*.png")} == names
    torch.load(run_dir / "model.pt", weights_only=True)


def test_train_refuses_to_overwrite_a_run(run_dir):
    before = (run_dir / "metrics.json").read_text()
    with pytest.raises(SystemExit, match="already holds a run.*--overwrite"):
        main(["train", "--data", "sample", "--steps", "1", "--out", str(run_dir), "--no-progress"])
    assert (run_dir / "metrics.json").read_text() == before


def test_evaluate_prints_json_and_writes_per_image_csv(run_dir, capsys):
    table = run_dir / "per_image.csv"
    assert main(["evaluate", str(run_dir / "model.pt"), "--iwae-k", "10", "--limit", "30",
                 "--per-image", str(table), "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n_test"] == 30 and result["data_source"] == "sample"
    assert result["test_log_px_iwae"] >= result["test_elbo"] - 1.0
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 30 and {"index", "label", "elbo", "log_px_iwae"} <= rows[0].keys()
    assert rows[0]["index"] == "4"  # the sample's first test image is digit 4 of the MNIST test file


def test_evaluate_a_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "none.pt")]) == 1
    assert "no checkpoint at" in capsys.readouterr().err


def test_train_without_2d_latent_skips_the_2d_figures(tmp_path):
    out = tmp_path / "r10"
    main(["train", "--data", "sample", "--steps", "2", "--z-dim", "10", "--iwae-k", "2", "--out", str(out),
          "--no-progress"])
    assert {p.stem for p in out.glob("*.png")} == {"elbo_history", "reconstructions", "prior_samples"}


def test_2d_figures_of_a_10d_model_say_what_to_do():
    from vaelib import plot

    model = VAE(ModelConfig(z_dim=10))
    with pytest.raises(ValueError, match="needs a 2-D latent space.*z_dim=10.*--z-dim 2"):
        plot.plot_latent_grid(model)
    with pytest.raises(ValueError, match="needs a 2-D latent space"):
        plot.plot_embedding(model, torch.rand(3, 784), torch.zeros(3))


def test_exact_needs_a_2d_model(tmp_path, capsys):
    save_checkpoint(tmp_path / "m.pt", VAE(ModelConfig(z_dim=3)), data_source="sample")
    assert main(["evaluate", str(tmp_path / "m.pt"), "--exact", "--limit", "5", "--iwae-k", "2",
                 "--no-progress"]) == 1
    assert "z_dim=3" in capsys.readouterr().err
