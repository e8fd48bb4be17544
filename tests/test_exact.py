"""Exact log p(x) by quadrature against closed forms (linear-Gaussian, Gaussian bumps), the full grid, brute force, IWAE."""

import json
import math

import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal

import vaelib.exact
from vaelib.config import ModelConfig, TrainConfig, seed_everything
from vaelib.elbo import bernoulli_log_likelihood
from vaelib.exact import (Tiling, bernoulli_log_px_z, converged_log_px, grid_axis, grid_points, log_px_grid,
                          posterior_grid)
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


def test_converged_log_px_matches_the_closed_form_for_every_image_with_sharp_posteriors():
    model = LinearGaussian(scale=10.0)  # posterior standard deviations of a few hundredths
    log_px, last_change, report = converged_log_px(model, model.x, spacing=0.2)
    torch.testing.assert_close(log_px, model.log_px(model.x), rtol=0, atol=1e-3)
    assert report["converged"] and report["refinements"] >= 2 and last_change.max() < 0.01
    assert report["max_image_change"] == last_change.max().item()
    assert report["finest_spacing"] == 0.2 / 2 ** report["refinements"]
    json.dumps(report)


@pytest.mark.filterwarnings("ignore:.*widen half_width")  # the small VAE has mass out there; so has the full grid
def test_converged_log_px_is_the_full_grid_less_negligible_tiles(small_vae, sample_data):
    x, log_px_z, evaluated = sample_data.test_x[:300], bernoulli_log_px_z(small_vae), []

    def counting(x, z):
        evaluated.append(len(x) * len(z))
        return log_px_z(x, z)

    with pytest.warns(UserWarning, match="did not converge"):  # tol=0: every image goes to the finest grid
        log_px, _, report = converged_log_px(counting, x, tol=0.0, half_width=8.0, spacing=0.2, max_refinements=2)
    assert report["images_refined"] == [300, 300] and report["finest_spacing"] == 0.05
    torch.testing.assert_close(log_px, log_px_grid(small_vae, x, 8.0, 0.05), rtol=0, atol=1e-4)
    assert sum(evaluated) < 0.5 * len(x) * (2 * 160 + 1) ** 2  # all levels together: under half the finest grid


class GaussianBumps:
    """Image n = (u_1, u_2, s) observes z with noise s: p(x|z) = N(u; z, s^2 I), so p(x) = N(u; 0, (1 + s^2) I)
    and the posterior has standard deviation s / sqrt(1 + s^2). Records which images each call evaluates."""

    def __init__(self, *rows):
        self.x, self.calls = torch.tensor(rows, dtype=torch.float64), []

    def __call__(self, x, z):  # (N, 3), (G, 2) -> (N, G)
        self.calls.append((x[:, 2].tolist(), (z[1] - z[0]).abs().max().item()))  # the scales, the spacing
        return Independent(Normal(z, x[:, None, 2:]), 1).log_prob(x[:, None, :2])

    def log_px(self):
        u, s = self.x[:, :2], self.x[:, 2:]
        return Independent(Normal(torch.zeros_like(u), (1 + s**2).sqrt()), 1).log_prob(u)


def test_only_the_images_that_have_not_converged_are_refined():
    model = GaussianBumps([0.3, -0.2, 1.0], [0.537, -1.213, 0.01], [-2.0, 1.1, 0.7])  # the middle one is sharp
    log_px, last_change, report = converged_log_px(model, model.x, spacing=0.1)
    torch.testing.assert_close(log_px, model.log_px(), rtol=0, atol=1e-3)
    refined = report["images_refined"]
    assert refined[:2] == [3, 1] and refined == sorted(refined, reverse=True) and report["converged"]
    assert all(scales == [0.01] for scales, spacing in model.calls if spacing < 0.05 - 1e-9)
    assert last_change[[0, 2]].max() < 1e-9 < last_change[1] < 0.01


def test_a_narrow_peak_on_the_corner_of_tiles_is_not_lost():
    model = GaussianBumps([0.0, 0.0, 0.01], [0.5, 0.5, 0.005])  # grid points where four tiles meet, at every level
    log_px, _, report = converged_log_px(model, model.x, max_refinements=6)
    torch.testing.assert_close(log_px, model.log_px(), rtol=0, atol=1e-3)
    assert report["converged"] and report["refinements"] >= 3


def test_converged_log_px_warns_when_out_of_refinements():
    model = LinearGaussian(scale=10.0)
    with pytest.warns(UserWarning, match="did not converge"):
        _, last_change, report = converged_log_px(model, model.x, spacing=1.0, tile_size=1, max_refinements=1)
    assert not report["converged"] and last_change.max() >= 0.01


def test_converged_log_px_warns_when_mass_reaches_the_edge_of_the_grid():
    model = GaussianBumps([7.8, 0.0, 0.3], [0.5, 0.5, 0.3])  # the first posterior is centred at z_1 = 7.16
    with pytest.warns(UserWarning, match="widen half_width"):
        _, _, report = converged_log_px(model, model.x, half_width=8.0)
    assert report["edge_images"] == 1 and report["edge_band"] == 8.0 - 4 * 0.1 and report["edge_log_share"] > -5
    _, _, report = converged_log_px(model, model.x[1:], half_width=8.0)
    assert report["edge_images"] == 0 and report["edge_log_share"] < -100


@pytest.mark.parametrize("level", [0, 1, 2])
def test_tiles_hold_every_grid_point_once_and_split_into_quarters(level):
    tiling, h = Tiling.over(half_width=2.0, spacing=0.25, size=3), 0.25 / 2**level  # 17 points: edge tiles overhang
    first, last = tiling.tile_range(level)
    tiles = grid_points(torch.arange(first, last + 1), torch.arange(first, last + 1))
    z, log_prior = tiling.points(tiles, level, torch.zeros(1, dtype=torch.float64))
    grid = grid_points(grid_axis(2.0, h, z), grid_axis(2.0, h, z))
    assert sorted(map(tuple, z[log_prior > -math.inf].tolist())) == sorted(map(tuple, grid.tolist()))
    quarters = 2 * tiles[:, None, :] + torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]])  # (T, 4, 2)
    inner = tiling.points(quarters.reshape(-1, 2), level + 1, z)[0].reshape(len(tiles), -1, 2)  # (T, 4 m m, 2)
    corner = (tiles * 3 * h)[:, None, :]  # the tile's square is [corner, corner + 3 h)
    assert ((inner >= corner - 1e-12) & (inner < corner + 3 * h - 1e-12)).all()


def test_converged_log_px_refuses_a_grid_that_does_not_end_at_its_half_width():
    with pytest.raises(ValueError, match="whole number"):
        converged_log_px(LinearGaussian(), torch.zeros(1, 5, dtype=torch.float64), half_width=1.0, spacing=0.3)


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
    x = sample_data.test_x[:100]
    coarse, fine = log_px_grid(small_vae, x, 6.0, 0.05), log_px_grid(small_vae, x, 7.5, 0.025)
    assert abs(coarse.mean() - fine.mean()) < 0.01


@pytest.mark.parametrize("evaluate", [log_px_grid, converged_log_px, posterior_grid])
def test_a_latent_space_that_is_not_2d_is_refused_with_advice(evaluate):
    model = VAE(ModelConfig(hidden=(8,), z_dim=10))
    with pytest.raises(ValueError, match="needs a 2-D latent space; this model has z_dim=10. Train one with --z-dim 2"):
        evaluate(model, torch.zeros(3, 784))
