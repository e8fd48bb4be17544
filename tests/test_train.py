"""The training and evaluation loops on the offline sample."""

import json
import math
from dataclasses import asdict

import pytest
import torch

from vaelib.config import ModelConfig, TrainConfig
from vaelib.model import VAE
from vaelib.evaluate import evaluate_terms
from vaelib.train import TrainingDiverged, lr_factor, make_optimizer, train


def small_run(data, steps=150, seed=0, **kw):
    torch.manual_seed(seed)
    model = VAE(ModelConfig(hidden=(64, 32), z_dim=2))
    cfg = TrainConfig(data="sample", steps=steps, seed=seed, progress=False, **kw)
    return model, train(model, data, cfg)


def test_training_lowers_the_test_loss_well_below_its_start(sample_data):
    torch.manual_seed(0)
    start, _ = evaluate_terms(VAE(ModelConfig(hidden=(64, 32), z_dim=2)), sample_data.test_x)
    _, history = small_run(sample_data, steps=240)
    assert start > 500  # an untrained decoder: about 784 log 2 = 543 nats
    assert history.test_neg_elbo[-1] < 0.45 * start
    assert history.step == [80, 160, 240] and history.epoch == [1.0, 2.0, 3.0]


def test_same_seed_same_numbers_and_another_seed_others(sample_data):
    _, a = small_run(sample_data, seed=3)
    _, b = small_run(sample_data, seed=3)
    _, c = small_run(sample_data, seed=4)
    assert a.train_neg_elbo == b.train_neg_elbo and a.test_neg_elbo == b.test_neg_elbo
    assert a.test_neg_elbo != c.test_neg_elbo


def test_evaluation_is_the_same_at_every_call(sample_data):
    model, _ = small_run(sample_data, steps=20)
    assert evaluate_terms(model, sample_data.test_x) == evaluate_terms(model, sample_data.test_x)


def test_decay_schedule_holds_then_falls_linearly_to_zero():
    assert [lr_factor(s, 8, "decay") for s in range(8)] == [1, 1, 1, 1, 1, 1, 1, 0.5]
    assert [lr_factor(s, 8, "constant") for s in (0, 7)] == [1, 1]


def test_sgd_is_the_hand_written_update():
    torch.manual_seed(0)
    model = VAE(ModelConfig(hidden=(8,), z_dim=2))
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.rand(4, 784))[0].sum().backward()
    make_optimizer(model, "sgd", 0.1).step()
    for old, p in zip(before, model.parameters()):
        torch.testing.assert_close(p, old - 0.1 * p.grad)


def test_diverging_loss_stops_training_and_names_the_step(sample_data):
    torch.manual_seed(0)
    model = VAE(ModelConfig(hidden=(16,), z_dim=2))
    cfg = TrainConfig(data="sample", steps=100, optimizer="sgd", lr=1e12, progress=False)
    with pytest.raises(TrainingDiverged, match=r"the loss became (nan|inf) at step \d+ \(epoch 1\).*--lr"):
        train(model, sample_data, cfg)


def test_history_counts_training_images_and_time(sample_data):
    _, history = small_run(sample_data, steps=30, batch_size=50)
    assert history.train_images == 30 * 50 and history.train_seconds > 0
    assert math.isclose(history.epoch[-1], 30 / 160)


