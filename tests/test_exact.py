"""Exact log p(x) by quadrature against closed forms (linear-Gaussian, Gaussian bumps), the full grid, brute force,
IWAE, and a float64 quadrature of its own on sharp posteriors placed between the grid points."""

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
from vaelib.evaluate import per_image_iwae
from vaelib.train import train


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
        _, last_change, report = converged_log_px(model, model.x, spacing=1.0, tile_size=3, max_refinements=1)
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


# Sharp posteriors, checked against a float64 quadrature written here, without vaelib.exact. Each test model
# makes log p(x, z) = log Z + log q(z) for a normalised density q of known shape, so that p(z|x) = q and
# log p(x) = log Z; the image's row of x is (log Z, c_1, c_2, s): where q sits and its width.

LOG_2PI = math.log(2 * math.pi)
SHARP = (0.005, 0.01, 0.02, 0.05)  # posterior standard deviations, below and around h0 = 0.1 and its halvings
PLACES = {  # where the posterior's centre c lies, per standard deviation
    # between the points of every level (none of these is a multiple of 0.1 / 2^6 = 0.0015625)
    "between": dict.fromkeys(SHARP, (0.3371, -0.4871)),
    # midway between two points of level 1 (h = 0.05), h / 2 from a point of level 0 as well: levels 0 and 1
    # give the same sum, 2 h N(h / 2; 0, s^2) per axis, however sharp the posterior
    "midway": dict.fromkeys(SHARP, (0.325, -0.475)),
    # between the points of every level, where two aliased levels agree by chance to within 0.01 nats
    # (found by scanning centres with the rule before max_drop; no such place for s = 0.05)
    "chance": {0.005: (-0.0678, 0.145), 0.01: (-0.1153, -0.0919), 0.02: (0.0731, 0.0773), 0.05: (0.0437, -0.1129)},
}


def log_normal_1d(u, s):
    return -0.5 * (u / s) ** 2 - torch.log(s) - 0.5 * LOG_2PI


class KnownPosterior:
    """p(z|x) = q_shape(z; c, s), log p(x) = log Z, for rows (log Z, c_1, c_2, s) of x (float64). Shapes:
    round: N(c, s^2 I). ridge: sd s across, 5 s along, turned by 0.6 rad. three peaks: N(c + d_k, s^2 I) for
    d = (0, 0), (0.3, 0.1), (-0.15, 0.25), weights 0.5, 0.3, 0.2 (offsets of whole level-1 steps: every peak is
    placed as c is). skewed: skew-normal in each coordinate, shapes 5 and -3, sd s. banana: z_1 ~ N(c_1, (5 s)^2),
    z_2 - c_2 - (z_1 - c_1)^2 / (10 s) ~ N(0, s^2), a curved ridge s wide (a shear: Jacobian 1)."""

    PEAKS = ((0.0, 0.0, 0.5), (0.3, 0.1, 0.3), (-0.15, 0.25, 0.2))
    SKEW = (5.0, -3.0)

    def __init__(self, shape):
        self.shape = shape

    def log_q(self, z, c, s):
        """log q(z) for points z (..., 2), centres c (..., 2) and widths s (...), broadcast. -> (...)."""
        u = z - c
        if self.shape == "round":
            return log_normal_1d(u, s[..., None]).sum(-1)
        if self.shape == "ridge":
            cos, sin = math.cos(0.6), math.sin(0.6)
            across, along = cos * u[..., 0] + sin * u[..., 1], -sin * u[..., 0] + cos * u[..., 1]
            return log_normal_1d(across, s) + log_normal_1d(along, 5 * s)
        if self.shape == "three peaks":
            parts = [math.log(w) + log_normal_1d(u - torch.tensor([d1, d2], dtype=u.dtype), s[..., None]).sum(-1)
                     for d1, d2, w in self.PEAKS]
            return torch.logsumexp(torch.stack(parts), 0)
        if self.shape == "skewed":  # 2 N(u; 0, w^2) Phi(a u / w), sd w sqrt(1 - 2 delta^2 / pi)
            a = torch.tensor(self.SKEW, dtype=u.dtype)
            delta = a / torch.sqrt(1 + a**2)
            w = s[..., None] / torch.sqrt(1 - 2 * delta**2 / math.pi)
            return (math.log(2) + log_normal_1d(u, w) + torch.special.log_ndtr(a * u / w)).sum(-1)
        if self.shape == "banana":
            return log_normal_1d(u[..., 0], 5 * s) + log_normal_1d(u[..., 1] - u[..., 0] ** 2 / (10 * s), s)
        raise ValueError(self.shape)

    def box(self, c, s):
        """A rectangle holding all but a negligible part of q: (low corner, high corner)."""
        c = torch.tensor(c, dtype=torch.float64)
        if self.shape == "three peaks":
            centres = c + torch.tensor([peak[:2] for peak in self.PEAKS], dtype=torch.float64)
            return centres.min(0).values - 12 * s, centres.max(0).values + 12 * s
        if self.shape == "banana":
            return c + torch.tensor([-50 * s, -12 * s]), c + torch.tensor([50 * s, 250 * s + 12 * s])
        reach = {"round": 12 * s, "ridge": 60 * s, "skewed": 30 * s}[self.shape]
        return c - reach, c + reach

    def __call__(self, x, z):  # log p(x|z) = log Z + log q(z) - log N(z; 0, I): (N, 4), (G, 2) -> (N, G)
        log_prior = -0.5 * (z**2).sum(-1) - LOG_2PI
        return x[:, None, 0] + self.log_q(z[None], x[:, None, 1:3], x[:, None, 3]) - log_prior


