"""The training objectives (vaelib.registry.OBJECTIVES) against the plain loss written out, and the training
loop against a plain loop: same draws, same loss, same gradients, same training."""

import pytest
import torch

from vaelib import registry
from vaelib.config import ModelConfig, TrainConfig
from vaelib.elbo import elbo_terms, iwae_terms
from vaelib.model import VAE
from vaelib.train import Batches, lr_factor, train


def gradients(loss, model):
    return torch.autograd.grad(loss, list(model.parameters()))


@pytest.mark.parametrize("variant", [dict(), dict(posterior="planar", flow_layers=2), dict(prior="mog"),
                                     dict(prior="vamp")])
@pytest.mark.parametrize("beta", [1.0, 4.0])
def test_the_elbo_objective_is_the_beta_weighted_elbo_loss_in_value_and_gradients(sample_data, variant, beta):
    torch.manual_seed(0)
    model = VAE(ModelConfig(hidden=(32,), prior_components=3, **variant))
    x = torch.bernoulli(sample_data.train_x[:50], generator=torch.Generator().manual_seed(1))
    terms = elbo_terms(model, x, torch.Generator().manual_seed(2))
    plain = -(terms.log_px_z - beta * terms.kl).mean()
    loss, reported = registry.OBJECTIVES["elbo"](model, x, torch.Generator().manual_seed(2), TrainConfig(beta=beta))
    torch.testing.assert_close(loss, plain)
    torch.testing.assert_close(reported, torch.stack([-terms.elbo.mean(), terms.kl.mean()]))
    for ours, reference in zip(gradients(loss, model), gradients(plain, model)):
        torch.testing.assert_close(ours, reference)


def test_the_iwae_objective_is_minus_the_mean_bound(sample_data):
    torch.manual_seed(0)
    model = VAE(ModelConfig(hidden=(32,)))
    x = torch.bernoulli(sample_data.train_x[:50], generator=torch.Generator().manual_seed(1))
    bound = iwae_terms(model, x, 3, torch.Generator().manual_seed(2)).iwae
    cfg = TrainConfig(objective="iwae", iwae_train_k=3)
    loss, reported = registry.OBJECTIVES["iwae"](model, x, torch.Generator().manual_seed(2), cfg)
    torch.testing.assert_close(loss, -bound.mean())
    torch.testing.assert_close(reported[0], -bound.mean())


def test_batches_draw_what_torch_bernoulli_draws(sample_data):
    images = sample_data.train_x
    batches = Batches(images, 50, torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    batches.shuffle()
    order = torch.randperm(len(images), generator=generator)
    for i in range(3):
        expected = torch.bernoulli(images[order[i * 50:(i + 1) * 50]], generator=generator)
        assert torch.equal(batches(i), expected)


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
