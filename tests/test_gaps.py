"""vaelib.gaps: local variational parameters, their ELBO and the per-image fit, against independent references."""

import math

import pytest
import torch

from vaelib.config import ModelConfig
from vaelib.elbo import posterior_log_weights
from vaelib.exact import log_px_grid, posterior_grid
from vaelib.gaps import fit_local, local_elbo, local_parameters, posterior_moments_start
from vaelib.model import VAE

FAMILIES = {"gaussian": {}, "planar": {"posterior": "planar", "flow_layers": 3}, "mog": {"prior": "mog"},
            "vamp": {"prior": "vamp", "prior_components": 4}, "planar+mog": {"posterior": "planar", "prior": "mog"}}


def small_model(seed: int = 0, **config) -> VAE:
    torch.manual_seed(seed)
    return VAE(ModelConfig(hidden=(32,), z_dim=2, **config)).eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_the_encoders_local_parameters_give_the_models_own_log_weights(sample_data, family):
    model, x = small_model(**FAMILIES[family]), sample_data.test_x[:6]
    expected = posterior_log_weights(model, x, 5, torch.Generator().manual_seed(7))
    got = posterior_log_weights(model, x, 5, torch.Generator().manual_seed(7), local_parameters(model, x))
    torch.testing.assert_close(got, expected.detach())


@pytest.mark.parametrize("family", ["gaussian", "planar"])
def test_the_fit_raises_each_elbo_and_stays_below_the_exact_log_px(sample_data, family):
    model, x = small_model(**FAMILIES[family]), sample_data.test_x[:5]
    before = [p.detach().clone() for p in model.parameters()]
    encoder = local_parameters(model, x)
    _, elbo_best = fit_local(model, x, [encoder], steps=60, samples=16, lr=0.05, eval_samples=4000)
    elbo_encoder = local_elbo(model, x, encoder, 4000, seed=5)
    exact = log_px_grid(model, x, half_width=8.0, spacing=0.02)  # an independent rectangle rule
    assert (elbo_best > elbo_encoder).all()
    assert (elbo_best < exact + 0.01).all()  # an ELBO (a 4,000-draw estimate of one) is below log p(x)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_the_fit_finds_the_posterior_where_it_is_known(sample_data):
    """With the decoder's last weights at 0, p(x|z) does not depend on z: the posterior is the prior N(0, I),
    q* = N(0, I) exactly, and its ELBO is log p(x), which the rectangle rule computes independently."""
    model, x = small_model(), sample_data.test_x[:4]
    with torch.no_grad():
        model.decoder[-1].weight.zero_()
    encoder = local_parameters(model, x)
    start = {**encoder, "mu": encoder["mu"] + 1.0, "logvar": encoder["logvar"] - 1.0}  # away from the optimum
    best, elbo = fit_local(model, x, [start], steps=300, samples=16, lr=0.05, eval_samples=4000)
    torch.testing.assert_close(best["mu"], torch.zeros_like(best["mu"]), atol=0.1, rtol=0)
    torch.testing.assert_close(best["logvar"], torch.zeros_like(best["logvar"]), atol=0.15, rtol=0)
    exact = log_px_grid(model, x, half_width=8.0, spacing=0.05)
    torch.testing.assert_close(elbo, exact, atol=0.02, rtol=0)  # KL(q* || posterior) about 0.01 at those errors


def test_fit_keeps_per_image_the_better_start(sample_data):
    model, x = small_model(), sample_data.test_x[:4]
    good = local_parameters(model, x)
    bad = {**good, "mu": good["mu"] + 30.0}  # far out in the prior's tail: a worse ELBO for every image
    even = torch.arange(4)[:, None] % 2 == 0
    a = {**good, "mu": torch.where(even, good["mu"], bad["mu"])}  # good on the even images
    b = {**good, "mu": torch.where(even, bad["mu"], good["mu"])}  # good on the odd ones
    chosen, _ = fit_local(model, x, [a, b], steps=1, samples=4, lr=1e-6, eval_samples=200)
    torch.testing.assert_close(chosen["mu"], good["mu"], atol=1e-4, rtol=0)


def test_fit_never_ends_below_its_start_and_refuses_no_steps(sample_data):
    model, x = small_model(), sample_data.test_x[:3]
    start = local_parameters(model, x)
    chosen, _ = fit_local(model, x, [start], steps=3, samples=2, lr=50.0, eval_samples=500)  # a wild step size
    assert (local_elbo(model, x, chosen, 2000, seed=9) >= local_elbo(model, x, start, 2000, seed=9) - 0.5).all()
    with pytest.raises(ValueError, match="local_elbo"):
        fit_local(model, x, [start], steps=0)


def test_the_posterior_moments_start_of_a_flow_is_the_identity_flow(sample_data):
    model, x = small_model(**FAMILIES["planar"]), sample_data.test_x[:3]
    log_post, z1, z2 = posterior_grid(model, x, 6.0, 0.05)
    start = posterior_moments_start(model, x, log_post, z1, z2)
    eps_draws = posterior_log_weights(model, x, 7, torch.Generator().manual_seed(4), {**start, "flow": None})
    flow_draws = posterior_log_weights(model, x, 7, torch.Generator().manual_seed(4), start)
    torch.testing.assert_close(flow_draws, eps_draws, atol=1e-5, rtol=1e-5)  # the same q: no layer moves z


def test_posterior_moments_start_recovers_a_gaussians_mean_and_variance():
    model, x = small_model(), torch.zeros(2, 784)
    z1 = z2 = torch.arange(-6, 6, 0.02) + 0.01
    mean, var = torch.tensor([[0.5, -1.0], [-2.0, 1.5]]), torch.tensor([[0.3, 0.6], [0.05, 1.2]])
    zz1, zz2 = z1[None, None, :], z2[None, :, None]
    log_post = (-0.5 * ((zz1 - mean[:, 0, None, None]) ** 2 / var[:, 0, None, None]
                        + (zz2 - mean[:, 1, None, None]) ** 2 / var[:, 1, None, None])
                - 0.5 * torch.log(var[:, 0, None, None] * var[:, 1, None, None]) - math.log(2 * math.pi))
    start = posterior_moments_start(model, x, log_post, z1, z2)
    torch.testing.assert_close(start["mu"], mean, atol=1e-3, rtol=0)
    torch.testing.assert_close(start["logvar"].exp(), var, atol=1e-3, rtol=1e-3)
