"""vaelib.study: the multi-seed comparisons of notebooks 7 and 10, against independent references."""

import math
import statistics

import pytest
import torch

from vaelib.config import ModelConfig, TrainConfig, seed_everything
from vaelib.model import VAE
from vaelib.runs import PRETRAINED, settings_key
from vaelib.study import compare, fit_settings, over_seeds, score, settled, table


def test_fit_settings_find_the_committed_models():
    """Notebook 7's L = 50 model of seed 0 is committed under the key fit would look for."""
    cfg = TrainConfig(steps=6000, seed=0, model=ModelConfig(z_dim=50))
    key = settings_key(fit_settings(cfg, "mnist"))
    assert (PRETRAINED / key / "model.pt").exists(), key
    other = settings_key(fit_settings(TrainConfig(steps=6000, seed=1, model=ModelConfig(z_dim=50)), "mnist"))
    static = settings_key(fit_settings(cfg, "mnist", "static"))
    assert len({key, other, static}) == 3  # the seed and the binarisation are part of the key


def test_score_against_torch_distributions():
    seed_everything(0)
    model = VAE(ModelConfig(z_dim=3)).eval()
    x = torch.bernoulli(torch.rand(50, 784, generator=torch.Generator().manual_seed(1)))
    s = score(model, x, k=5)
    with torch.no_grad():
        mu, logvar = model.encode(x)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    rate = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1).mean()
    assert s["rate"] == pytest.approx(rate.item(), rel=1e-4)
    assert -s["elbo"] == pytest.approx(s["distortion"] + s["rate"], rel=1e-5)
    assert s["log_px_each"].shape == (50,)
    assert s["log_px"] == pytest.approx(s["log_px_each"].mean().item())
    assert s["iwae_gain"] == pytest.approx(s["log_px"] - s["elbo"], abs=1e-4)
    variances = [statistics.pvariance(mu[:, j].double().tolist()) for j in range(3)]
    assert s["active"] == sum(v > 0.01 for v in variances) and s["L"] == 3
    shares = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).mean(0)  # (L,)
    assert s["used"] == int((shares > 0.1).sum())


def test_over_seeds_is_the_sample_mean_and_standard_deviation():
    rows = [{"a": 1.0}, {"a": 2.5}, {"a": 4.0}]
    assert over_seeds(rows, "a") == pytest.approx((statistics.mean([1, 2.5, 4]), statistics.stdev([1, 2.5, 4])))
    assert over_seeds(rows, "a", -1) == pytest.approx((-2.5, 1.5))
    with pytest.raises(ValueError, match="at least 2 seeds"):
        over_seeds(rows[:1], "a")


def test_compare_differences_seed_by_seed_on_the_same_images():
    g = torch.Generator().manual_seed(0)
    a = [{"log_px_each": torch.randn(40, generator=g)} for _ in range(3)]
    b = [{"log_px_each": row["log_px_each"] + shift + 0.1 * torch.randn(40, generator=g)}
         for row, shift in zip(a, (1.0, 2.0, 3.0))]
    means, se = compare(a, b)
    for i in range(3):
        d = (b[i]["log_px_each"] - a[i]["log_px_each"]).tolist()
        assert means[i].item() == pytest.approx(statistics.mean(d), abs=1e-6)
    worst = max(statistics.stdev((rb["log_px_each"] - ra["log_px_each"]).tolist()) / math.sqrt(40)
                for ra, rb in zip(a, b))
    assert se == pytest.approx(worst, rel=1e-5)
    with pytest.raises(ValueError, match="same images"):
        compare(a, [{"log_px_each": torch.zeros(39)}] * 3)
    with pytest.raises(ValueError, match="pairs the seeds"):
        compare(a, b[:2])