def test_course_model_loads_what_save_course_model_saved_or_trains_one_and_says_so(sample_data, tmp_path, monkeypatch, capsys):
    from vaelib.config import course_run_dir
    from vaelib.train import History, course_model, save_course_model

    monkeypatch.setenv("VAELIB_RUNS", str(tmp_path))
    monkeypatch.setenv("VAELIB_SMOKE", "1")
    assert course_run_dir() == tmp_path / "course-smoke"
    model, history = course_model(sample_data, fallback_steps=5)
    assert "notebook 4 has not been run" in capsys.readouterr().out and history.step == [5] and not model.training

    saved = VAE()
    torch.nn.init.constant_(saved.mu_head.bias, 0.25)
    assert save_course_model(saved, {"sgd": History(), "course": history}) == course_run_dir()
    model, loaded = course_model(sample_data, fallback_steps=5)
    assert "loaded the model notebook 4 saved" in capsys.readouterr().out
    assert torch.equal(model.mu_head.bias, saved.mu_head.bias) and loaded == history

    save_course_model(saved, {"course": history}, data_source="mnist")  # trained on other data: not used
    model, _ = course_model(sample_data, fallback_steps=5)
    assert "trained on 'mnist' data, not on the 'sample'" in capsys.readouterr().out
    assert not torch.equal(model.mu_head.bias, saved.mu_head.bias)


def test_evaluation_terms_are_the_per_image_mean_of_elbo_terms(sample_data):
    from vaelib.elbo import elbo_terms
    from vaelib.evaluate import EVAL_SEED

    model, _ = small_run(sample_data, steps=20)
    x = sample_data.test_x[:300]
    terms = elbo_terms(model, x, torch.Generator().manual_seed(EVAL_SEED))  # one batch: the same draws
    neg_elbo, kl = evaluate_terms(model, x, batch_size=300)
    assert math.isclose(neg_elbo, -terms.elbo.mean().item(), rel_tol=1e-6)
    assert math.isclose(kl, terms.kl.mean().item(), rel_tol=1e-6) and kl > 0


def test_a_batch_larger_than_the_training_set_is_refused(sample_data):
    model = VAE(ModelConfig(hidden=(8,), z_dim=2))
    with pytest.raises(ValueError, match="batch size 8001 is larger than the training set \\(8,000 images\\).*8000"):
        train(model, sample_data, TrainConfig(data="sample", steps=3, batch_size=8001, progress=False))


def interrupt_at(step: int, monkeypatch):
    """Send this process a real SIGINT (Ctrl-C) during training step `step` (1-based)."""
    import os
    import signal

    import vaelib.train

    real, calls = vaelib.train.train_step, []

    def step_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(vaelib.train, "train_step", step_then_interrupt)


@pytest.mark.parametrize("stop", [80, 123])  # at the end of epoch 1, and in the middle of epoch 2
def test_an_interrupted_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(sample_data, tmp_path,
                                                                                      monkeypatch, stop):
    from vaelib.train import TrainingInterrupted

    cfg = TrainConfig(data="sample", steps=250, seed=7, progress=False, model=ModelConfig(hidden=(32,), z_dim=2))
    torch.manual_seed(0)
    whole = VAE(cfg.model)
    history = train(whole, sample_data, cfg)

    torch.manual_seed(0)
    interrupt_at(stop, monkeypatch)
    with pytest.raises(TrainingInterrupted, match=f"after step {stop} of 250") as stopped:
        train(VAE(cfg.model), sample_data, cfg)
    monkeypatch.undo()
    torch.save(stopped.value.state, tmp_path / "state.pt")  # through a file, as the command line keeps it
    resumed = VAE(cfg.model)  # other initial weights: everything must come from the state
    again = train(resumed, sample_data, cfg, resume=torch.load(tmp_path / "state.pt", weights_only=True))
    for ours, reference in zip(resumed.state_dict().values(), whole.state_dict().values()):
        assert torch.equal(ours, reference)
    assert again.test_neg_elbo == history.test_neg_elbo and again.train_neg_elbo == history.train_neg_elbo
    assert again.step == history.step and again.train_images == history.train_images


def test_a_state_of_other_settings_is_refused(sample_data, monkeypatch):
    from vaelib.train import TrainingInterrupted

    cfg = TrainConfig(data="sample", steps=30, progress=False, model=ModelConfig(hidden=(8,), z_dim=2))
    interrupt_at(10, monkeypatch)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(VAE(cfg.model), sample_data, cfg)
    other = TrainConfig(data="sample", steps=30, lr=0.01, progress=False, model=cfg.model)
    with pytest.raises(ValueError, match="other settings"):
        train(VAE(cfg.model), sample_data, other, resume=stopped.value.state)


