"""The ELBO terms against torch.distributions and closed forms."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, MultivariateNormal, Normal, kl_divergence

from vaelib.elbo import bernoulli_log_likelihood, iwae_bound, kl_standard_normal, log_normal


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(64, 5, generator=g) * 2, torch.randn(64, 5, generator=g)
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = Independent(Normal(torch.zeros(5), torch.ones(5)), 1)
    torch.testing.assert_close(kl_standard_normal(mu, logvar), kl_divergence(q, p))


def test_kl_is_zero_only_at_the_prior():
    assert kl_standard_normal(torch.zeros(1, 3), torch.zeros(1, 3)).item() == 0.0
    assert kl_standard_normal(torch.full((1, 3), 0.1), torch.zeros(1, 3)).item() > 0


def test_log_likelihood_matches_bernoulli_log_prob():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(32, 784, generator=g) * 30  # includes saturated pixels
    x = torch.bernoulli(torch.full((32, 784), 0.3), generator=g)
    expected = Bernoulli(logits=logits).log_prob(x).sum(-1)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), expected)


def test_log_normal_matches_torch_distributions():
    g = torch.Generator().manual_seed(2)
    z, mu, logvar = (torch.randn(10, 3, generator=g) for _ in range(3))
    expected = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(z)
    torch.testing.assert_close(log_normal(z, mu, logvar), expected)


class LinearGaussian(torch.nn.Module):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s2 I): log p(x) = log N(x; b, W W^T + s2 I) exactly.

    It quacks like a VAE for iwae_bound: encode(x) gives a deliberately imperfect q(z|x), sample_posterior
    draws from it, decode(z) gives the mean, and the likelihood is swapped in by monkeypatching.
    """

    def __init__(self, D=6, L=2, s2=0.5, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W, self.b, self.s2 = torch.randn(D, L, generator=g, dtype=torch.float64), \
            torch.randn(D, generator=g, dtype=torch.float64), s2

    def encode(self, x):  # the exact posterior mean, shifted, with too small a variance
        L = self.W.shape[1]
        precision = torch.eye(L, dtype=x.dtype) + self.W.T @ self.W / self.s2
        mean = torch.linalg.solve(precision, self.W.T @ (x - self.b).T / self.s2).T
        return mean + 0.3, torch.full_like(mean, math.log(0.3))

    def sample_posterior(self, x, k, generator=None):
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn((k, *mu.shape), generator=generator, dtype=x.dtype)
        return z, log_normal(z, mu, logvar)

    def log_prior(self, z):
        return log_normal(z)

    def decode(self, z):
        return z @ self.W.T + self.b

    def log_px(self, x):
        cov = self.W @ self.W.T + self.s2 * torch.eye(len(self.b), dtype=x.dtype)
        return MultivariateNormal(self.b, cov).log_prob(x)


@pytest.fixture
def gaussian_likelihood(monkeypatch):
    model = LinearGaussian()

    def log_px_z(mean, x):
        return Independent(Normal(mean, math.sqrt(model.s2)), 1).log_prob(x.expand_as(mean))

    monkeypatch.setattr("vaelib.elbo.bernoulli_log_likelihood", log_px_z)
    return model


def test_elbo_below_log_px_and_iwae_closes_in(gaussian_likelihood):
    model = gaussian_likelihood
    g = torch.Generator().manual_seed(3)
    x = model.decode(torch.randn(20, 2, generator=g, dtype=torch.float64)) + torch.randn(20, 6, generator=g, dtype=torch.float64)
    truth = model.log_px(x)
    gaps = []
    for k in (1, 10, 100, 10_000):
        estimate = torch.stack([iwae_bound(model, x, k, chunk=997, generator=g) for _ in range(20)]).mean(0)
        gaps.append((truth - estimate).mean().item())
    assert gaps[0] > 0.05  # the ELBO (K = 1) sits clearly below log p(x) for this poor q
    assert all(a > b for a, b in zip(gaps, gaps[1:]))  # and the bound tightens with K
    assert abs(gaps[-1]) < 0.02 * gaps[0]  # K = 10,000 in chunks of 997: all but at log p(x)


def test_iwae_standard_error_covers_the_truth(gaussian_likelihood):
    model = gaussian_likelihood
    x = model.decode(torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6)))
    estimate, se = iwae_bound(model, x, 2000, generator=torch.Generator().manual_seed(7), return_se=True)
    z = (estimate - model.log_px(x)) / se
    assert (z.abs() < 4).float().mean() > 0.9
