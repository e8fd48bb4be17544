"""The ELBO terms and the IWAE bound against torch.distributions, closed forms and each other."""

import math

import pytest
import torch
from torch.distributions import (Bernoulli, Categorical, Independent, MixtureSameFamily, MultivariateNormal, Normal,
                                 kl_divergence)

from vaelib.config import ModelConfig
from vaelib.elbo import (IWAE, bernoulli_log_likelihood, elbo_terms, importance_estimate, iwae_bound, iwae_dreg_terms,
                         iwae_terms, kl_normal, kl_standard_normal, log_normal)
from vaelib.model import VAE
from vaelib.priors import StandardNormal


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(64, 5, generator=g) * 2, torch.randn(64, 5, generator=g)
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = Independent(Normal(torch.zeros(5), torch.ones(5)), 1)
    torch.testing.assert_close(kl_standard_normal(mu, logvar), kl_divergence(q, p))


def test_kl_between_two_gaussians_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu_q, lv_q, mu_p, lv_p = (torch.randn(64, 5, generator=g) * 2 for _ in range(4))
    q = Independent(Normal(mu_q, torch.exp(0.5 * lv_q)), 1)
    p = Independent(Normal(mu_p, torch.exp(0.5 * lv_p)), 1)
    torch.testing.assert_close(kl_normal(mu_q, lv_q, mu_p, lv_p), kl_divergence(q, p))
    zeros = torch.zeros_like(mu_q)
    torch.testing.assert_close(kl_normal(mu_q, lv_q, zeros, zeros), kl_standard_normal(mu_q, lv_q))


def test_kl_is_zero_only_at_the_prior():
    assert kl_standard_normal(torch.zeros(1, 3), torch.zeros(1, 3)).item() == 0.0
    assert kl_standard_normal(torch.full((1, 3), 0.1), torch.zeros(1, 3)).item() > 0


def test_log_likelihood_matches_bernoulli_log_prob():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(32, 784, generator=g) * 30  # includes saturated pixels
    x = torch.bernoulli(torch.full((32, 784), 0.3), generator=g)
    expected = Bernoulli(logits=logits).log_prob(x).sum(-1)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), expected)


def test_the_hand_written_log_likelihood_gradient_matches_bernoulli_log_prob():
    """Its gradient is written out: checked against torch.distributions' by autograd, for the logits and for x,
    with x broadcast over K draws as the IWAE uses it, and by gradcheck (first and second order) in float64."""
    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(4, 6, 784, generator=g) * 30).requires_grad_()
    x = torch.bernoulli(torch.full((6, 784), 0.3), generator=g).requires_grad_()
    ours = torch.autograd.grad(bernoulli_log_likelihood(logits, x).sum(), (logits, x))
    theirs = torch.autograd.grad(Bernoulli(logits=logits, validate_args=False).log_prob(x).sum(), (logits, x))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
    small = (torch.randn(3, 2, 5, generator=g, dtype=torch.float64) * 8).requires_grad_()
    pixels = torch.rand(2, 5, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(bernoulli_log_likelihood, (small, pixels))
    assert torch.autograd.gradgradcheck(bernoulli_log_likelihood, (small, pixels))


def test_log_normal_matches_torch_distributions():
    g = torch.Generator().manual_seed(2)
    z, mu, logvar = (torch.randn(10, 3, generator=g) for _ in range(3))
    expected = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(z)
    torch.testing.assert_close(log_normal(z, mu, logvar), expected)


class LinearGaussian(torch.nn.Module):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s2 I): log p(x) = log N(x; b, W W^T + s2 I) exactly.

    It follows vaelib.model.LatentVariableModel as iwae_bound uses it: posterior_params(x) gives a deliberately
    imperfect q(z|x), draw_posterior draws from it, decode(z) gives the mean, and the likelihood is swapped in by
    monkeypatching.
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

    def posterior_params(self, x):
        mu, logvar = self.encode(x)
        return {"mu": mu, "logvar": logvar}

    def draw_posterior(self, params, k, generator=None):
        mu, logvar = params["mu"], params["logvar"]
        z = mu + torch.exp(0.5 * logvar) * torch.randn((k, *mu.shape), generator=generator, dtype=mu.dtype)
        return z, log_normal(z, mu, logvar)

    prior = StandardNormal(2)

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


