"""The fast training step against the plain one: same draws, same loss, same gradients, same training."""

import pytest
import torch
import torch.nn.functional as F

from vaelib.config import ModelConfig, TrainConfig
from vaelib.elbo import elbo_terms
from vaelib.model import VAE
from vaelib.train import Batches, NegLogLikelihood, fast_loss, lr_factor, train


def test_fast_loss_and_gradients_equal_the_plain_elbo_loss(sample_data):
    torch.manual_seed(0)
    model = VAE()
    x = torch.bernoulli(sample_data.train_x[:100], generator=torch.Generator().manual_seed(1))
    plain = -elbo_terms(model, x, torch.Generator().manual_seed(2)).elbo.mean()
    plain_grads = torch.autograd.grad(plain, list(model.parameters()))
    fast = fast_loss(model, x, torch.Generator().manual_seed(2))
    torch.testing.assert_close(fast, plain)
    for ours, reference in zip(torch.autograd.grad(fast, list(model.parameters())), plain_grads):
        torch.testing.assert_close(ours, reference)


def test_a_beta_weighted_loss_has_the_gradient_of_its_plain_form(sample_data):
    torch.manual_seed(0)
    model = VAE(ModelConfig(hidden=(32,)))
    x = torch.bernoulli(sample_data.train_x[:50], generator=torch.Generator().manual_seed(1))
    terms = elbo_terms(model, x, torch.Generator().manual_seed(2))
    plain = -(terms.log_px_z - 4.0 * terms.kl).mean()
    fast = fast_loss(model, x, torch.Generator().manual_seed(2), beta=4.0)
    torch.testing.assert_close(fast, plain)
    for ours, reference in zip(torch.autograd.grad(fast, list(model.parameters())),
                               torch.autograd.grad(plain, list(model.parameters()))):
        torch.testing.assert_close(ours, reference)


@pytest.mark.parametrize("variant", [dict(posterior="planar", flow_layers=2), dict(prior="mog"), dict(prior="vamp")])
def test_the_fast_loss_of_a_variant_is_its_elbo_terms_with_the_sampled_kl(sample_data, variant):
    torch.manual_seed(0)
    model = VAE(ModelConfig(hidden=(32,), prior_components=3, **variant))
    x = torch.bernoulli(sample_data.train_x[:50], generator=torch.Generator().manual_seed(1))
    plain = -elbo_terms(model, x, torch.Generator().manual_seed(2)).elbo.mean()
    fast = fast_loss(model, x, torch.Generator().manual_seed(2))
    torch.testing.assert_close(fast, plain)
    for ours, reference in zip(torch.autograd.grad(fast, list(model.parameters())),
                               torch.autograd.grad(plain, list(model.parameters()))):
        torch.testing.assert_close(ours, reference)


def test_batches_draw_what_torch_bernoulli_draws(sample_data):
    images = sample_data.train_x
    batches = Batches(images, 50, torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    batches.shuffle()
    order = torch.randperm(len(images), generator=generator)
    for i in range(3):
        expected = torch.bernoulli(images[order[i * 50:(i + 1) * 50]], generator=generator)
        assert torch.equal(batches(i), expected)


def test_neg_log_likelihood_is_binary_cross_entropy_on_logits_even_far_out():
    logits = torch.cat([torch.linspace(-100, 100, 401), torch.randn(399)]).view(8, 100).requires_grad_()
    x = torch.bernoulli(torch.full((8, 100), 0.5), generator=torch.Generator().manual_seed(0))
    ours = NegLogLikelihood.apply(logits, x)
    reference = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(torch.autograd.grad(ours, logits)[0], torch.autograd.grad(reference, logits)[0])
    doubles = (torch.randn(4, 6, dtype=torch.float64) * 10).requires_grad_()
    assert torch.autograd.gradcheck(NegLogLikelihood.apply, (doubles, x[:4, :6].double()))


def plain_loop(model, data, cfg):
    """The training loop written plainly: indexing, torch.bernoulli, elbo_terms, Adam, LambdaLR."""
    generator = torch.Generator().manual_seed(cfg.seed)
    per_epoch, B = len(data.train_x) // cfg.batch_size, cfg.batch_size
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=False)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg.steps, cfg.lr_schedule))
    losses = []
    for step in range(cfg.steps):
        if step % per_epoch == 0:
            order = torch.randperm(len(data.train_x), generator=generator)
        i = step % per_epoch
        x = torch.bernoulli(data.train_x[order[i * B:(i + 1) * B]], generator=generator)
        terms = elbo_terms(model, x, generator)
        loss = -terms.elbo.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append((loss.item(), terms.kl.mean().item()))
    return losses


def test_train_follows_the_plain_loop_step_for_step(sample_data):
    cfg = TrainConfig(data="sample", steps=100, batch_size=100, seed=5, progress=False)
    torch.manual_seed(0)
    fast_model, plain_model = VAE(ModelConfig(hidden=(64, 32))), VAE(ModelConfig(hidden=(64, 32)))
    plain_model.load_state_dict(fast_model.state_dict())
    history = train(fast_model, sample_data, cfg)  # two epochs of 80 and 20 steps; lr decays from step 75
    losses, kls = zip(*plain_loop(plain_model, sample_data, cfg))
    mean = lambda v: [sum(v[:80]) / 80, sum(v[80:]) / 20]  # noqa: E731
    torch.testing.assert_close(history.train_neg_elbo, mean(losses), rtol=1e-5, atol=0)
    torch.testing.assert_close(history.train_kl, mean(kls), rtol=1e-4, atol=0)
    for ours, reference in zip(fast_model.parameters(), plain_model.parameters()):
        torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5)
