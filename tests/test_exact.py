"""Exact log p(x) by quadrature against closed forms (a linear-Gaussian model), brute force and IWAE."""

import json
import math

import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal

import vaelib.exact
from vaelib.config import ModelConfig, TrainConfig, seed_everything
from vaelib.elbo import bernoulli_log_likelihood
from vaelib.exact import bernoulli_log_px_z, converged_log_px, grid_points, log_px_grid, posterior_grid
from vaelib.model import VAE
from vaelib.train import per_image_iwae, train


class LinearGaussian:
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s2 I), so p(x) = N(b, W W^T + s2 I) and p(z|x) = N(m, S)
    with S = (I + W^T W / s2)^-1, m = S W^T (x - b) / s2 [Bishop 2006, eqs. 2.113-2.117]."""

    def __init__(self, D=5, s2=0.5, scale=1.0, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.W = scale * torch.randn(D, 2, generator=g, dtype=torch.float64)
        self.b, self.s2 = torch.randn(D, generator=g, dtype=torch.float64), s2
        self.x = self.sample(4, g)

    def sample(self, n, g):
        z, noise = (torch.randn(n, size, generator=g, dtype=torch.float64) for size in (2, len(self.b)))
        return z @ self.W.T + self.b + math.sqrt(self.s2) * noise

    def __call__(self, x, z):  # log p(x|z) for every x at every grid point: (N, D), (G, 2) -> (N, G)
        return Independent(Normal(z @ self.W.T + self.b, math.sqrt(self.s2)), 1).log_prob(x[:, None, :])

    def log_px(self, x):
        cov = self.W @ self.W.T + self.s2 * torch.eye(len(self.b), dtype=x.dtype)
        return MultivariateNormal(self.b, cov).log_prob(x)

    def posterior(self, x):
        S = torch.linalg.inv(torch.eye(2, dtype=x.dtype) + self.W.T @ self.W / self.s2)
        return (x - self.b) @ self.W @ S / self.s2, S  # (N, 2), (2, 2)


@pytest.fixture(scope="module")
def small_vae(sample_data):
    """A 784-16-2 VAE trained briefly on the offline sample: peaked posteriors, seconds to train."""
    cfg = TrainConfig(data="sample", steps=1000, progress=False, model=ModelConfig(hidden=(16,), z_dim=2))
    seed_everything(cfg.seed)
    model = VAE(cfg.model)
    train(model, sample_data, cfg)
    return model.eval()


def test_quadrature_matches_the_gaussian_marginal():
    model = LinearGaussian()
    torch.testing.assert_close(log_px_grid(model, model.x, spacing=0.05), model.log_px(model.x), rtol=0, atol=1e-3)


def test_converged_log_px_refines_a_coarse_grid_until_it_matches_the_closed_form():
    model = LinearGaussian(scale=10.0)  # posterior standard deviations of a few hundredths
    log_px, report = converged_log_px(model, model.x, spacing=0.2)
    torch.testing.assert_close(log_px, model.log_px(model.x), rtol=0, atol=1e-3)
    assert report["converged"] and report["refinements"] >= 2 and report["mean_change"] < 0.01
    assert report["spacing"] == 0.2 / 2 ** report["refinements"]
    assert report["grid_points"] == (2 * math.floor(report["half_width"] / report["spacing"]) + 1) ** 2
    json.dumps(report)


def test_converged_log_px_warns_when_out_of_refinements():
    model = LinearGaussian(scale=10.0)
    with pytest.warns(UserWarning, match="did not converge"):
        _, report = converged_log_px(model, model.x, spacing=1.0, max_refinements=1)
    assert not report["converged"]


def test_posterior_grid_is_the_closed_form_posterior_with_z1_along_columns():
    model = LinearGaussian()
    log_post, z1, z2 = posterior_grid(model, model.x, half_width=4.0, spacing=0.05)
    mean, cov = model.posterior(model.x)
    points = torch.stack(torch.meshgrid(z2, z1, indexing="ij")[::-1], -1)  # [i, j] = (z1[j], z2[i])
    expected = MultivariateNormal(mean[:, None, None, :], cov).log_prob(points[None])
    torch.testing.assert_close(log_post, expected, rtol=1e-6, atol=1e-6)
    mass = log_post.exp() * 0.05**2  # (N, G, G)
    torch.testing.assert_close(mass.sum((1, 2)), torch.ones(len(model.x), dtype=torch.float64))
    grid_mean = torch.stack([(mass * z1).sum((1, 2)), (mass * z2[:, None]).sum((1, 2))], -1)
    torch.testing.assert_close(grid_mean, mean)
    i, j = divmod(log_post[0].argmax().item(), len(z1))
    assert abs(z1[j] - mean[0, 0]) <= 0.025 + 1e-9 and abs(z2[i] - mean[0, 1]) <= 0.025 + 1e-9


def test_bernoulli_grid_likelihood_is_the_per_pixel_sum(small_vae, sample_data):
    model, x = small_vae.double(), sample_data.test_x[:5].double()
    try:
        z = torch.randn(30, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
        expected = bernoulli_log_likelihood(model.decode(z).expand(len(x), -1, -1), x[:, None, :])  # (N, G)
        torch.testing.assert_close(bernoulli_log_px_z(model)(x, z), expected)
    finally:
        model.float()


def test_quadrature_is_the_brute_force_sum_in_any_chunking(small_vae, sample_data, monkeypatch):
    x, h = sample_data.test_x[:7], 0.1
    axis = torch.arange(-30, 31) * h
    z = grid_points(axis, axis)
    with torch.no_grad():
        log_joint = bernoulli_log_likelihood(small_vae.decode(z).expand(len(x), -1, -1), x[:, None, :]) + \
            Independent(Normal(torch.zeros(2), 1.0), 1).log_prob(z)
    expected = torch.logsumexp(log_joint, 1) + 2 * math.log(h)
    monkeypatch.setattr(vaelib.exact, "IMAGE_BLOCK", 3)
    torch.testing.assert_close(log_px_grid(small_vae, x, 3.0, h, chunk=50), expected, rtol=0, atol=1e-3)


def test_quadrature_and_iwae_agree_on_a_small_bernoulli_vae(small_vae, sample_data):
    x = sample_data.test_x[:100]
    exact = log_px_grid(small_vae, x, spacing=0.025)
    iwae, se = per_image_iwae(small_vae, x, k=2000, return_se=True)
    gap = exact - iwae  # >= 0 in expectation, shrinking as K grows
    assert gap.abs().median() < 0.1 and -0.05 < gap.mean() < 0.2
    assert (iwae - exact > 3 * se).sum() <= 3


def test_halving_the_spacing_and_widening_the_range_moves_the_mean_by_less_than_a_hundredth(small_vae, sample_data):
    x = sample_data.test_x[:500]
    coarse, fine = log_px_grid(small_vae, x, 6.0, 0.05), log_px_grid(small_vae, x, 7.5, 0.025)
    assert abs(coarse.mean() - fine.mean()) < 0.01


@pytest.mark.parametrize("evaluate", [log_px_grid, converged_log_px, posterior_grid])
def test_a_latent_space_that_is_not_2d_is_refused_with_advice(evaluate):
    model = VAE(ModelConfig(hidden=(8,), z_dim=10))
    with pytest.raises(ValueError, match="needs a 2-D latent space; this model has z_dim=10. Train one with --z-dim 2"):
        evaluate(model, torch.zeros(3, 784))
