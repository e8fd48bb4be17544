"""The learned priors: log p(z) against torch.distributions.MixtureSameFamily, and model.sample drawing from them."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vaelib.config import ModelConfig
from vaelib.model import VAE
from vaelib.priors import direct_mixture_log_prob, mixture_log_prob

MEANS = [[-6.0, 0.0], [6.0, 0.0], [0.0, 6.0]]
WEIGHTS = [0.2, 0.3, 0.5]


def mixture_vae():
    """A 2-D VAE with a mixture prior of three well-separated components, set here."""
    torch.manual_seed(0)
    model = VAE(ModelConfig(x_dim=10, hidden=(8,), z_dim=2, prior="mog", prior_components=3))
    with torch.no_grad():
        model.prior.means.copy_(torch.tensor(MEANS))
        model.prior.logvars.copy_(torch.log(torch.tensor([[0.25, 1.0], [1.0, 0.5], [0.3, 0.3]])))
        model.prior.logits.copy_(torch.log(torch.tensor(WEIGHTS)) + 1.7)  # logits, not log-probabilities
    return model


def reference(means, logvars, logits):
    return MixtureSameFamily(Categorical(logits=logits), Independent(Normal(means, torch.exp(0.5 * logvars)), 1))


def test_mixture_log_prior_is_mixture_same_family():
    model = mixture_vae()
    z = torch.randn(5, 7, 2, generator=torch.Generator().manual_seed(1)) * 5  # any batch shape (..., L)
    expected = reference(model.prior.means, model.prior.logvars, model.prior.logits).log_prob(z)
    torch.testing.assert_close(model.prior.log_prob(z), expected)


def test_mixture_log_prob_of_far_out_codes_under_narrow_components():
    """Float32 codes in, float32 out, against MixtureSameFamily in float64, where expanding the square in
    float32 would miss by 0.13 nats: codes out to |z| = 17 (as notebook 8's mixture priors put them),
    components as narrow as sd 0.01; its gradients too, and the direct form (MPS's) agrees. The
    tolerance is float32's rounding of log-densities of a few thousand nats."""
    g = torch.Generator().manual_seed(3)
    C, L = 40, 5
    means = (torch.randn(C, L, generator=g) * 8).requires_grad_()
    logvars = (torch.rand(C, L, generator=g) * 9.2 - 9.2).requires_grad_()  # sd from 0.01 to 1
    logits = torch.randn(C, generator=g).requires_grad_()
    z = (means[torch.randint(C, (300,), generator=g)] + 0.05 * torch.randn(300, L, generator=g)).detach()
    z = z.clamp(-17, 17).requires_grad_()
    got = mixture_log_prob(z, means, logvars, logits)
    assert got.dtype == torch.float32
    leaves = (z, means, logvars, logits)
    doubles = [t.detach().double().requires_grad_() for t in leaves]
    expected = reference(*doubles[1:]).log_prob(doubles[0])
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=1e-4)
    for mine, theirs in zip(torch.autograd.grad(got.sum(), leaves), torch.autograd.grad(expected.sum(), doubles)):
        torch.testing.assert_close(mine.double(), theirs, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(direct_mixture_log_prob(z, means, logvars, logits), got, rtol=0, atol=5e-3)


def test_vamp_prior_is_the_mixture_of_the_encoders_gaussians_at_the_pseudo_inputs():
    torch.manual_seed(0)
    model = VAE(ModelConfig(x_dim=10, hidden=(8,), z_dim=3, prior="vamp", prior_components=4))
    mu, logvar = model.encode(model.prior.pseudo_inputs)  # q(z|u_c), c = 1..4
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    expected = reference(mu, logvar, torch.zeros(4)).log_prob(z)
    torch.testing.assert_close(model.prior.log_prob(z), expected)
    model.prior.log_prob(z).sum().backward()  # learned: the pseudo-inputs and the encoder both get gradients
    assert model.prior.pseudo_inputs.grad.abs().sum() > 0 and model.mu_head.weight.grad.abs().sum() > 0


def test_sample_draws_from_the_learned_prior():
    """Each component's share of 40,000 draws within 4.5 binomial standard errors of its weight, and its draws
    with the component's mean and variance; model.sample decodes the very same z."""
    model, n = mixture_vae(), 40_000
    z = model.prior.sample(n, torch.Generator().manual_seed(2))
    nearest = torch.cdist(z, torch.tensor(MEANS)).argmin(1)
    for c, weight in enumerate(WEIGHTS):
        share = (nearest == c).float().mean().item()
        assert abs(share - weight) < 4.5 * math.sqrt(weight * (1 - weight) / n)
        mine = z[nearest == c]
        std = torch.exp(0.5 * model.prior.logvars[c].detach())
        standard_error = std.max().item() / math.sqrt(len(mine))
        torch.testing.assert_close(mine.mean(0), model.prior.means[c].detach(), atol=5 * standard_error, rtol=0)
        torch.testing.assert_close(mine.std(0), std, rtol=0.05, atol=0)
    torch.testing.assert_close(model.sample(5, torch.Generator().manual_seed(3)),
                               torch.sigmoid(model.decode(model.prior.sample(5, torch.Generator().manual_seed(3)))))


@pytest.mark.parametrize("prior", ["normal", "mog", "vamp"])
def test_the_same_seed_draws_the_same_samples(prior):
    model = VAE(ModelConfig(x_dim=10, hidden=(8,), prior=prior, prior_components=3))
    draw = [model.sample(4, torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(*draw) and not torch.equal(draw[0], model.sample(4, torch.Generator().manual_seed(6)))
