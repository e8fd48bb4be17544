"""Device choice, and no vaelib function moving, casting or changing the mode of a model it is given.

A GPU is not needed: the choice is tested with PyTorch's availability functions patched, and the
"never moves" rule by making every way of moving a module raise while vaelib's public functions run.
"""

import types

import pytest
import torch
from torch import nn

from vaelib import config, diagnostics, exact, plot, runs, study
from vaelib.config import ModelConfig, TrainConfig, float64_device, pick_device
from vaelib.model import VAE, load_checkpoint, save_checkpoint
from vaelib.evaluate import per_image_iwae, per_image_terms
from vaelib.train import History, save_course_model, train


def fake_accelerator(monkeypatch, found):
    """torch.accelerator reports `found` ("cuda", "mps" or None) as available."""
    device = None if found is None else torch.device(found)
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda check_available=False: device)


@pytest.mark.parametrize("found", ["cuda", "mps", "xpu"])
def test_the_accelerator_pytorch_reports_is_chosen(monkeypatch, found):
    monkeypatch.delenv("VAELIB_DEVICE", raising=False)
    fake_accelerator(monkeypatch, found)
    assert pick_device() == torch.device(found)


def test_without_an_accelerator_the_cpu_is_chosen(monkeypatch):
    monkeypatch.delenv("VAELIB_DEVICE", raising=False)
    fake_accelerator(monkeypatch, None)
    assert pick_device() == torch.device("cpu")


def test_older_pytorch_without_torch_accelerator_asks_cuda_then_mps(monkeypatch):
    monkeypatch.delenv("VAELIB_DEVICE", raising=False)
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: False),
                                       backends=types.SimpleNamespace(mps=types.SimpleNamespace(is_available=lambda: True)),
                                       device=torch.device)
    monkeypatch.setattr(config, "torch", fake_torch)
    assert config.accelerator() == torch.device("mps")
    fake_torch.backends.mps.is_available = lambda: False
    assert config.accelerator() is None
    fake_torch.cuda.is_available = lambda: True
    assert config.accelerator() == torch.device("cuda")


def test_the_argument_wins_over_the_environment_which_wins_over_the_accelerator(monkeypatch):
    fake_accelerator(monkeypatch, "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("VAELIB_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    monkeypatch.setenv("VAELIB_DEVICE", "cuda:1")
    assert pick_device() == torch.device("cuda:1")
    assert pick_device("cpu") == torch.device("cpu")


def test_a_device_missing_here_is_refused_with_what_to_use(monkeypatch):
    fake_accelerator(monkeypatch, "mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("VAELIB_DEVICE", raising=False)
    with pytest.raises(ValueError, match=r"cannot use cuda.*--device mps \(found here\) or --device cpu"):
        pick_device("cuda")
    monkeypatch.setenv("VAELIB_DEVICE", "cuda")
    with pytest.raises(ValueError, match=r"\$VAELIB_DEVICE"):
        pick_device()
    with pytest.raises(ValueError, match="not a device name PyTorch knows"):
        pick_device("gpu0")


def test_float64_work_goes_to_the_cpu_only_on_mps():
    assert float64_device(torch.device("mps")) == torch.device("cpu")
    assert float64_device(torch.device("cuda:0")) == torch.device("cuda:0")
    assert float64_device(torch.device("cpu")) == torch.device("cpu")


@pytest.fixture
def immovable(monkeypatch):
    """Every way of moving, casting or switching a module's mode for good raises while the test runs."""
    def refuse(name):
        def method(self, *args, **kwargs):
            raise AssertionError(f"a vaelib function called {name}() on a module it was given")
        return method

    for name in ("to", "cpu", "cuda", "xpu", "float", "double", "half", "bfloat16", "to_empty", "share_memory"):
        monkeypatch.setattr(nn.Module, name, refuse(name))


def small_model(z_dim=2):
    torch.manual_seed(0)
    return VAE(ModelConfig(hidden=(32, 16), z_dim=z_dim))


def test_no_vaelib_function_moves_or_casts_the_callers_model(sample_data, tmp_path, monkeypatch, immovable):
    monkeypatch.setenv("VAELIB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VAELIB_SMOKE", "0")
    model, x = small_model(), sample_data.test_x[:50]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, sample_data, TrainConfig(steps=3, progress=False, iwae_k=2))  # trains in place: its job
    trained_weights = {k: v.clone() for k, v in model.state_dict().items()}
    assert any(not torch.equal(before[k], trained_weights[k]) for k in before)
    model.eval()
    save_checkpoint(tmp_path / "model.pt", model)
    save_course_model(model, {"course": History()}, data_source="sample")
    per_image_terms(model, x)
    per_image_iwae(model, x, 3)
    diagnostics.active_units(model, x)
    diagnostics.kl_per_dimension(model, x)
    study.score(model, x, 3)
    exact.converged_log_px(model, x[:5])
    for figure in (plot.plot_reconstructions(model, x, sample_data.test_y[:50]), plot.plot_prior_samples(model, 4),
                   plot.plot_latent_grid(model, n=3), plot.plot_embedding(model, x, sample_data.test_y[:50])):
        plot.plt.close(figure)
    runs.trained({"test": "immovable"}, lambda: (model, History()), "the caller's model")
    assert not model.training  # evaluation helpers restore the mode they found
    for key, value in model.state_dict().items():
        assert value.device.type == "cpu" and value.dtype == torch.float32 and torch.equal(value, trained_weights[key])
    assert all(torch.equal(v, trained_weights[k]) for k, v in load_checkpoint(tmp_path / "model.pt").state_dict().items())


@pytest.mark.parametrize("variant, objective", [
    (dict(posterior="planar", flow_layers=2, prior="mog", prior_components=3), dict(objective="iwae", iwae_train_k=2)),
    (dict(prior="vamp", prior_components=3), dict(objective="iwae", iwae_train_k=2, gradient="dreg")),
])
def test_nor_the_model_of_a_variant(sample_data, tmp_path, immovable, variant, objective):
    torch.manual_seed(0)
    model, x = VAE(ModelConfig(hidden=(16,), **variant)), sample_data.test_x[:20]
    train(model, sample_data, TrainConfig(steps=3, progress=False, iwae_k=2, model=model.config, **objective))
    trained_weights = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    save_checkpoint(tmp_path / "model.pt", model)
    per_image_terms(model, x)
    per_image_iwae(model, x, 3)
    exact.converged_log_px(model, x[:3])
    model.sample(4, generator=torch.Generator().manual_seed(0))
    plot.plt.close(plot.plot_prior_samples(model, 4))
    assert not model.training
    for key, value in model.state_dict().items():
        assert value.device.type == "cpu" and value.dtype == torch.float32 and torch.equal(value, trained_weights[key])


def test_pytorch_2_6_whose_current_accelerator_takes_no_argument(monkeypatch):
    monkeypatch.delenv("VAELIB_DEVICE", raising=False)
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda: torch.device("cuda"))
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda")
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu")


def test_a_device_number_this_machine_does_not_have_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match="has 1 cuda device.*--device cuda:0"):
        pick_device("cuda:3")
