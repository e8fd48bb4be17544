"""The VAE module, the reparametrisation trick and checkpoints."""

import pytest
import torch

from vaelib.config import ModelConfig
from vaelib.model import ELU, VAE, CheckpointError, load_checkpoint, reparameterize, save_checkpoint


def test_default_shape_is_the_original_notebooks():
    model = VAE()
    sizes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert sizes == [(784, 256), (256, 128), (128, 2), (128, 2), (2, 128), (128, 256), (256, 784)]


def test_decoder_returns_logits_of_any_sign():
    torch.manual_seed(0)
    logits, mu, logvar = VAE(ModelConfig(z_dim=3))(torch.rand(5, 784))
    assert logits.shape == (5, 784) and mu.shape == logvar.shape == (5, 3)
    assert (logits < 0).any() and (logits > 0).any()  # not squashed into (0, 1)


def test_reparameterised_samples_have_the_right_moments():
    mu, logvar = torch.tensor([1.5, -2.0]), torch.tensor([0.0, 2 * torch.log(torch.tensor(3.0))])
    z = reparameterize(mu.expand(200_000, 2), logvar.expand(200_000, 2), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), mu, atol=0.03, rtol=0)
    torch.testing.assert_close(z.var(0), torch.tensor([1.0, 9.0]), atol=0, rtol=0.02)


def test_gradients_reach_mu_and_logvar():
    mu = torch.zeros(3, requires_grad=True)
    logvar = torch.zeros(3, requires_grad=True)
    eps = torch.tensor([0.5, -1.0, 2.0])
    reparameterize(mu, logvar, eps).sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones(3))
    torch.testing.assert_close(logvar.grad, 0.5 * eps)  # dz/dlogvar = 0.5 exp(logvar / 2) eps


def test_checkpoint_round_trip(tmp_path):
    model = VAE(ModelConfig(hidden=(32, 16), z_dim=4))
    save_checkpoint(tmp_path / "m.pt", model, data_source="sample")
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.config == model.config
    x = torch.rand(2, 784)
    torch.testing.assert_close(loaded.encode(x), model.encode(x))
    assert torch.load(tmp_path / "m.pt", weights_only=True)["data_source"] == "sample"


def test_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*python -m vaelib train"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_checkpoint_of_another_shape_is_refused(tmp_path):
    save_checkpoint(tmp_path / "m.pt", VAE(ModelConfig(z_dim=10)))
    with pytest.raises(CheckpointError, match="z_dim=10"):
        load_checkpoint(tmp_path / "m.pt", ModelConfig(z_dim=2))


def test_checkpoint_whose_weights_do_not_fit_is_refused(tmp_path):
    saved = {"format": "vaelib-vae-1", "config": {"x_dim": 784, "hidden": [256, 128], "z_dim": 2},
             "state_dict": VAE(ModelConfig(z_dim=5)).state_dict()}
    torch.save(saved, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "m.pt")