def test_course_model_names_a_damaged_saved_model(sample_data, tmp_path, monkeypatch):
    from vaelib.config import course_run_dir
    from vaelib.model import CheckpointError
    from vaelib.train import course_model

    monkeypatch.setenv("VAELIB_RUNS", str(tmp_path))
    course_run_dir().mkdir(parents=True)
    (course_run_dir() / "model.pt").write_bytes(b"not a checkpoint")
    (course_run_dir() / "history.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not a vaelib checkpoint or is damaged"):
        course_model(sample_data, fallback_steps=5)


def test_course_model_names_a_damaged_history(sample_data, tmp_path, monkeypatch):
    from vaelib.config import course_run_dir
    from vaelib.model import CheckpointError
    from vaelib.train import History, course_model, save_course_model

    monkeypatch.setenv("VAELIB_RUNS", str(tmp_path))
    save_course_model(VAE(), {"sgd": History()}, data_source="sample")  # no "course" history
    with pytest.raises(CheckpointError, match="history.json is missing or damaged.*run notebook 4 again"):
        course_model(sample_data, fallback_steps=5)


def test_settings_of_every_committed_model_still_give_its_key():
    """vaelib.runs keys committed models by a hash of settings(asdict(cfg)) (plus the notebook's own entries):
    rebuilt from the TrainConfig fields of each settings.json, settings() gives the same dict, so the same key."""
    from dataclasses import asdict, fields

    from vaelib import runs
    from vaelib.train import settings

    names = {f.name for f in fields(TrainConfig)}
    checked = 0
    for path in sorted(runs.PRETRAINED.glob("*/settings.json")):
        saved = json.loads(path.read_text())["settings"]
        if not isinstance(saved.get("model"), dict):
            continue  # not a TrainConfig's settings (notebook 5's autoencoder)
        cfg = TrainConfig(**{k: v for k, v in saved.items() if k in names}, progress=False)
        rebuilt = {**settings(asdict(cfg)), **{k: v for k, v in saved.items() if k not in names}}
        assert runs.canonical(rebuilt) == saved and runs.settings_key(rebuilt) == path.parent.name
        checked += 1
    assert checked >= 10


def test_new_settings_appear_only_when_they_differ_from_their_defaults():
    from dataclasses import asdict

    from vaelib.train import settings

    plain = settings(asdict(TrainConfig(steps=5, model=ModelConfig(z_dim=3))))
    assert set(plain) == {"data", "epochs", "steps", "batch_size", "lr", "optimizer", "lr_schedule", "seed", "beta",
                          "iwae_k", "model"}
    assert set(plain["model"]) == {"x_dim", "hidden", "z_dim", "activation"}
    variant = settings(asdict(TrainConfig(objective="iwae", iwae_train_k=50, model=ModelConfig(prior="mog"))))
    assert variant["objective"] == "iwae" and variant["iwae_train_k"] == 50 and "gradient" not in variant
    assert variant["model"]["prior"] == "mog" and "posterior" not in variant["model"]
    assert "prior_components" not in variant["model"]


VARIANT_RUNS = {
    "iwae": dict(objective="iwae", iwae_train_k=3),
    "iwae dreg vamp": dict(objective="iwae", iwae_train_k=3, gradient="dreg",
                           model=dict(prior="vamp", prior_components=4)),
    "planar mog": dict(model=dict(posterior="planar", flow_layers=2, prior="mog", prior_components=3)),
    "planar iwae": dict(objective="iwae", iwae_train_k=3, model=dict(posterior="planar", flow_layers=2)),
}


