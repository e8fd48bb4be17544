"""The planar-flow posterior: its log q against the change-of-variables formula with an autograd Jacobian, its
density against a histogram of its samples on a 2-D grid, and the constraint that keeps each layer invertible."""

import math

import pytest
import torch
from torch.distributions import Independent, Normal

from vaelib.config import ModelConfig
from vaelib.flows import constrained_u, layers_of, planar
from vaelib.model import VAE


def planar_vae(z_dim=2, layers=3, seed=0):
    torch.manual_seed(seed)
    return VAE(ModelConfig(x_dim=6, hidden=(8,), z_dim=z_dim, posterior="planar", flow_layers=layers)).double()


def images(n, seed=1):
    return torch.bernoulli(torch.full((n, 6), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(seed))


def test_log_q_is_the_change_of_variables_formula_with_the_jacobian_autograd_computes():
    """log q(z|x) = log N(z_0; mu, std^2) - log |det dz/dz_0|, the Jacobian of the whole flow by
    torch.autograd.functional.jacobian, sample by sample; z_0 = mu + std * eps from the same eps."""
    model, x = planar_vae(z_dim=3), images(3)
    z, log_q = model.sample_posterior(x, 4, torch.Generator().manual_seed(2))  # (4, 3, 3), (4, 3)
    eps = torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mu, logvar = model.encode(x)
    z0, h = mu + torch.exp(0.5 * logvar) * eps, model.encoder(x)
    for k in range(4):
        for b in range(3):
            def flow(v, b=b):  # one image's flow: (L,) -> (L,)
                return model.flow(v[None], h[b:b + 1])[0][0]

            jacobian = torch.autograd.functional.jacobian(flow, z0[k, b])  # (L, L)
            expected = Independent(Normal(mu[b], torch.exp(0.5 * logvar[b])), 1).log_prob(z0[k, b]) \
                - torch.linalg.slogdet(jacobian).logabsdet
            torch.testing.assert_close(z[k, b], flow(z0[k, b]))
            torch.testing.assert_close(log_q[k, b], expected)


def test_the_constraint_keeps_every_layer_invertible_however_u_is_set():
    """w . u_hat >= -1, so along w the layer a -> a + (w . u_hat) tanh(a + b) is increasing and the determinant
    positive; a raw u with w . u = -3 would fold the plane (the same test fails for it)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1000, 2, generator=g, dtype=torch.float64)
    u = torch.randn(1000, 2, generator=g, dtype=torch.float64) * 3
    u[500:] = -3 * w[500:] / w[500:].pow(2).sum(-1, keepdim=True)  # half of them adversarial: w . u = -3
    b = torch.randn(1000, generator=g, dtype=torch.float64)
    assert ((w * constrained_u(u, w)).sum(-1) >= -1 - 1e-12).all()  # up to rounding: -1 where softplus(w . u) ~ 0
    a = torch.linspace(-6, 6, 2001, dtype=torch.float64)[:, None]  # points a w / |w|^2 on the line along w
    line = a[..., None] * w / w.pow(2).sum(-1, keepdim=True)  # (2001, 1000, 2)
    moved, log_det = planar(line, u, w, b)
    along = (moved * w).sum(-1)  # w . f(z), (2001, 1000)
    assert (along.diff(dim=0) > 0).all() and torch.isfinite(log_det).all()
    raw = line + u * torch.tanh((line * w).sum(-1) + b)[..., None]  # the layer without the constraint
    assert ((raw * w).sum(-1).diff(dim=0)[:, 500:] < 0).any(dim=0).all()  # folded: not one-to-one


def invert(model, z, h):
    """The flow's inverse for one image, layer by layer: a = w . z_(l-1) solves a + (w . u_hat) tanh(a + b) = w . z_l,
    whose left side increases in a, by bisection. Shapes: (G, L), (1, H) -> (G, L)."""
    for u, w, b in reversed(layers_of(model.flow.head(h), model.config.z_dim)):
        u_hat, w, b = constrained_u(u, w)[0], w[0], b[0]
        c, target = (w * u_hat).sum(), z @ w
        low, high = target - c.abs() - 1, target + c.abs() + 1
        for _ in range(40):  # to 1e-12 of the starting interval
            mid = (low + high) / 2
            above = mid + c * torch.tanh(mid + b) > target
            low, high = torch.where(above, low, mid), torch.where(above, mid, high)
        z = z - u_hat * torch.tanh((low + high) / 2 + b)[:, None]
    return z


def test_the_density_integrates_to_one_and_a_histogram_of_samples_matches_it():
    """On a 2-D grid: log q(z) = log N(z_0; mu, std^2) - sum log|det| at z_0 = f^-1(z) (inverted here by bisection)
    sums to 1, and 400,000 samples fall into 0.25-wide bins as q says, to a total variation of 0.03 (the sampling
    noise alone is about 0.01; q without its log-det term is off by far more)."""
    model, x = planar_vae(layers=3), images(1)
    with torch.no_grad():  # a strongly bent q: the same u, w, b for every image, chosen here
        model.flow.head.weight.zero_()
        model.flow.head.bias.copy_(torch.tensor([1.5, 0.0, 0.0, 2.0, 0.0,  # u, w, b of layer 1
                                                 0.0, -1.2, 1.5, 0.5, 0.5,
                                                 -0.8, 0.9, -1.0, 1.2, -0.2], dtype=torch.float64))
        z, _ = model.sample_posterior(x, 400_000, torch.Generator().manual_seed(3))
        z, h, (mu, logvar) = z[:, 0], model.encoder(x), model.encode(x)
        width, cells = 0.25, 5  # histogram bins, and midpoint-rule cells per bin side
        low = torch.floor(z.min(0).values / width - 2) * width
        bins = (torch.ceil(z.max(0).values / width + 2) * width - low).div(width).round().long()
        h_cell = width / cells
        axes = [low[i] + (torch.arange(bins[i] * cells, dtype=torch.float64) + 0.5) * h_cell for i in range(2)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)  # (G, 2)
        z0 = invert(model, grid, h)
        forward, log_det = model.flow(z0[:, None, :], h)  # back again, with the flow's own log-det
        torch.testing.assert_close(forward[:, 0], grid)
        log_q0 = Independent(Normal(mu[0], torch.exp(0.5 * logvar[0])), 1).log_prob(z0)
        mass = (log_q0 - log_det[:, 0]).exp() * h_cell**2
        assert abs(mass.sum().item() - 1) < 2e-3

        def per_bin(m):
            return m.reshape(bins[0], cells, bins[1], cells).sum((1, 3))

        index = ((z - low) / width).long()
        counts = torch.zeros(*bins.tolist(), dtype=torch.float64).index_put_((index[:, 0], index[:, 1]),
                                                                             torch.ones(len(z), dtype=torch.float64),
                                                                             accumulate=True)
        tv = 0.5 * (counts / len(z) - per_bin(mass)).abs().sum().item()
        assert tv < 0.03, tv
        wrong = log_q0.exp() * h_cell**2  # the base Gaussian's density at z_0, without the log-det term
        assert 0.5 * (counts / len(z) - per_bin(wrong / wrong.sum())).abs().sum().item() > 0.1


def test_the_flow_is_amortised_each_image_has_its_own_and_forward_decodes_its_z():
    model, x = planar_vae(), images(2)
    (u1, w1, b1), *_ = layers_of(model.flow.head(model.encoder(x)), model.config.z_dim)
    assert not torch.equal(u1[0], u1[1]) and not torch.equal(w1[0], w1[1]) and b1[0] != b1[1]
    z, _ = model.sample_posterior(x, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(model(x, torch.Generator().manual_seed(4))[0], model.decode(z))


@pytest.mark.parametrize("layers", [1, 4])
def test_a_planar_vae_has_the_plain_ones_weights_first_then_the_flows(layers):
    torch.manual_seed(0)
    plain = VAE(ModelConfig(hidden=(8,)))
    torch.manual_seed(0)
    flow = VAE(ModelConfig(hidden=(8,), posterior="planar", flow_layers=layers))
    assert all(torch.equal(v, flow.state_dict()[k]) for k, v in plain.state_dict().items())
    assert flow.flow.head.out_features == layers * (2 * 2 + 1) and not math.isnan(flow.flow.head.bias.sum().item())