def fine_log_px(log_joint, low, high, h):
    """log of the rectangle rule sum_g exp(log_joint(z_g)) h^2 over the points of spacing h in [low, high]."""
    axes = [torch.arange(float(a), float(b) + h / 2, h, dtype=torch.float64) for a, b in zip(low, high)]
    Z1, Z2 = torch.meshgrid(*axes, indexing="ij")
    return (torch.logsumexp(log_joint(torch.stack([Z1, Z2], -1).reshape(-1, 2)), 0) + 2 * math.log(h)).item()


def sharp_rows(places=tuple(PLACES)):
    """x for every standard deviation in SHARP at every place, log Z = -90 - row number; and the row labels."""
    cases = [(s, place) for s in SHARP for place in places]
    x = torch.tensor([[-90.0 - i, *PLACES[place][s], s] for i, (s, place) in enumerate(cases)], dtype=torch.float64)
    return x, cases


@pytest.mark.parametrize("shape", ["round", "ridge", "three peaks", "skewed", "banana"])
def test_converged_log_px_agrees_with_a_float64_quadrature_on_sharp_posteriors(shape):
    """Posteriors of sd 0.005 to 0.05 between the grid points: within 0.01 nats of a rectangle rule of spacing s / 4
    in float64 over a box around q (whose error is far below 1e-9 here: it matches log Z, q's closed form)."""
    model = KnownPosterior(shape)
    x, cases = sharp_rows()
    reference = []
    for row, (s, _) in zip(x, cases):
        low, high = model.box(row[1:3].tolist(), s)
        reference.append(fine_log_px(lambda z: row[0] + model.log_q(z, row[1:3], row[3]), low, high, s / 4))
    reference = torch.tensor(reference, dtype=torch.float64)
    torch.testing.assert_close(reference, x[:, 0], rtol=0, atol=1e-9)  # the quadrature is right
    log_px, _, report = converged_log_px(model, x)
    errors = {case: round(error, 5) for case, error in zip(cases, (log_px - reference).tolist()) if abs(error) >= 0.01}
    assert not errors, f"{shape}: (sd, place): log p(x) - reference, in nats: {errors}"
    assert report["converged"] and report["max_image_drop"] <= 1.0


