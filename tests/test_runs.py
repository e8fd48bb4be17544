"""vaelib.runs: a model is trained once for given settings and loaded after, from the committed
store first, then the local cache; another setting trains anew; the smoke setting caches nothing."""

import json

import pytest
import torch

from vaelib import runs
from vaelib.config import ModelConfig, TrainConfig
from vaelib.model import VAE
from vaelib.train import History, train


@pytest.fixture
def stores(tmp_path, monkeypatch):
    """An empty committed store and an empty runs/ folder, full settings."""
    monkeypatch.setattr(runs, "PRETRAINED", tmp_path / "pretrained")
    monkeypatch.setenv("VAELIB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VAELIB_SMOKE", "0")
    monkeypatch.delenv("VAELIB_PRETRAINED", raising=False)
    return tmp_path


class Fit:
    """A fit() that trains a tiny VAE on the sample and counts its calls."""

    def __init__(self, data, seed=0):
        self.data, self.seed, self.calls = data, seed, 0

    def __call__(self):
        self.calls += 1
        torch.manual_seed(self.seed)
        model = VAE(ModelConfig(hidden=(16,), z_dim=2))
        return model, train(model, self.data, TrainConfig(steps=5, seed=self.seed, progress=False))


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_trained_once_then_loaded_with_the_same_weights_and_history(stores, sample_data, capsys):
    fit, settings = Fit(sample_data), {"seed": 0, "steps": 5}
    first = runs.trained(settings, fit, "tiny")
    assert first.source == "trained" and "tiny: trained now" in capsys.readouterr().out
    second = runs.trained(settings, fit, "tiny")
    assert fit.calls == 1 and second.source == "cache"
    assert f"loaded from runs/cache/{runs.settings_key(settings)}" in capsys.readouterr().out
    assert same_weights(first.model, second.model) and second.history == first.history


def test_another_setting_trains_anew(stores, sample_data):
    fit = Fit(sample_data)
    runs.trained({"seed": 0}, fit)
    runs.trained({"seed": 1}, fit)
    assert fit.calls == 2


def test_a_folder_holding_other_settings_under_the_key_is_not_mistaken_for_them(stores, sample_data):
    fit, settings = Fit(sample_data), {"seed": 0}
    runs.trained(settings, fit)
    saved = runs.cache_dir() / runs.settings_key(settings) / "settings.json"
    saved.write_text(json.dumps({"label": "x", "settings": {"seed": 99}}))
    assert runs.trained(settings, fit).source == "trained" and fit.calls == 2


def test_the_committed_store_comes_first_and_can_be_skipped(stores, sample_data, monkeypatch):
    settings = {"seed": 0}
    committed = runs.trained(settings, Fit(sample_data, seed=0))
    runs.publish([runs.settings_key(settings)])
    (runs.cache_dir() / runs.settings_key(settings) / "settings.json").unlink()  # only the committed copy is left
    fit = Fit(sample_data, seed=5)
    loaded = runs.trained(settings, fit)
    assert loaded.source == "pretrained" and fit.calls == 0 and same_weights(loaded.model, committed.model)
    monkeypatch.setenv("VAELIB_PRETRAINED", "0")
    assert runs.trained(settings, fit).source == "trained" and fit.calls == 1


def test_the_smoke_setting_trains_every_time_and_saves_nothing(stores, sample_data, monkeypatch):
    monkeypatch.setenv("VAELIB_SMOKE", "1")
    fit = Fit(sample_data)
    runs.trained({"seed": 0}, fit)
    runs.trained({"seed": 0}, fit)
    assert fit.calls == 2 and not runs.cache_dir().exists()


def test_the_key_ignores_the_order_of_the_settings_and_tuples_read_back_as_lists():
    assert runs.settings_key({"a": 1, "b": (2, 3)}) == runs.settings_key({"b": [2, 3], "a": 1})
    assert runs.settings_key({"a": 1}) != runs.settings_key({"a": 2})


def test_publishing_a_model_never_trained_says_what_to_do(stores):
    with pytest.raises(SystemExit, match="run the notebook that trains it first"):
        runs.publish(["0123456789ab"])


def test_every_committed_model_loads_and_matches_its_settings():
    """What vaelib/pretrained holds is what its settings.json says: the shape and a finished history."""
    folders = sorted(p.parent for p in runs.PRETRAINED.glob("*/settings.json"))
    for folder in folders:
        saved = json.loads((folder / "settings.json").read_text())
        assert folder.name == runs.settings_key(saved["settings"]), folder.name
        model, history = runs.load(folder, saved["settings"])
        model_settings = saved["settings"].get("model")
        if isinstance(model_settings, dict):
            assert model.config == ModelConfig(**model_settings)
        assert isinstance(history, History)


@pytest.mark.parametrize("damage", ["history.json", "model.pt"])
def test_a_damaged_cached_model_is_trained_anew_not_an_error(stores, sample_data, damage):
    fit, settings = Fit(sample_data), {"seed": 0}
    runs.trained(settings, fit)
    (runs.cache_dir() / runs.settings_key(settings) / damage).write_text("damaged")
    assert runs.trained(settings, fit).source == "trained" and fit.calls == 2
    assert runs.trained(settings, fit).source == "cache"  # the retrained model replaced the damaged one


def test_a_path_is_shown_from_the_nearer_of_the_checkout_and_the_runs_folder(tmp_path, monkeypatch):
    """A runs folder above the checkout (VAELIB_RUNS=/somewhere/runs) must not show the checkout's own path."""
    monkeypatch.setattr(runs, "PRETRAINED", tmp_path / "checkout" / "vaelib" / "pretrained")
    monkeypatch.setenv("VAELIB_RUNS", str(tmp_path / "runs"))
    assert runs.shown(tmp_path / "checkout" / "vaelib" / "pretrained" / "abc") == "vaelib/pretrained/abc"
    assert runs.shown(tmp_path / "runs" / "cache" / "abc") == "runs/cache/abc"
    assert runs.shown(tmp_path.parent / "elsewhere" / "abc") == "abc"