def test_table_has_a_line_per_setting_with_the_seed_means():
    rows = [{"elbo": -100.0 - i, "log_px": -95.0 - i, "distortion": 80.0 + i, "rate": 20.0, "active": 10 + i,
             "used": 5 + i, "L": 20} for i in range(3)]
    text = table({2: rows, "static": rows}, "L").splitlines()
    assert len(text) == 3 and text[1].split()[0] == "2" and text[2].split()[0] == "static"
    assert "101.00 ± 1.00" in text[1] and "96.00 ± 1.00" in text[1] and "10,11,12" in text[1] and "5,6,7" in text[1]


def test_settled_needs_every_seed_and_the_seed_mean_beyond_the_noise():
    assert settled(torch.tensor([1.0, 1.2, 0.9]), image_se=0.2) == 1
    assert settled(torch.tensor([-1.0, -1.2, -0.9]), image_se=0.2) == -1
    assert settled(torch.tensor([1.0, -0.3, 0.9]), image_se=0.05) == 0  # the seeds disagree
    assert settled(torch.tensor([1.0, 1.2, 0.9]), image_se=0.4) == 0  # a seed within 3 image se of 0
    # every seed positive and beyond the images' noise, but the seeds spread too widely for their mean
    diffs = torch.tensor([0.7, 6.0, 12.0])
    seed_se = statistics.stdev(diffs.tolist()) / math.sqrt(3)
    assert statistics.mean(diffs.tolist()) < 3 * seed_se and settled(diffs, image_se=0.1) == 0
    with pytest.raises(ValueError, match="at least 2 seeds"):
        settled(torch.tensor([1.0]), 0.1)


def test_table_widens_its_label_column_for_long_names():
    rows = [{"elbo": -1.0, "log_px": -1.0, "distortion": 1.0, "rate": 0.0, "active": 1, "L": 2}] * 2
    lines = table({"dynamic": rows, "static": rows}, "data").splitlines()
    assert len({line.index("±") for line in lines[1:]}) == 1  # the columns line up


def test_fit_trains_the_iwae_objective_it_is_given(sample_data, tmp_path, monkeypatch):
    """fit(objective="iwae") trains what vaelib.train trains with that TrainConfig, under a key of its own."""
    from vaelib.study import fit
    from vaelib.train import train

    monkeypatch.setenv("VAELIB_RUNS", str(tmp_path))
    monkeypatch.setenv("VAELIB_PRETRAINED", "0")
    monkeypatch.setenv("VAELIB_PROGRESS", "0")
    config = ModelConfig(hidden=(16,), z_dim=2)
    model, _ = fit(sample_data, config, 5, seed=3, objective="iwae", iwae_train_k=3)
    cfg = TrainConfig(steps=5, seed=3, model=config, objective="iwae", iwae_train_k=3, progress=False)
    seed_everything(3)
    direct = VAE(config)
    train(direct, sample_data, cfg)
    for a, b in zip(model.parameters(), direct.parameters()):
        torch.testing.assert_close(a, b)
    elbo_cfg = TrainConfig(steps=5, seed=3, model=config)
    assert settings_key(fit_settings(cfg, sample_data.source)) != settings_key(fit_settings(elbo_cfg, sample_data.source))
    seed_everything(3)
    elbo_model = VAE(config)
    train(elbo_model, sample_data, TrainConfig(steps=5, seed=3, model=config, progress=False))
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), elbo_model.parameters()))


def test_fit_keys_the_iwae_gradient_and_refuses_iwae_settings_without_iwae(sample_data):
    from vaelib.study import fit

    config = ModelConfig(hidden=(16,), z_dim=2)
    plain = TrainConfig(steps=5, model=config, objective="iwae", iwae_train_k=3)
    dreg = TrainConfig(steps=5, model=config, objective="iwae", iwae_train_k=3, gradient="dreg")
    assert settings_key(fit_settings(plain, "sample")) != settings_key(fit_settings(dreg, "sample"))
    with pytest.raises(ValueError, match="objective='iwae'"):
        fit(sample_data, config, 5, iwae_train_k=20)
