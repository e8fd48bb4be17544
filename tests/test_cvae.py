"""vaelib.cvae, the conditional VAE for quadrant completion, each part against an independent reference: quadrants
listed pixel by pixel, torch.distributions for the KL, the Gaussians and the (clamped) Bernoulli, an explicit loop
for Pyro's score, a model whose log p(y|x) is known exactly, and quadrature over a 1-D z."""

import json
import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from vaelib import cvae
from vaelib.data import TEST_BINARISATION_SEED, binarise, load_sample

SIDE, H = 28, 14
QUADRANT_OF = {(False, False): "top-left", (False, True): "top-right", (True, False): "bottom-left",
               (True, True): "bottom-right"}  # (row >= 14, column >= 14) -> its name


def small(quadrants=1, z_dim=4, hidden=(16,), seed=0, **kw):
    torch.manual_seed(seed)
    return cvae.CVAE(cvae.CVAEConfig(quadrants=quadrants, z_dim=z_dim, hidden=hidden, **kw))


def images(n=6, seed=0):
    return (torch.rand(n, SIDE * SIDE, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


@pytest.mark.parametrize("quadrants, given", [(1, {"bottom-left"}), (2, {"top-left", "bottom-left"}),
                                              (3, {"top-left", "top-right", "bottom-left"})])
def test_masks_cover_the_named_quadrants_and_partition_the_image(quadrants, given):
    expected = torch.tensor([QUADRANT_OF[(r >= H, c >= H)] not in given for r in range(SIDE) for c in range(SIDE)])
    missing = cvae.missing_mask(quadrants)
    assert torch.equal(missing, expected)
    assert int((~missing).sum()) == 196 * quadrants and int(missing.sum()) == 196 * (4 - quadrants)
    model = small(quadrants)
    assert model.missing is model.baseline.missing and torch.equal(model.missing, missing)
    x = torch.rand(3, SIDE * SIDE)
    before = x.clone()
    x_given = model.given(x)
    assert torch.equal(x, before)  # the caller's images are left as they were
    assert torch.equal(x_given[:, ~missing], x[:, ~missing]) and bool((x_given[:, missing] == -1).all())


def test_a_bad_number_of_quadrants_is_refused():
    for bad in (0, 4):
        with pytest.raises(ValueError, match="1, 2 or 3"):
            cvae.CVAEConfig(quadrants=bad)
    with pytest.raises(ValueError, match="baseline"):
        cvae.CVAE(cvae.CVAEConfig(quadrants=2), cvae.Baseline(cvae.CVAEConfig(quadrants=1)))


def test_decode_scores_the_missing_pixels_and_broadcasts_draws():
    for sees in (False, True):
        model, x = small(quadrants=3, decoder_sees_given=sees), images(5)
        logits = model.decode(torch.randn(7, 5, 4), model.given(x))
        assert logits.shape == (7, 5, 196)
    completions = model.complete(x, 2, torch.Generator().manual_seed(0))
    assert completions.shape == (2, 5, 784)
    assert torch.equal(completions[:, :, ~model.missing], x[:, ~model.missing].expand(2, 5, -1))


def normal(mu, logvar):
    return Normal(mu, (0.5 * logvar).exp())


def reference_log_weights(model, x, eps, clamp):
    """log p(y|x, z) + log p(z|x) - log q(z|x, y) by torch.distributions, image by image and draw by draw, z = mu_q +
    std_q eps; with clamp, the pixels' probabilities given to Bernoulli(probs=...), which clamps them as Pyro's does.
    Shapes: eps (S, N, L) -> (S, N)."""
    missing = model.missing
    out = torch.empty(eps.shape[:2])
    for n in range(len(x)):
        given = x[n].clone()
        given[missing] = -1
        guess = given.clone()
        guess[missing] = torch.sigmoid(model.baseline(given))[missing]
        p_z, q_z = normal(*model.prior_net(guess)), normal(*model.recognition_net(x[n]))
        for s in range(len(eps)):
            z = q_z.loc + q_z.scale * eps[s, n]
            logits = model.generation_net(torch.cat([z, given]) if model.config.decoder_sees_given else z)[missing]
            p_y = Bernoulli(probs=torch.sigmoid(logits)) if clamp else Bernoulli(logits=logits)
            out[s, n] = (p_y.log_prob(x[n][missing]).sum() + p_z.log_prob(z).sum() - q_z.log_prob(z).sum())
    return out


@torch.no_grad()
def test_pyros_score_equals_an_explicit_loop():
    model, x = small(quadrants=2, decoder_sees_given=True), images(70)
    model.generation_net[-1].weight.mul_(60)  # logits far beyond +-16, where Pyro's clamp of the probabilities bites
    scores = cvae.pyro_nll(model, x, particles=10, seed=3, batch_size=100)
    eps = torch.randn(10, 70, 4, generator=torch.Generator().manual_seed(3))
    reference = -reference_log_weights(model, x, eps, clamp=True).mean(0)
    torch.testing.assert_close(scores, reference, rtol=1e-5, atol=1e-3)
    unclamped = -reference_log_weights(model, x, eps, clamp=False).mean(0)
    assert (unclamped - reference).abs().max() > 1  # the clamp is what the check above checked
    table = sum(reference[i:i + 32].mean() for i in range(0, 70, 32)) / 3  # batches of 32, 32 and 6
    assert cvae.batch_means(scores) == pytest.approx(table.item(), rel=1e-6)


@torch.no_grad()
def test_elbo_terms_and_baseline_against_torch_distributions():
    model, x = small(quadrants=1), images(4)
    terms = cvae.cvae_terms(model, x, torch.Generator().manual_seed(5))
    eps = torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(5))
    x_given = model.given(x)
    mu_p, lv_p = model.prior_params(x_given)
    mu_q, lv_q = model.posterior_params(x)
    z = mu_q + (0.5 * lv_q).exp() * eps[0]
    log_py = Bernoulli(logits=model.decode(z, x_given)).log_prob(x[:, model.missing]).sum(-1)
    kl = kl_divergence(Independent(normal(mu_q, lv_q), 1), Independent(normal(mu_p, lv_p), 1))
    torch.testing.assert_close(terms.log_px_z, log_py)
    torch.testing.assert_close(terms.elbo, log_py - kl)
    logits = model.baseline(x_given)[:, model.missing]
    torch.testing.assert_close(cvae.baseline_nll(model.baseline, x), -Bernoulli(logits=logits).log_prob(
        x[:, model.missing]).sum(-1))


@torch.no_grad()
def test_importance_sampling_is_exact_when_q_is_the_prior_and_y_ignores_z():
    model, x = small(quadrants=1), images(5)
    model.generation_net[0].weight.zero_()  # p(y|x, z) the same for every z
    for net in (model.prior_net, model.recognition_net):
        net.features[0][0].weight.zero_()  # a Gaussian that ignores its image ...
    model.recognition_net.load_state_dict(model.prior_net.state_dict())  # ... the same for p(z|x) and q(z|x, y)
    estimate, se = cvae.conditional_log_likelihood(model, x, k=1000, seed=0)
    # Here log p(z|x) - log q(z|x, y) cancels; test_importance_sampling_against_quadrature_with_a_1d_z has q != p.
    exact = Bernoulli(logits=model.decode(torch.zeros(5, 4), model.given(x))).log_prob(x[:, model.missing]).sum(-1)
    torch.testing.assert_close(estimate, exact)
    assert float(se.max()) < 1e-3


@torch.no_grad()
def quadrature_log_likelihood(model, x, grid=4001, width=12.0):
    """log p(y|x) = log integral p(y|x, z) p(z|x) dz for a 1-D z, by the trapezoidal rule over mu_p +- width std_p.
    Shapes: (N, D) -> (N,)."""
    x_given = model.given(x)
    mu_p, lv_p = model.prior_params(x_given)
    std_p = (0.5 * lv_p).exp()
    z = mu_p + std_p * torch.linspace(-width, width, grid, dtype=torch.float64)[:, None, None]  # (G, N, 1)
    p_z = Normal(mu_p.double(), std_p.double()).log_prob(z).sum(-1)
    log_py = Bernoulli(logits=model.decode(z.float(), x_given).double()).log_prob(
        x[:, model.missing].double()).sum(-1)
    step = (z[1] - z[0]).squeeze(-1)
    log_f = log_py + p_z  # (G, N)
    trapezoid = torch.logsumexp(torch.cat([log_f[:1] - math.log(2), log_f[1:-1], log_f[-1:] - math.log(2)]), 0)
    return (trapezoid + step.log()).float()


@torch.no_grad()
def test_importance_sampling_against_quadrature_with_a_1d_z():
    model, x = small(quadrants=2, z_dim=1, hidden=(8,), seed=1), images(4, seed=1)
    for layer in (model.prior_net.mu_head, model.recognition_net.mu_head, model.generation_net[-1]):
        layer.weight.mul_(5)  # posteriors and likelihoods sharper than at initialisation
    exact = quadrature_log_likelihood(model, x)
    estimate, se = cvae.conditional_log_likelihood(model, x, k=20000, seed=0)
    assert ((estimate - exact).abs() <= 4 * se + 1e-3).all(), (estimate, exact, se)
    # In expectation a lower bound that tightens with K: the mean of 300 independent estimates for each K.
    repeated = x.repeat(300, 1)
    runs = [cvae.conditional_log_likelihood(model, repeated, k=k, seed=k) for k in (1, 10, 100)]
    means = [estimate.view(300, 4).mean(0) for estimate, _ in runs]
    # The reported standard error is the spread of independent estimates (the delta method, at K = 100 where it
    # holds): within 30 % for each image, which a missing 1 / K or sqrt would far exceed.
    estimate, se = runs[2]
    spread, reported = estimate.view(300, 4).std(0), se.view(300, 4).mean(0)
    assert ((spread / reported - 1).abs() < 0.3).all(), (spread, reported)
    assert (means[0] < means[1]).all() and (means[1] < means[2]).all()
    assert (means[2] <= exact + 0.02).all()
    assert (exact - means[0] > 0.1).all()  # q is not p(z|x, y): the ELBO is visibly below


def test_the_same_seed_gives_the_same_numbers_and_the_callers_tensors_stay_put():
    model, x = small(quadrants=3), images(10)
    model.double()
    before = x.clone()
    first = cvae.conditional_log_likelihood(model, x, k=50, seed=7)
    again = cvae.conditional_log_likelihood(model, x, k=50, seed=7)
    other = cvae.conditional_log_likelihood(model, x, k=50, seed=8)
    assert torch.equal(first[0], again[0]) and not torch.equal(first[0], other[0])
    assert torch.equal(cvae.pyro_nll(model, x, seed=1), cvae.pyro_nll(model, x, seed=1))
    assert torch.equal(x, before) and x.dtype == torch.float32  # copied and cast, never changed
    assert next(model.parameters()).dtype == torch.float64 and model.training  # the model's mode is restored


@pytest.fixture(scope="module")
def sample_images():
    train_x = load_sample()[0]
    return train_x[:1200]


def test_training_on_the_sample_lowers_the_loss_and_leaves_the_baseline_fixed(sample_images):
    cfg = cvae.FitConfig(epochs=2, batch_size=64, seed=0)
    torch.manual_seed(0)
    baseline = cvae.Baseline(cvae.CVAEConfig(quadrants=1, hidden=(64,), z_dim=8))
    x_val = binarise(sample_images[cvae.validation_split(len(sample_images), cfg)[1]],
                     torch.Generator().manual_seed(TEST_BINARISATION_SEED))
    start = cvae.validation_loss(baseline, cvae.baseline_loss, x_val, cfg.seed)
    history = cvae.fit_baseline(baseline, sample_images, cfg)
    assert history.validation_loss[history.best_epoch] < start - 20
    model = cvae.CVAE(baseline.config, baseline)
    frozen = {k: v.clone() for k, v in baseline.state_dict().items()}
    start = cvae.validation_loss(model, cvae.cvae_loss, x_val, cfg.seed)
    history = cvae.fit_cvae(model, sample_images, cfg)
    assert history.validation_loss[history.best_epoch] < start - 20
    assert history.steps == 2 * math.ceil(1000 / 64) and history.stopped == "epochs"
    assert all(torch.equal(v, model.baseline.state_dict()[k]) for k, v in frozen.items())


def test_training_is_reproducible_and_stops_on_its_budget(sample_images):
    def trained(seed, budget=None):
        model = small(quadrants=2, seed=0)
        return model, cvae.fit_cvae(model, sample_images[:300], cvae.FitConfig(epochs=2, seed=seed, budget_s=budget))

    (a, _), (b, _), (c, _) = trained(0), trained(0), trained(1)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not all(torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
    _, history = trained(0, budget=0.0)
    assert history.steps == 1 and history.stopped == "budget"


def test_checkpoints_round_trip(tmp_path):
    model, x = small(quadrants=2, decoder_sees_given=True), images(8)
    for saved in (model.baseline, model):
        cvae.save(saved, tmp_path / "m.pt")
        loaded = cvae.load(tmp_path / "m.pt")
        assert type(loaded) is type(saved) and loaded.config == saved.config
        assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in saved.state_dict().items())
    torch.testing.assert_close(cvae.conditional_log_likelihood(loaded, x, k=20)[0],
                               cvae.conditional_log_likelihood(model, x, k=20)[0])
    torch.testing.assert_close(cvae.baseline_nll(model.baseline, x), cvae.baseline_nll(loaded.baseline, x))


def test_the_benchmark_script_runs_and_scores_its_saved_models_again(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "cvae_pyro.py"
    spec = importlib.util.spec_from_file_location("cvae_pyro", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = ["--data", "sample", "--out", str(tmp_path), "--quadrants", "1", "3", "--hidden", "16", "--z-dim", "4",
            "--budget", "0.2", "--test-images", "40", "--k", "20", "--results", str(tmp_path / "r.json"),
            "--threads", str(torch.get_num_threads())]
    script.main(args)
    trained = json.loads((tmp_path / "r.json").read_text())
    assert [r["quadrants"] for r in trained["runs"]] == [1, 3] and trained["n_test"] == 40
    assert trained["runs"][0]["cvae"]["stopped"] == "budget"
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["q1_seed0_cvae.pt", "q3_seed0_cvae.pt"]  # baselines inside
    script.main(args + ["--score-only"])
    scored = json.loads((tmp_path / "r.json").read_text())
    for before, again in zip(trained["runs"], scored["runs"]):
        for key in ("baseline_pyro_table", "cvae_pyro_table", "cvae_is_nll"):
            assert again[key] == pytest.approx(before[key], rel=1e-6)


def test_a_baseline_of_another_shape_is_refused_before_it_could_be_saved():
    with pytest.raises(ValueError, match="Baseline\\(config\\)"):
        cvae.CVAE(cvae.CVAEConfig(hidden=(32,)), cvae.Baseline(cvae.CVAEConfig(hidden=(64,))))