def test_importance_estimate_in_chunks_equals_the_mean_of_all_weights():
    log_w = torch.randn(23, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 3  # (K, B)
    asked, chunks = [], iter(log_w.split(5))

    def draw(c):
        asked.append(c)
        return next(chunks)

    estimate, se = importance_estimate(draw, 23, 5)
    assert asked == [5, 5, 5, 5, 3]
    w = log_w.exp()
    torch.testing.assert_close(estimate, w.mean(0).log())
    torch.testing.assert_close(se, ((w.pow(2).mean(0) / w.mean(0).pow(2) - 1) / 23).sqrt())
    with pytest.raises(ValueError, match="at least 1"):
        importance_estimate(draw, 0, 5)


def test_iwae_standard_error_covers_the_truth(gaussian_likelihood):
    model = gaussian_likelihood
    x = model.decode(torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6)))
    estimate, se = iwae_bound(model, x, 2000, generator=torch.Generator().manual_seed(7), return_se=True)
    z = (estimate - model.log_px(x)) / se
    assert (z.abs() < 4).float().mean() > 0.9


# The IWAE bound as a training objective, for every posterior and prior of vaelib.model.VAE.

VARIANTS = {"plain": {}, "mog": dict(prior="mog", prior_components=3), "vamp": dict(prior="vamp", prior_components=3),
            "planar": dict(posterior="planar", flow_layers=2)}


def tiny_vae(seed=0, **variant):
    torch.manual_seed(seed)
    return VAE(ModelConfig(x_dim=8, hidden=(6,), z_dim=2, **variant)).double()


def tiny_images(n=3, seed=1):
    return torch.bernoulli(torch.full((n, 8), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(seed))


def seeded(seed=2):
    return torch.Generator().manual_seed(seed)


def gradients(loss, model):
    return dict(zip([name for name, _ in model.named_parameters()],
                    torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)))


