"""vaelib.diagnostics against independent references: numpy's variance, torch.distributions' KL, closed forms."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vaelib.config import ModelConfig, seed_everything
from vaelib.diagnostics import (active_units, benchmark_results, bits_per_dim, encode_all, kl_per_dimension,
                                timed_run)
from vaelib.elbo import bernoulli_log_likelihood, kl_standard_normal
from vaelib.model import VAE

COLLAPSED = [1, 4]  # latent dimensions whose encoder mean is made constant


@pytest.fixture(scope="module")
def model_and_x():
    """A small VAE whose mu_head rows for COLLAPSED are zero (mu_j(x) = bias_j for every x) and whose other
    rows are scaled up so that their means vary clearly; x: 250 random binary images."""
    seed_everything(0)
    model = VAE(ModelConfig(hidden=(32,), z_dim=6)).eval()
    with torch.no_grad():
        model.mu_head.weight.mul_(10.0)
        model.mu_head.weight[COLLAPSED] = 0.0
        model.mu_head.bias[COLLAPSED[0]] = 2.0  # constant, but far from 0: still inactive
    x = torch.bernoulli(torch.full((250, 784), 0.3), generator=torch.Generator().manual_seed(1))
    return model, x


def test_active_units_finds_the_collapsed_dimensions(model_and_x):
    model, x = model_and_x
    units = active_units(model, x, batch_size=64)  # batches that do not divide N
    expected = torch.ones(6, dtype=torch.bool)
    expected[COLLAPSED] = False
    assert torch.equal(units.active, expected) and units.count == 4
    assert units.variance[COLLAPSED].max() < 1e-12 and units.variance[expected].min() > 0.01


def test_active_unit_variances_are_numpys_variance_of_the_encoder_means(model_and_x):
    model, x = model_and_x
    with torch.no_grad():
        mu = model.encode(x)[0].numpy().astype(np.float64)
    variance = active_units(model, x, batch_size=64).variance
    np.testing.assert_allclose(variance.numpy(), np.var(mu, axis=0), rtol=1e-6, atol=1e-12)
    threshold = float(np.median(variance.numpy()))  # a threshold of our own counts the dims above it
    assert active_units(model, x, threshold).count == int((np.var(mu, axis=0) > threshold).sum())


def test_kl_per_dimension_sums_to_the_mean_kl_and_matches_torch_distributions(model_and_x):
    model, x = model_and_x
    per_dim = kl_per_dimension(model, x, batch_size=64)
    with torch.no_grad():
        mu, logvar = (t.double() for t in model.encode(x))
    assert per_dim.shape == (6,)
    torch.testing.assert_close(per_dim.sum(), kl_standard_normal(mu, logvar).mean())
    reference = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).mean(0)
    torch.testing.assert_close(per_dim, reference)


@pytest.mark.parametrize("variant", [dict(posterior="planar"), dict(prior="mog")])
def test_kl_per_dimension_refuses_a_kl_without_closed_form(variant):
    with pytest.raises(ValueError, match="no.*closed-form|has none.*per_image_terms"):
        kl_per_dimension(VAE(ModelConfig(hidden=(8,), **variant)), torch.rand(3, 784))


def test_encode_all_restores_training_mode_and_matches_one_pass(model_and_x):
    model, x = model_and_x
    model.train()
    mu, logvar = encode_all(model, x, batch_size=64)
    assert model.training
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close((mu, logvar), model.encode(x))


def test_a_coin_flip_decoder_scores_exactly_one_bit_per_dimension():
    """Logits 0 give every pixel probability 1/2: -log p(x|z) = 784 ln 2 nats for any x and z, 1 bit per pixel."""
    model = VAE(ModelConfig(z_dim=3))
    last = model.decoder[-1]
    with torch.no_grad():
        last.weight.zero_(), last.bias.zero_()
        x = torch.bernoulli(torch.full((5, 784), 0.2), generator=torch.Generator().manual_seed(2))
        neg_log_px_z = -bernoulli_log_likelihood(model(x)[0], x)  # (B,)
    torch.testing.assert_close(neg_log_px_z, torch.full((5,), 784 * math.log(2)))
    torch.testing.assert_close(bits_per_dim(neg_log_px_z), torch.ones(5))
    assert bits_per_dim(784 * math.log(2)) == pytest.approx(1.0)
    assert bits_per_dim(28 * math.log(2), D=28) == pytest.approx(1.0)


def test_benchmark_results_is_in_the_checkout_whatever_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = benchmark_results("burda")
    assert path.is_absolute() and path.parts[-3:] == ("benchmarks", "results", "burda")
    assert (path.parents[2] / "vaelib" / "diagnostics.py").is_file()


def test_timed_run_reads_what_usr_bin_time_printed():
    """h:mm:ss and m:ss both become minutes; kbytes become GiB; an M2 run's test accuracy is read, another
    model's is None; a log without the time report is refused with what went wrong."""
    log = ("  test accuracy (q(y|x))                0.9436\n"
           "\tElapsed (wall clock) time (h:mm:ss or m:ss): 26:45.38\n"
           "\tMaximum resident set size (kbytes): 1178864\n")
    run = timed_run(log)
    assert run.wall_minutes == pytest.approx(26 + 45.38 / 60) and run.wall_clock == "26:45.38"
    assert run.peak_gib == pytest.approx(1178864 * 1024 / 2**30) and run.test_accuracy == 0.9436
    hours = timed_run(log.replace("26:45.38", "1:02:03").replace("  test accuracy (q(y|x))                0.9436\n", ""))
    assert hours.wall_minutes == pytest.approx(62 + 3 / 60) and hours.test_accuracy is None
    with pytest.raises(ValueError, match="no /usr/bin/time -v report"):
        timed_run("epoch 1: train -ELBO 173.70\n")