def variant_run(data, name, steps=40, seed=0):
    settings = dict(VARIANT_RUNS[name])
    model_config = ModelConfig(hidden=(32,), z_dim=2, **settings.pop("model", {}))
    cfg = TrainConfig(data="sample", steps=steps, seed=seed, progress=False, model=model_config, **settings)
    torch.manual_seed(seed)
    model = VAE(cfg.model)
    return model, train(model, data, cfg)


@pytest.mark.parametrize("name", VARIANT_RUNS)
def test_every_variant_trains_evaluates_and_repeats_its_numbers(sample_data, name):
    from vaelib.evaluate import per_image_iwae, per_image_terms

    model, history = variant_run(sample_data, name)
    x = sample_data.test_x[:200]
    terms = per_image_terms(model, x)
    log_px = per_image_iwae(model, x, 20)
    assert history.test_neg_elbo[-1] < 0.85 * 543  # well below an untrained decoder's 784 log 2 nats
    assert torch.isfinite(terms.elbo).all() and (log_px > terms.elbo - 5).float().mean() > 0.9  # IWAE_20 >~ ELBO
    assert evaluate_terms(model, x)[0] == -terms.elbo.mean().item()
    again, history_again = variant_run(sample_data, name)
    assert history_again.test_neg_elbo == history.test_neg_elbo
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


@pytest.mark.parametrize("settings, message", [
    (dict(gradient="dreg"), "use it with objective 'iwae'"),
    (dict(objective="iwae", gradient="dreg", model=dict(posterior="planar")), "--gradient plain"),
    (dict(objective="iwae", beta=2.0), "leave beta at 1"),
    (dict(objective="iwae", iwae_train_k=0), "iwae_train_k at least 1"),
    (dict(model=dict(prior="flat")), "prior must be"),
])
def test_settings_that_do_not_go_together_are_refused_with_what_to_do(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_an_interrupted_and_resumed_variant_run_ends_with_the_weights_of_an_uninterrupted_one(sample_data,
                                                                                             monkeypatch):
    from vaelib.train import TrainingInterrupted

    cfg = TrainConfig(data="sample", steps=100, seed=7, progress=False, objective="iwae", iwae_train_k=2,
                      model=ModelConfig(hidden=(16,), z_dim=2, posterior="planar", flow_layers=2, prior="mog"))
    torch.manual_seed(0)
    whole = VAE(cfg.model)
    train(whole, sample_data, cfg)
    torch.manual_seed(0)
    interrupt_at(50, monkeypatch)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(VAE(cfg.model), sample_data, cfg)
    monkeypatch.undo()
    resumed = VAE(cfg.model)
    train(resumed, sample_data, cfg, resume=stopped.value.state)
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), whole.state_dict().values()))


def test_a_history_is_written_without_an_empty_metrics_key_and_read_with_or_without_one(tmp_path):
    """A plain VAE's history.json is as it was before History.metrics existed; a labelled model's keeps its
    metrics; both read back (vaelib.runs.save and load, and History(**json))."""
    from vaelib import runs
    from vaelib.train import History

    plain = History(epoch=[1.0], step=[10], train_neg_elbo=[200.0], train_kl=[5.0], test_neg_elbo=[201.0],
                    test_kl=[5.1], train_seconds=1.5, train_images=1000)
    assert "metrics" not in plain.asdict() and plain.asdict() == {k: v for k, v in asdict(plain).items()
                                                                   if k != "metrics"}
    labelled = History(**{**plain.asdict(), "metrics": {"validation_accuracy": [0.5]}})
    assert labelled.asdict()["metrics"] == {"validation_accuracy": [0.5]}
    model = VAE()
    for name, history in (("plain", plain), ("labelled", labelled)):
        runs.save(tmp_path / name, {"name": name}, model, history, name)
        written = json.loads((tmp_path / name / "history.json").read_text())
        assert ("metrics" in written) == (name == "labelled")
        assert History(**written) == history
        assert runs.load(tmp_path / name, {"name": name})[1] == history