def test_damaged_checkpoint_is_refused(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(tmp_path / "m.pt")


def test_the_plain_vae_keeps_its_parameter_names_and_its_checkpoint_its_settings(tmp_path):
    """Committed models load by these names, and older vaelib reads a plain model's checkpoint as before."""
    model = VAE()
    assert list(model.state_dict()) == [f"{part}.{i}.{kind}" for part, i in [("encoder", 0), ("encoder", 2)]
                                        for kind in ("weight", "bias")] + \
        ["mu_head.weight", "mu_head.bias", "logvar_head.weight", "logvar_head.bias"] + \
        [f"decoder.{i}.{kind}" for i in (0, 2, 4) for kind in ("weight", "bias")]
    save_checkpoint(tmp_path / "m.pt", model)
    assert set(torch.load(tmp_path / "m.pt", weights_only=True)["config"]) == {"x_dim", "hidden", "z_dim", "activation"}


@pytest.mark.parametrize("variant", [dict(posterior="planar", flow_layers=3), dict(prior="mog", prior_components=4),
                                     dict(posterior="planar", prior="vamp", prior_components=2)])
def test_checkpoint_round_trip_of_the_variants(tmp_path, variant):
    torch.manual_seed(0)
    model = VAE(ModelConfig(hidden=(16,), **variant))
    save_checkpoint(tmp_path / "m.pt", model, data_source="sample")
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.config == model.config and loaded.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    x = torch.rand(3, 784)
    draws = [m.sample_posterior(x, 2, torch.Generator().manual_seed(1)) for m in (model, loaded)]
    torch.testing.assert_close(draws[0], draws[1])
    torch.testing.assert_close(loaded.prior.log_prob(draws[0][0]), model.prior.log_prob(draws[0][0]))
    with pytest.raises(CheckpointError, match="posterior='gaussian'|prior='normal'"):
        load_checkpoint(tmp_path / "m.pt", ModelConfig(hidden=(16,)))


def test_a_variant_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="posterior must be 'gaussian' or 'planar'"):
        ModelConfig(posterior="iaf")
    with pytest.raises(ValueError, match="flow_layers and prior_components must be at least 1"):
        ModelConfig(posterior="planar", flow_layers=0)


def test_elu_layers_when_asked_for():
    """--activation elu (Stanford CS236's encoder and decoder) puts ELUs between the VAE's layers, and no other."""
    model = VAE(ModelConfig(hidden=(16, 8), activation="elu"))
    kinds = {k for m in model.modules() for k in (torch.nn.ReLU, torch.nn.ELU, torch.nn.Tanh) if isinstance(m, k)}
    assert kinds == {torch.nn.ELU}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vaelibs_elu_is_torchs_elu(dtype):
    """vaelib's ELU (exp, not expm1, for speed) gives torch.nn.functional.elu's values, gradients and second
    derivatives to roundoff, over the whole line (0, large and infinite inputs included; NaN stays NaN), in the
    caller's dtype."""
    x = torch.cat([torch.linspace(-30, 30, 2001, dtype=dtype),
                   torch.tensor([0.0, -0.0, 1e-8, -1e-8, 80, -1e4, float("inf"), float("-inf"), float("nan")],
                                dtype=dtype)]).requires_grad_()
    grad_out = torch.rand(len(x), dtype=dtype)
    ours = ELU()(x)
    (ours_grad,) = torch.autograd.grad(ours, x, grad_out, create_graph=True)
    ref = torch.nn.functional.elu(x)
    (ref_grad,) = torch.autograd.grad(ref, x, grad_out, create_graph=True)
    assert ours.dtype == dtype
    torch.testing.assert_close(ours, ref, rtol=0, atol=3e-7 if dtype == torch.float32 else 1e-15, equal_nan=True)
    number = ~x.isnan()  # at NaN our gradient is NaN, torch's the incoming gradient: both meaningless
    torch.testing.assert_close(ours_grad[number], ref_grad[number])
    finite = x.isfinite()
    (ours_second,) = torch.autograd.grad(ours_grad[finite].sum(), x)
    (ref_second,) = torch.autograd.grad(ref_grad[finite].sum(), x)
    torch.testing.assert_close(ours_second, ref_second, equal_nan=True)
    positive = x > 0
    assert torch.equal(ours[positive], x[positive])  # exactly x on the positive side
    assert ours[-3] == float("inf") and ours[-2] == -1 and ours[-1].isnan()
    t = torch.randn(30, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ELU(), (t,)) and torch.autograd.gradgradcheck(ELU(), (t,))


def test_vaelibs_elu_has_no_settings_it_would_ignore():
    """The course's ELU is alpha 1 and not in place; asking for another is refused, not ignored."""
    with pytest.raises(TypeError):
        ELU(alpha=2.0)
    x = torch.tensor([-1.0, 2.0])
    ELU()(x)
    assert torch.equal(x, torch.tensor([-1.0, 2.0]))  # the caller's tensor is left as it was