def test_a_change_below_tol_alone_stops_on_aliased_estimates():
    """The stopping rule without the drop (max_drop = inf, the rule before it) is off by far more than 0.01 nats on
    the round posteriors above at the places named: what the test above would catch; with the drop it is not."""
    model = KnownPosterior("round")
    x, cases = sharp_rows()
    old, _, _ = converged_log_px(model, x, max_drop=math.inf)
    new, _, _ = converged_log_px(model, x)
    off = {case for case, error in zip(cases, (old - x[:, 0]).abs().tolist()) if error >= 0.01}
    assert off == {(s, place) for s in (0.005, 0.01, 0.02) for place in ("midway", "chance")}
    assert (old - x[:, 0]).abs().max() > 20  # sd 0.005, midway: the peak never seen by levels 0 and 1
    assert (new - x[:, 0]).abs().max() < 1e-6


@pytest.mark.parametrize("angle", [0.0, 0.3, math.pi / 8])
def test_tile_drop_reads_a_gaussian_posterior_width_off_a_grid_too_coarse_to_resolve_it(angle):
    """l = log N(z; c, R diag(s^2, (5 s)^2) R^T) on tiles of spacing h = 0.1 = 10 s, c between the points: every
    tile's drop is the largest of (h / s_v)^2 over the axes and diagonals v, 1 / s_v^2 = u^T S^-1 u, u = v / |v|:
    between cos^2(22.5 degrees) (h / s)^2 and (h / s)^2."""
    h, s = 0.1, 0.01
    cos, sin = math.cos(angle), math.sin(angle)
    R = torch.tensor([[cos, -sin], [sin, cos]], dtype=torch.float64)
    precision = R @ torch.diag(torch.tensor([s**-2, (5 * s) ** -2], dtype=torch.float64)) @ R.T
    tiles = grid_points(torch.arange(-2, 2), torch.arange(-2, 2))  # (16, 2), 4 x 4 points each
    offsets = torch.arange(4)
    index = (tiles[:, None, :] * 4 + grid_points(offsets, offsets)).reshape(-1, 2)
    u = index.double() * h - torch.tensor([0.0371, -0.0129], dtype=torch.float64)
    l = -0.5 * torch.einsum("gi,ij,gj->g", u, precision, u)
    drop = vaelib.exact.tile_drop(l.reshape(1, len(tiles), 4, 4))  # (1, 16)
    directions = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    expected = h**2 * torch.einsum("vi,ij,vj->v", directions, precision, directions).max()
    torch.testing.assert_close(drop, expected.expand(1, len(tiles)), rtol=1e-9, atol=0)
    assert math.cos(math.pi / 8) ** 2 * (h / s) ** 2 - 1e-9 <= expected <= (h / s) ** 2 + 1e-9