@pytest.mark.parametrize("variant", VARIANTS)
def test_iwae_with_one_sample_is_the_one_sample_elbo_in_value_and_gradients(variant):
    """With the same eps. The variants' elbo_terms estimate the KL as log q - log p at the sampled z; the plain VAE's
    is in closed form, so there the ELBO is written out here: log p(x|z) + log N(z; 0, I) - log q(z|x)."""
    model, x = tiny_vae(**VARIANTS[variant]), tiny_images()
    iwae = iwae_terms(model, x, 1, seeded()).iwae
    if model.closed_form_kl:
        mu, logvar = model.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=seeded(), dtype=mu.dtype)
        elbo = Bernoulli(logits=model.decode(z)).log_prob(x).sum(-1) + Normal(0.0, 1.0).log_prob(z).sum(-1) \
            - Independent(Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(z)
    else:
        elbo = elbo_terms(model, x, seeded()).elbo
    torch.testing.assert_close(iwae, elbo)
    ours, reference = gradients(-iwae.mean(), model), gradients(-elbo.mean(), model)
    for name in reference:
        torch.testing.assert_close(ours[name], reference[name], msg=name)


def reference_prior(model):
    """p(z) of a Gaussian-posterior VAE as torch.distributions give it."""
    if model.closed_form_kl:
        return Independent(Normal(torch.zeros(2, dtype=torch.float64), 1.0), 1)
    if model.config.prior == "vamp":
        mu, logvar = model.encode(model.prior.pseudo_inputs)
        logits = torch.zeros(len(mu), dtype=torch.float64)
    else:
        mu, logvar, logits = model.prior.means, model.prior.logvars, model.prior.logits
    return MixtureSameFamily(Categorical(logits=logits), Independent(Normal(mu, torch.exp(0.5 * logvar)), 1))


@pytest.mark.parametrize("variant", ["plain", "mog", "vamp"])
def test_iwae_is_a_brute_force_logsumexp_of_torch_distributions(variant):
    """log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x) with Bernoulli(logits=...), Normal and the prior's mixture, from
    the same eps: the training bound (plain and DReG) and the evaluation bound iwae_bound."""
    model, x, K = tiny_vae(**VARIANTS[variant]), tiny_images(), 7
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(K, *mu.shape, generator=seeded(), dtype=mu.dtype)  # (K, B, L)
    log_w = Bernoulli(logits=model.decode(z)).log_prob(x).sum(-1) + reference_prior(model).log_prob(z) \
        - Independent(Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(z)
    expected = torch.logsumexp(log_w, 0) - math.log(K)
    torch.testing.assert_close(iwae_terms(model, x, K, seeded()).iwae, expected)
    torch.testing.assert_close(iwae_dreg_terms(model, x, K, seeded()).iwae, expected)
    torch.testing.assert_close(iwae_bound(model, x, K, generator=seeded()), expected)


def sticking_the_landing(model, x, k, generator):
    """IWAE with q's parameters held fixed in log q and nothing else [Roeder et al. 2017]: DReG without its extra
    weight w~_k, biased for K > 1 [Tucker et al. 2019], so the test below must catch it."""
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn((k, *mu.shape), generator=generator, dtype=mu.dtype)
    log_w = bernoulli_log_likelihood(model.decode(z), x) + log_normal(z) - log_normal(z, mu.detach(), logvar.detach())
    return IWAE(torch.logsumexp(log_w, 0) - math.log(k), None)


def encoder_gradient_gap(estimator, model, x, K, groups=50, copies=100):
    """Paired t statistics of (estimator - plain) encoder gradients of -IWAE_K, for the same eps: `groups`
    independent means over `copies` draws each (the images repeated). Coordinates where the two always agree
    (dead ReLU units) must agree exactly. Shapes: -> (P,) over the encoder's parameters."""
    encoder = [p for name, p in model.named_parameters() if not name.startswith("decoder")]
    copied = x.repeat(copies, 1)

    def gradient(terms, seed):
        loss = -terms(model, copied, K, seeded(seed)).iwae.mean()
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, encoder)])

    gaps = torch.stack([gradient(estimator, seed) - gradient(iwae_terms, seed) for seed in range(groups)])
    spread = gaps.std(0)
    assert (gaps[:, spread == 0] == 0).all()
    return gaps.mean(0)[spread > 0] / (spread[spread > 0] / math.sqrt(groups))


def test_dreg_encoder_gradient_has_the_plain_ones_expectation():
    """Averaged over 5,000 draws of eps on a tiny model, K = 5: no encoder coordinate's mean differs from the plain
    estimator's by 5 standard errors (paired), while the biased variant above differs by far more."""
    model, x = tiny_vae(), tiny_images()
    assert encoder_gradient_gap(iwae_dreg_terms, model, x, K=5).abs().max() < 5
    assert encoder_gradient_gap(sticking_the_landing, model, x, K=5).abs().max() > 10


@pytest.mark.parametrize("variant", ["plain", "mog", "vamp"])
def test_dreg_gives_the_decoder_and_the_prior_the_plain_gradient(variant):
    model, x = tiny_vae(**VARIANTS[variant]), tiny_images()
    plain = gradients(-iwae_terms(model, x, 5, seeded()).iwae.mean(), model)
    dreg = gradients(-iwae_dreg_terms(model, x, 5, seeded()).iwae.mean(), model)
    for name in plain:
        if name.startswith(("decoder", "prior")):
            torch.testing.assert_close(dreg[name], plain[name], msg=name)
    assert not torch.allclose(dreg["mu_head.weight"], plain["mu_head.weight"])  # the encoder's differs


def test_dreg_refuses_a_planar_posterior_and_says_what_to_use():
    with pytest.raises(ValueError, match="planar flow.*--gradient plain"):
        iwae_dreg_terms(tiny_vae(**VARIANTS["planar"]), tiny_images(), 3, seeded())
