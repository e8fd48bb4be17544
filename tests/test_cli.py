"""The command line, end to end on the offline sample (tiny budgets)."""

import contextlib
import csv
import io
import json
import signal
import subprocess
import sys

import pytest
import torch

from vaelib.__main__ import main
from vaelib.config import ModelConfig
from vaelib.model import VAE, load_checkpoint, save_checkpoint

PLAIN_HISTORY = ["epoch", "step", "train_neg_elbo", "train_kl", "test_neg_elbo", "test_kl", "train_seconds",
                 "train_images"]  # a plain VAE's history, as written before History.metrics existed
KEYS = {"data_source", "n_train", "n_test", "epochs", "steps", "train_neg_elbo", "test_neg_elbo", "iwae_k",
        "test_neg_log_px_iwae", "train_seconds", "train_images_per_second", "device", "torch_version", "seed"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run: its folder and what it printed."""
    out = tmp_path_factory.mktemp("run") / "r"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", "--data", "sample", "--steps", "40", "--iwae-k", "5", "--out", str(out),
                     "--no-progress"]) == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def run_dir(trained):
    return trained[0]


def test_train_writes_metrics_weights_and_figures(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert KEYS <= metrics.keys()
    assert metrics["data_source"] == "sample" and metrics["steps"] == 40 and metrics["n_test"] == 2000
    assert metrics["test_neg_log_px_iwae"] <= metrics["test_neg_elbo"] + 1.0  # IWAE_5 >= ELBO, up to MC noise
    assert list(metrics["history"]) == PLAIN_HISTORY  # no empty "metrics": the file reads as it always did
    names = {"elbo_history", "reconstructions", "prior_samples", "latent_grid", "embedding"}
    assert {p.stem for p in run_dir.glob("*.png")} == names
    torch.load(run_dir / "model.pt", weights_only=True)


def test_train_ends_with_the_results_of_its_metrics_json(trained):
    """The last lines printed are the results a user came for, the numbers those of metrics.json."""
    out, printed = trained
    metrics = json.loads((out / "metrics.json").read_text())
    block = printed[printed.index("results ("):].rstrip().splitlines()
    assert block[0] == f"results (offline sample, {metrics['n_test']:,} test images; nats per image):"
    elbo, iwae, timing, written, figures = block[1:]
    assert elbo.split() == ["test", "-ELBO", f"{metrics['test_neg_elbo']:.2f}"]
    assert "IWAE" in iwae and "(K=5)" in iwae and iwae.endswith(f" {metrics['test_neg_log_px_iwae']:.2f}")
    assert f"({metrics['steps']} steps)" in timing and "images/s" in timing
    assert written.strip() == f"written to {out}/: metrics.json, model.pt"
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 5 and sorted(figures.split(":", 1)[1].strip().split(", ")) == pngs


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
    indices = [int(r["index"]) for r in rows]
    assert indices == sorted(indices) and len(set(indices)) == 30 and all(i % 5 == 4 for i in indices)  # sample test
    assert max(indices) > 5000  # a random choice spread over the file, not its first 30 images
    assert main(["evaluate", str(run_dir / "model.pt"), "--iwae-k", "10", "--limit", "30",
                 "--per-image", str(table), "--no-progress"]) == 0
    assert [int(r["index"]) for r in csv.DictReader(table.open())] == indices  # the same 30 every time


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


def test_hidden_sizes_and_activation_from_the_command_line(tmp_path):
    out = tmp_path / "burda-shape"
    assert main(["train", "--data", "sample", "--steps", "2", "--hidden", "24", "12", "--z-dim", "5",
                 "--activation", "tanh", "--iwae-k", "2", "--out", str(out), "--no-progress"]) == 0
    model = load_checkpoint(out / "model.pt")
    assert model.config == ModelConfig(hidden=(24, 12), z_dim=5, activation="tanh")
    assert [m.out_features for m in model.encoder if isinstance(m, torch.nn.Linear)] == [24, 12]
    assert any(isinstance(m, torch.nn.Tanh) for m in model.decoder.modules())


def test_a_batch_larger_than_the_training_set_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "big-batch"
    assert main(["train", "--data", "sample", "--batch-size", "9000", "--out", str(out), "--no-progress"]) == 1
    assert "batch size 9000 is larger than the training set (8,000 images)" in capsys.readouterr().err
    assert not out.exists()


TRAIN = ["train", "--data", "sample", "--steps", "400", "--hidden", "16", "--iwae-k", "2", "--seed", "3",
         "--no-progress"]


def test_ctrl_c_stops_cleanly_and_resume_ends_where_the_uninterrupted_run_ends(tmp_path):
    """A real SIGINT to `python -m vaelib train`: no traceback, a loadable model, the resume command; then
    --resume finishes with the very weights of the same run left alone."""
    out = tmp_path / "stopped"
    process = subprocess.Popen([sys.executable, "-m", "vaelib", *TRAIN, "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:  # after the first epoch (80 steps of 400), Ctrl-C
        if line.startswith("epoch 1:"):
            process.send_signal(signal.SIGINT)
            break
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert f"Continue with: python -m vaelib train --resume {out}" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] is False and 80 <= metrics["steps_done"] < 400
    load_checkpoint(out / "model.pt")  # a model to use at once
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert main([*TRAIN, "--out", str(tmp_path / "whole")]) == 0
    resumed, whole = (load_checkpoint(tmp_path / name / "model.pt").state_dict() for name in ("stopped", "whole"))
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert json.loads((out / "metrics.json").read_text())["complete"] is True and not (out / "train_state.pt").exists()


def test_the_run_folder_is_saved_after_every_epoch(tmp_path, monkeypatch):
    """A run killed without warning (no Ctrl-C handler runs) loses at most an epoch: the folder is written
    after each one."""
    import vaelib.__main__ as cli

    seen, histories = [], []
    real = cli.write_run
    monkeypatch.setattr(cli, "write_run", lambda out, model, state, **kw: (
        seen.append((json.loads((out / "metrics.json").read_text())["complete"] if (out / "metrics.json").exists()
                     else None, state.get("step"))), histories.append(list(state["history"])),
        real(out, model, state, **kw)))
    assert main(["train", "--data", "sample", "--steps", "170", "--hidden", "8", "--iwae-k", "2",
                 "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    assert [step for _, step in seen] == [80, 160, 170, None]  # three epoch ends, then the finished run
    assert histories == [PLAIN_HISTORY] * 4  # train_state.pt's and metrics.json's, as before History.metrics


def test_resume_refuses_what_it_cannot_continue(tmp_path, run_dir, capsys):
    with pytest.raises(SystemExit, match="finished run: there is nothing to resume"):
        main(["train", "--resume", str(run_dir)])
    with pytest.raises(SystemExit, match="no train_state.pt in .*nothing to resume"):
        main(["train", "--resume", str(tmp_path)])
    with pytest.raises(SystemExit, match="leave out --epochs, --lr"):
        main(["train", "--resume", str(tmp_path), "--epochs", "3", "--lr", "0.1"])
    (tmp_path / "train_state.pt").write_bytes(b"not a state")
    assert main(["train", "--resume", str(tmp_path)]) == 1
    assert "is not a vaelib training state or is damaged" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="holds an unfinished run; continue it with .*--resume"):
        main(["train", "--data", "sample", "--steps", "1", "--out", str(tmp_path)])


VARIANTS = {  # the options of each variant, as a user types them
    "iwae": ["--objective", "iwae", "--iwae-train-k", "3"],
    "iwae dreg": ["--objective", "iwae", "--iwae-train-k", "3", "--gradient", "dreg"],
    "planar": ["--posterior", "planar", "--flow-layers", "2"],
    "mog": ["--prior", "mog", "--prior-components", "3"],
    "vamp": ["--prior", "vamp", "--prior-components", "3"],
}


def test_train_help_offers_the_variants(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = capsys.readouterr().out
    for option in ("--objective {elbo,iwae}", "--iwae-train-k K", "--gradient {plain,dreg}",
                   "--posterior {gaussian,planar}", "--flow-layers N", "--prior {normal,mog,vamp}",
                   "--prior-components C"):
        assert option in shown, option


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_trains_and_evaluates_with_exact_log_px(tmp_path, capsys, variant):
    out = tmp_path / "r"
    assert main(["train", "--data", "sample", "--steps", "3", "--hidden", "16", "--iwae-k", "2", "--out", str(out),
                 "--no-progress", *VARIANTS[variant]]) == 0
    config = json.loads((out / "metrics.json").read_text())["config"]
    given = dict(zip(VARIANTS[variant][::2], VARIANTS[variant][1::2]))
    for option, value in given.items():
        name = option[2:].replace("-", "_")
        assert str(config.get(name, config["model"].get(name))) == value
    model = load_checkpoint(out / "model.pt")
    assert model.config.posterior == given.get("--posterior", "gaussian")
    assert model.config.prior == given.get("--prior", "normal")
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.pt"), "--exact", "--limit", "4", "--iwae-k", "5", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n_test"] == 4 and result["exact_grid"]["converged"]
    assert result["test_elbo"] <= result["test_log_px_exact"] + 1.0  # the ELBO is a lower bound, up to MC noise


def test_dreg_with_a_planar_posterior_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--data", "sample", "--steps", "3", "--out", str(out), "--no-progress",
                 *VARIANTS["iwae dreg"], *VARIANTS["planar"]]) == 1
    assert "--gradient plain" in capsys.readouterr().err and not out.exists()


def test_resume_refuses_a_variant_option(tmp_path):
    with pytest.raises(SystemExit, match="leave out --objective, --prior"):
        main(["train", "--resume", str(tmp_path), "--prior", "mog", "--objective", "iwae"])