def test_converged_log_px_refuses_tiles_too_small_to_measure_the_drop():
    with pytest.raises(ValueError, match="tile_size must be at least 3"):
        converged_log_px(LinearGaussian(), LinearGaussian().x, tile_size=2)


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_quadrature_integrates_against_a_learned_prior(prior):
    """A 2-D VAE with a learned prior (D = 20, an informative decoder): converged_log_px and log_px_grid against
    a rectangle rule written here in float64 over [-8, 8]^2 at h = 0.02, with Bernoulli(logits=...) and the prior
    as torch.distributions.MixtureSameFamily; the N(0, I) prior would be off by far more than the tolerance."""
    import copy

    from torch.distributions import Bernoulli, Categorical, MixtureSameFamily

    torch.manual_seed(0)
    model = VAE(ModelConfig(x_dim=20, hidden=(8,), z_dim=2, prior=prior, prior_components=3))
    with torch.no_grad():
        model.decoder[-1].weight.mul_(4)  # posteriors a few tenths wide
        if prior == "mog":  # three narrow components, far from N(0, I)
            model.prior.means.copy_(torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]]))
            model.prior.logvars.fill_(math.log(0.4**2))
        else:  # the encoder's Gaussians at the pseudo-inputs: as narrow, and spread apart
            model.mu_head.weight.mul_(8)
            model.logvar_head.weight.zero_()
            model.logvar_head.bias.fill_(math.log(0.4**2))
    x = torch.bernoulli(torch.full((4, 20), 0.5), generator=torch.Generator().manual_seed(1))

    double = copy.deepcopy(model).double()
    with torch.no_grad():
        means, logvars, logits = double.prior.components()
        p_z = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(means, torch.exp(0.5 * logvars)), 1))
        axis = torch.arange(-400, 401, dtype=torch.float64) * 0.02
        z = grid_points(axis, axis)
        log_px_z = torch.cat([Bernoulli(logits=double.decode(part)).log_prob(x.double()[:, None, :]).sum(-1)
                              for part in z.split(100_000)], 1)  # (N, G)
        reference = torch.logsumexp(log_px_z + p_z.log_prob(z), 1) + 2 * math.log(0.02)
        standard = torch.logsumexp(log_px_z + Normal(0.0, 1.0).log_prob(z).sum(-1), 1) + 2 * math.log(0.02)
    log_px, _, report = converged_log_px(model, x)
    assert report["converged"]
    torch.testing.assert_close(log_px.double(), reference, rtol=0, atol=0.01)
    torch.testing.assert_close(log_px_grid(model, x, 8.0, 0.02).double(), reference, rtol=0, atol=1e-3)
    assert (standard - reference).abs().min() > 0.1


def test_covering_half_width_holds_codes_that_a_learned_prior_put_far_out():
    """A mixture prior with its components at (14, -12) and an encoder that puts the codes there: the default
    square [-8, 8]^2 misses the mass (and says so), the covering one holds it; the reference is a float64
    rectangle rule over a square around the components, written here with torch.distributions."""
    from torch.distributions import Bernoulli, Categorical, MixtureSameFamily

    from vaelib.exact import covering_half_width

    torch.manual_seed(0)
    model = VAE(ModelConfig(x_dim=20, hidden=(8,), z_dim=2, prior="mog", prior_components=2))
    with torch.no_grad():
        model.prior.means.copy_(torch.tensor([[14.0, -12.0], [13.0, -11.0]]))
        model.prior.logvars.fill_(math.log(0.5**2))
        model.mu_head.weight.zero_()
        model.mu_head.bias.copy_(torch.tensor([13.5, -11.5]))
        model.logvar_head.weight.zero_()
        model.logvar_head.bias.fill_(math.log(0.7**2))
    x = torch.bernoulli(torch.full((3, 20), 0.5), generator=torch.Generator().manual_seed(1))
    a = covering_half_width(model, x)
    assert a >= 17 and a == int(a)

    with torch.no_grad():
        means, logvars, logits = model.double().prior.components()
        p_z = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(means, torch.exp(0.5 * logvars)), 1))
        axis1, axis2 = 13.5 + torch.arange(-300, 301, dtype=torch.float64) * 0.02, -11.5 + torch.arange(-300, 301, dtype=torch.float64) * 0.02
        z = grid_points(axis1, axis2)
        log_px_z = Bernoulli(logits=model.decode(z)).log_prob(x.double()[:, None, :]).sum(-1)
        reference = torch.logsumexp(log_px_z + p_z.log_prob(z), 1) + 2 * math.log(0.02)
    model.float()
    log_px, _, _ = converged_log_px(model, x, half_width=a)
    torch.testing.assert_close(log_px.double(), reference, rtol=0, atol=0.01)
    with pytest.warns(UserWarning):
        missed, _, _ = converged_log_px(model, x)  # [-8, 8]^2: far from the mass
    assert (missed.double() < reference - 1).all()
