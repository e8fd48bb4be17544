"""vaelib.m2, the semi-supervised M2 of Kingma et al. (2014), each part against an independent reference:
torch.distributions for the Bernoulli likelihood, the Gaussian KL and the categorical entropy and KL, an explicit
loop over the labels, the exact log p(x) by quadrature; then the split of the labels and the command line."""

import contextlib
import io
import json
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Categorical, Normal, kl_divergence

from vaelib import m2
from vaelib.__main__ import main
from vaelib.config import ModelConfig, TrainConfig
from vaelib.model import CheckpointError, build_model, load_checkpoint, read_checkpoint, save_checkpoint
from vaelib.runs import PRETRAINED, settings_key
from vaelib.study import fit_label, fit_settings
from vaelib.train import train

C = 10


def small_model(z_dim=3, seed=0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(kind="m2", hidden=(32,), z_dim=z_dim))


def reference_label_terms(model, x, eps):
    """For each label c by a Python loop: log p(x|c, z_c) by torch.distributions.Bernoulli and
    KL(q(z|x, c) || N(0, I)) by torch.distributions.kl_divergence, with z_c = mu_c + std_c * eps[c].
    Shapes: (B, D), eps (C, B, L) -> two (C, B)."""
    log_px_z, kl = [], []
    for c in range(C):
        y = F.one_hot(torch.full((len(x),), c), C).to(x.dtype)
        h = model.encoder(torch.cat([x, y], -1))
        q_z = Normal(model.mu_head(h), torch.exp(0.5 * model.logvar_head(h)))
        z = q_z.loc + q_z.scale * eps[c]
        log_px_z.append(Bernoulli(logits=model.decoder(torch.cat([z, y], -1))).log_prob(x).sum(-1))
        kl.append(kl_divergence(q_z, Normal(torch.zeros_like(z), torch.ones_like(z))).sum(-1))
    return torch.stack(log_px_z), torch.stack(kl)


@pytest.fixture(scope="module")
def x(sample_data):
    return sample_data.test_x[:6]


def test_the_batched_sum_over_labels_equals_a_loop_over_them(x):
    model = small_model()
    loss = m2.unlabelled_loss(model, x, torch.Generator().manual_seed(5))
    eps = torch.randn((C, len(x), 3), generator=torch.Generator().manual_seed(5))  # the same draws
    log_px_z, kl = reference_label_terms(model, x, eps)
    q = Categorical(logits=model.classifier(x))
    expected = sum(q.probs[:, c] * -(log_px_z[c] - math.log(C) - kl[c]) for c in range(C)) - q.entropy()
    torch.testing.assert_close(loss, expected)


def test_the_entropy_is_the_categorical_one():
    logits = torch.randn(50, C, generator=torch.Generator().manual_seed(0)) * torch.tensor([0.1, 3.0, 40.0]).repeat(17)[:50, None]
    torch.testing.assert_close(m2.entropy(logits), Categorical(logits=logits).entropy())


def test_alpha_zero_without_labels_is_a_vae_whose_latent_is_the_pair_y_z(x):
    """-U(x) is the ELBO of q(y, z|x) = q(y|x) q(z|x, y) against p(y) p(z): E_q(y)[E_q(z|x,y) log p(x|y, z)]
    - KL(q(y|x) || p(y)) - E_q(y)[KL(q(z|x, y) || p(z))], each term from torch.distributions."""
    model = small_model()
    none = torch.zeros(0, dtype=torch.long)
    loss, (neg_bound, kl_mean) = m2.m2_loss(model, m2.M2Batch(x, x[:0], none, 0.0), torch.Generator().manual_seed(2))
    eps = torch.randn((C, len(x), 3), generator=torch.Generator().manual_seed(2))
    log_px_z, kl_z = reference_label_terms(model, x, eps)
    q_y = Categorical(logits=model.classifier(x))
    kl_y = kl_divergence(q_y, Categorical(probs=torch.full((len(x), C), 1 / C)))
    rate = (q_y.probs * kl_z.T).sum(-1) + kl_y
    elbo = (q_y.probs * log_px_z.T).sum(-1) - rate
    torch.testing.assert_close(loss, -elbo.mean())
    torch.testing.assert_close(torch.stack([neg_bound, kl_mean]), torch.stack([-elbo.mean(), rate.mean()]).detach())


def test_the_labelled_loss_adds_alpha_times_the_cross_entropy(x):
    """With labels: the labelled loss is -ELBO(x, y) (log p(y) = -log 10 included) plus alpha times the
    classifier's cross-entropy, the reference again by hand from torch.distributions."""
    model, y = small_model(), torch.tensor([3, 1, 4, 1, 5, 9])
    eps = torch.randn((len(x), 3), generator=torch.Generator().manual_seed(7))
    log_px_z, kl = reference_label_terms(model, x, eps.expand(C, -1, -1))
    picked = torch.arange(len(x))
    neg_elbo = -(log_px_z[y, picked] - math.log(C) - kl[y, picked])
    cross_entropy = -Categorical(logits=model.classifier(x)).log_prob(y)
    for alpha in (0.0, 2.5):
        loss = m2.labelled_loss(model, x, y, alpha, torch.Generator().manual_seed(7))
        torch.testing.assert_close(loss, neg_elbo + alpha * cross_entropy)
    for bound in (0.0, 0.3):  # TrainConfig.labelled_bound weights -ELBO(x, y)
        loss = m2.labelled_loss(model, x, y, 2.5, torch.Generator().manual_seed(7), labelled_weight=bound)
        torch.testing.assert_close(loss, bound * neg_elbo + 2.5 * cross_entropy)


def test_without_the_labelled_bound_the_labels_train_the_classifier_alone(x, sample_data):
    """labelled_bound 0 (Stanford CS236's recipe): the labelled loss has no gradient for the encoder or the
    decoder, and draws no z (the generator is untouched); with weight 1 it reaches all three networks. The
    training batches carry TrainConfig.labelled_bound to m2_loss."""
    y = torch.tensor([3, 1, 4, 1, 5, 9])
    for bound, reaches in ((0.0, {"classifier"}), (1.0, {"classifier", "encoder", "mu_head", "decoder"})):
        model, generator = small_model(), torch.Generator().manual_seed(7)
        before = generator.get_state()
        m2.labelled_loss(model, x, y, 2.5, generator, bound).mean().backward()
        touched = {name.split(".")[0] for name, p in model.named_parameters()
                   if p.grad is not None and p.grad.abs().sum() > 0}
        assert reaches <= touched and (bound > 0 or touched == {"classifier"}), (bound, touched)
        assert torch.equal(generator.get_state(), before) == (bound == 0)
        cfg = TrainConfig(data="sample", model=model.config, labels=100, labelled_bound=bound)
        batches = m2.M2Batches(sample_data, cfg, torch.Generator().manual_seed(0))
        batches.shuffle()
        assert batches(0).labelled_weight == bound


def test_the_training_loss_weights_the_labelled_bound_by_the_batch(x):
    """m2_loss reads the labelled bound's weight from the batch: with weight 0 it is the unlabelled batch's mean
    -U(x) plus alpha times the labelled batch's mean cross-entropy, under the same generator draws."""
    model, y = small_model(), torch.tensor([3, 1, 4, 1, 5, 9])
    loss = m2.m2_loss(model, m2.M2Batch(x, x, y, 2.5, 0.0), torch.Generator().manual_seed(4))[0]
    unlabelled = m2.unlabelled_terms(model, x, torch.Generator().manual_seed(4)).elbo
    cross_entropy = -Categorical(logits=model.classifier(x)).log_prob(y)
    torch.testing.assert_close(loss, -unlabelled.mean() + 2.5 * cross_entropy.mean())
    generator = torch.Generator().manual_seed(4)
    weighted = m2.m2_loss(model, m2.M2Batch(x, x, y, 2.5, 0.3), generator)[0]
    generator = torch.Generator().manual_seed(4)
    unlabelled = m2.unlabelled_terms(model, x, generator).elbo  # drawn first, as m2_loss draws
    neg_elbo = -m2.labelled_elbo(model, x, F.one_hot(y, C).float(), generator).elbo
    torch.testing.assert_close(weighted, -unlabelled.mean() + (0.3 * neg_elbo + 2.5 * cross_entropy).mean())


def test_the_classifiers_activation_survives_a_checkpoint(tmp_path):
    """Activations have no weights, so only the saved settings can tell a ReLU classifier from an ELU one: they
    come back from the checkpoint, and at 'same' the field is left out (a plain M2's file reads as it always did)."""
    own = m2.M2(ModelConfig(kind="m2", hidden=(8,), activation="elu", classifier_activation="relu"))
    save_checkpoint(tmp_path / "own.pt", own)
    assert read_checkpoint(tmp_path / "own.pt")["config"] == own.config
    with pytest.raises(CheckpointError, match="classifier_activation"):
        load_checkpoint(tmp_path / "own.pt", ModelConfig(kind="m2", hidden=(8,), activation="elu"))
    save_checkpoint(tmp_path / "same.pt", m2.M2(ModelConfig(kind="m2", hidden=(8,), activation="elu")))
    assert "classifier_activation" not in torch.load(tmp_path / "same.pt", weights_only=True)["config"]


def test_the_committed_m2_models_keep_their_keys():
    """The settings added for CS236's recipe are left out of the keys at their defaults: notebook 13's committed
    M2s are still found under the keys their settings make now, with labelled_bound given as 1 or 1.0 where they
    were trained before it existed, and the CS236 models under theirs (labelled_bound 0 or 0.0)."""
    found = {"before": 0, "cs236": 0}
    for folder in sorted(p.parent for p in PRETRAINED.glob("*/settings.json")):
        saved = json.loads((folder / "settings.json").read_text())["settings"]
        if not isinstance(saved.get("model"), dict) or saved["model"].get("kind") != "m2":
            continue
        options = {k: v for k, v in saved.items() if k not in ("model", "data", "binarisation", "steps")}
        weight = options.pop("labelled_bound", None)
        bounds = ({}, {"labelled_bound": 1}, {"labelled_bound": 1.0}) if weight is None else \
            ({"labelled_bound": weight}, {"labelled_bound": int(weight)})
        for bound in bounds:
            cfg = TrainConfig(steps=saved["steps"], model=ModelConfig(**saved["model"]), **options, **bound)
            assert settings_key(fit_settings(cfg, saved["data"], saved["binarisation"])) == folder.name
        found["before" if weight is None else "cs236"] += 1
    assert found["before"] >= 5 and found["cs236"] >= 10  # nb 13: five draws; CS236 at alpha 100 and 300


@pytest.mark.parametrize("training", [m2.CS236_TRAINING, m2.CS236_ALPHA300_TRAINING], ids=["alpha100", "alpha300"])
def test_the_cs236_recipe_names_the_committed_models_notebook_13_loads(training):
    """vaelib.m2.CS236 with CS236_TRAINING (alpha 100) or CS236_ALPHA300_TRAINING, and label draws 0 to 4, are the
    settings of five committed models each: the constants notebook 13 and benchmarks/m2_cs236_table.py read cannot
    drift from the models they load."""
    for draw in range(5):
        settings = fit_settings(TrainConfig(model=m2.CS236, **training, seed=draw), "mnist")
        saved = json.loads((PRETRAINED / settings_key(settings) / "settings.json").read_text())["settings"]
        assert saved["epochs"] == training["epochs"] and saved["seed"] == draw and saved["alpha"] == training["alpha"]
        assert saved["model"]["activation"] == "elu" and saved["labelled_bound"] == 0


def test_the_run_label_names_a_labelled_bound_other_than_one():
    """What vaelib.runs prints when it loads a model tells a CS236-recipe run from a default one."""
    def label(**options):
        return fit_label(TrainConfig(data="sample", model=ModelConfig(kind="m2"), labels=100, **options), "dynamic")

    assert label(labelled_bound=0, alpha=100).endswith("alpha 100, labelled bound x 0") and "labelled bound" not in label()


def test_the_run_label_names_the_network_where_it_is_not_the_default():
    """The load line tells CS236's 300-300 ELU networks with a ReLU classifier from the default 256-128 ReLU ones."""
    def label(**model):
        return fit_label(TrainConfig(data="sample", model=ModelConfig(kind="m2", **model), labels=100), "dynamic")

    cs236 = label(hidden=(300, 300), activation="elu", classifier_activation="relu")
    assert cs236.endswith("300-300 hidden, ELU layers (ReLU in the classifier)")
    assert label(activation="tanh").endswith("tanh layers")
    assert "hidden" not in label() and "layers" not in label() and "classifier" not in label()
    assert label(hidden=()).endswith(", no hidden layers")


def test_the_encoder_shares_its_first_product_across_labels_and_computes_the_same():
    """M2.encode computes [x, y] W^T as x W_x^T + y W_y^T (x's part once for all labels): the same mu, logvar and
    the same gradients for every weight as the encoder applied to the concatenation, for all C labels at once."""
    torch.manual_seed(0)
    model = m2.M2(ModelConfig(kind="m2", hidden=(32, 16), z_dim=3, activation="elu"))
    x = torch.rand(5, 784)
    y = m2.all_labels(x)  # (C, 5, C)
    called = []
    model.encoder[0].register_forward_hook(lambda *_: called.append(True))  # fires only on the concatenation
    results = []
    for encode in (model.encode, lambda x, y: (lambda h: (model.mu_head(h), model.logvar_head(h)))(
            model.encoder(torch.cat([x.expand(C, *x.shape), y], -1)))):
        model.zero_grad()
        mu, logvar = encode(x, y)
        (mu.square().sum() + (logvar * torch.linspace(-1, 1, logvar.shape[-1])).sum()).backward()
        results.append((mu.detach(), logvar.detach(), [p.grad.clone() for p in model.encoder.parameters()]))
    (mu, logvar, grads), (mu_ref, logvar_ref, grads_ref) = results
    assert called == [True]  # the concatenation ran the first layer as a module; encode did not: it shares it
    assert mu.shape == (C, 5, 3)
    torch.testing.assert_close(mu, mu_ref)
    torch.testing.assert_close(logvar, logvar_ref)
    for grad, grad_ref in zip(grads, grads_ref):
        torch.testing.assert_close(grad, grad_ref)


def test_an_encoder_without_hidden_layers_still_takes_the_label():
    """With no hidden layers the encoder is the identity and the heads read [x, onehot(y)] whole."""
    model = m2.M2(ModelConfig(kind="m2", hidden=(), z_dim=3))
    x = torch.rand(4, 784)
    mu, _ = model.encode(x, m2.all_labels(x))
    expected = model.mu_head(torch.cat([x.expand(C, *x.shape), m2.all_labels(x)], -1))
    torch.testing.assert_close(mu, expected)


def test_the_classifier_naming_the_encoders_activation_is_the_default_setting():
    """classifier_activation equal to activation builds the same network as 'same', so it is stored as 'same':
    one setting, one saved configuration."""
    config = ModelConfig(kind="m2", hidden=(8, 8), activation="elu", classifier_activation="elu")
    assert config == ModelConfig(kind="m2", hidden=(8, 8), activation="elu")
    assert config.classifier_activation == "same"


def test_the_classifier_can_have_its_own_activation():
    """CS236's networks: ELU in the encoder and decoder, ReLU in the classifier (classifier_activation); by
    default ('same') the classifier has the encoder's."""
    def kinds(net):
        return {k for m in net.modules() for k in (torch.nn.ReLU, torch.nn.ELU, torch.nn.Tanh) if isinstance(m, k)}

    own = m2.M2(ModelConfig(kind="m2", hidden=(8, 8), activation="elu", classifier_activation="relu"))
    assert kinds(own.classifier) == {torch.nn.ReLU}
    assert kinds(own.encoder) == kinds(own.decoder) == {torch.nn.ELU}
    same = m2.M2(ModelConfig(kind="m2", hidden=(8, 8), activation="elu"))
    assert kinds(same.classifier) == kinds(same.encoder) == kinds(same.decoder) == {torch.nn.ELU}


@pytest.fixture(scope="module")
def trained_2d(sample_data):
    """A 2-D M2 trained for 150 steps on the sample, so that its posteriors are narrower than the prior."""
    cfg = TrainConfig(data="sample", steps=150, model=ModelConfig(kind="m2", hidden=(32,), z_dim=2), labels=100,
                      progress=False)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    train(model, sample_data, cfg)
    return model.eval()


def test_the_unlabelled_bound_lies_below_the_exact_log_px(trained_2d, sample_data):
    """log p(x) = log sum_y p(y) int p(x|y, z) p(z) dz, each integral by vaelib.exact's quadrature with the label
    fixed; -U(x), averaged over 200 draws of z (its expectation is the bound), lies below it, and so does each
    labelled bound ELBO(x, y) below log p(x, y)."""
    model, x = trained_2d, sample_data.test_x[:5]
    with torch.no_grad():
        log_pxy = m2.exact_log_px_given_y(model, x)[0] - math.log(C)  # (C, N)
        log_px = torch.logsumexp(log_pxy, 0)
        generator = torch.Generator().manual_seed(0)
        draws = torch.stack([-m2.unlabelled_loss(model, x, generator) for _ in range(200)])
        labelled = torch.stack([m2.labelled_elbo(model, x, m2.all_labels(x), generator).elbo for _ in range(200)])
    bound, se = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    assert (bound < log_px + 3 * se).all() and (log_px - bound < 60).all(), (bound, log_px)
    assert (labelled.mean(0) < log_pxy + 3 * labelled.std(0) / math.sqrt(200)).all()


def test_exact_log_px_given_y_is_a_rectangle_rule_with_torch_distributions():
    """For a tiny 2-D M2 on 12-pixel images: log p(x|y) against a plain rectangle rule on a fine grid over
    [-7, 7]^2 (h = 0.04), written with torch.distributions (Normal prior, Bernoulli likelihood) for each label in a loop."""
    torch.manual_seed(0)
    model = m2.M2(ModelConfig(kind="m2", x_dim=12, hidden=(8,), z_dim=2)).eval()
    x = torch.bernoulli(torch.full((3, 12), 0.3), generator=torch.Generator().manual_seed(1))
    got, reports = m2.exact_log_px_given_y(model, x)
    h = 0.04
    axis = torch.arange(-7, 7 + h / 2, h, dtype=torch.float64)
    z = torch.cartesian_prod(axis, axis)  # (G, 2)
    expected = []
    with torch.no_grad():
        for c in range(C):
            y = F.one_hot(torch.full((len(z),), c), C).float()
            decoded = Bernoulli(logits=model.decoder(torch.cat([z.float(), y], -1)).double())
            log_joint = decoded.log_prob(x.double()[:, None]).sum(-1) + Normal(0.0, 1.0).log_prob(z).sum(-1)
            expected.append(torch.logsumexp(log_joint, -1) + 2 * math.log(h))
    torch.testing.assert_close(got.double(), torch.stack(expected), atol=2e-3, rtol=0)
    assert len(reports) == C and all(r["converged"] for r in reports)


def test_exact_log_px_given_y_needs_a_2d_latent():
    with pytest.raises(ValueError, match="--z-dim 2"):
        m2.exact_log_px_given_y(small_model(z_dim=3), torch.zeros(2, 784))


def test_a_checkpoint_round_trip_gives_the_same_outputs(trained_2d, x, tmp_path):
    save_checkpoint(tmp_path / "m2.pt", trained_2d)
    saved = read_checkpoint(tmp_path / "m2.pt")
    assert saved["config"] == trained_2d.config
    model = build_model(saved["config"])
    model.load_state_dict(saved["state_dict"])
    assert isinstance(model, m2.M2)
    torch.testing.assert_close(model.classify(x), trained_2d.classify(x), rtol=0, atol=0)
    one, two = (m2.unlabelled_loss(m, x, torch.Generator().manual_seed(1)) for m in (model, trained_2d))
    torch.testing.assert_close(one, two, rtol=0, atol=0)


def test_no_function_moves_casts_or_changes_what_it_is_given(x):
    model, y = small_model().double(), torch.tensor([3, 1, 4, 1, 5, 9])
    x64 = x.double()
    before, labels = x64.clone(), y.clone()
    m2.unlabelled_loss(model, x64).sum().backward()
    m2.labelled_loss(model, x64, y, 1.0).sum().backward()
    m2.m2_loss(model, m2.M2Batch(x64, x64, y, 1.0))[0].backward()
    assert 0 <= m2.accuracy(model, x64, y) <= 1 and model.training
    assert m2.entropy(model.classify(x64)).dtype == torch.float64
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in model.parameters())
    assert torch.equal(x64, before) and x64.dtype == torch.float64 and torch.equal(y, labels)


def test_the_labelled_draw_is_seeded_class_balanced_and_outside_the_validation_split(sample_data):
    train_y = sample_data.train_y
    parts = m2.split(train_y, 100, 1 / 6, seed=0)
    again, other = m2.split(train_y, 100, 1 / 6, seed=0), m2.split(train_y, 100, 1 / 6, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(parts, again))
    assert not torch.equal(parts.labelled, other.labelled) and not torch.equal(parts.validation, other.validation)
    assert torch.equal(torch.bincount(train_y[parts.labelled], minlength=C), torch.full((C,), 10))
    assert len(parts.validation) == round(len(train_y) / 6)
    validation = set(parts.validation.tolist())
    assert not validation & set(parts.labelled.tolist())
    assert set(parts.unlabelled.tolist()) == set(range(len(train_y))) - validation  # the labelled ones included
    assert torch.equal(torch.bincount(train_y[m2.split(train_y, 600, 1 / 6, 0).labelled]), torch.full((C,), 60))


def run_cli(*args):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["train", "--data", "sample", "--hidden", "16", "--no-progress", *args])
    return code, printed.getvalue()


@pytest.mark.parametrize("args, says", [
    (["--model", "m2", "--labels", "105"], "labels must be a positive multiple of 10.*--labels 100"),
    (["--model", "m2", "--labels", "7000"], "digit .* has only .* use --labels .* or fewer"),
    (["--labels", "100"], "add --model m2"),
    (["--model", "m2"], "say how many with --labels N"),
    (["--model", "m2", "--labels", "100", "--objective", "iwae"], "leave --objective and --beta"),
    (["--model", "m2", "--labels", "100", "--arch", "conv"], "mlp network only.*--arch mlp"),
    (["--model", "m2", "--labels", "100", "--arch", "mlp-conv"], "mlp network only.*--arch mlp"),
    (["--model", "m2", "--labels", "100", "--channels", "8", "8"], "does not use.*leave --channels out"),
    (["--model", "m2", "--labels", "100", "--posterior", "planar"], r"Gaussian q\(z\|x, y\).*leave --posterior out"),
    (["--model", "m2", "--labels", "100", "--flow-layers", "2"], "planar flow.*leave --flow-layers out"),
    (["--model", "m2", "--labels", "100", "--prior", "vamp"], r"p\(z\) = N\(0, I\), got prior 'vamp'.*leave --prior"),
    (["--model", "m2", "--labels", "100", "--prior", "mog"], r"p\(z\) = N\(0, I\), got prior 'mog'.*leave --prior"),
    (["--model", "m2", "--labels", "100", "--prior-components", "5"], "leave --prior-components out"),
    (["--model", "m2", "--labels", "100", "--validation-share", "0.000001"],
     "holds out 0 of the 8,000 training images.*at least 100: use --validation-share 0.013 or more"),
    (["--model", "m2", "--labels", "100", "--validation-share", "0.01"], "holds out 80 of the 8,000"),
    (["--labelled-bound", "0"], "labelled_bound are settings of the semi-supervised model.*add --model m2"),
    (["--model", "m2", "--labels", "100", "--labelled-bound", "-1"], "must be finite and not negative.*use 1"),
    (["--model", "m2", "--labels", "100", "--labelled-bound", "inf"], "must be finite and not negative.*use 1"),
    (["--model", "m2", "--labels", "100", "--labelled-bound", "0", "--alpha", "0"],
     "the labels train nothing: give alpha a positive weight"),
    (["--classifier-activation", "relu"], "model 'vae' does not have: leave --classifier-activation out"),
])
def test_bad_label_settings_are_refused_saying_what_to_do_and_write_nothing(tmp_path, capsys, args, says):
    out = tmp_path / "r"
    assert run_cli("--steps", "2", "--out", str(out), *args)[0] == 1
    assert re.search(says, capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize("setting", [dict(prior="vamp"), dict(prior="mog"), dict(posterior="planar"),
                                     dict(flow_layers=8), dict(prior_components=3), dict(arch="conv"),
                                     dict(channels=(8, 8))])
def test_settings_m2_would_ignore_are_refused_in_python_too(setting):
    """Not only on the command line: ModelConfig itself refuses them, so neither TrainConfig nor build_model
    can make an M2 whose checkpoint names a prior, posterior or network it does not have."""
    with pytest.raises(ValueError, match="leave --|use --arch mlp"):
        ModelConfig(kind="m2", **setting)
    vae_setting = {"arch": "conv", **setting} if "channels" in setting else setting  # channels: a conv VAE's
    ModelConfig(**vae_setting)  # the VAE takes them
    with pytest.raises(ValueError, match="kind 'm2'"):
        m2.M2(ModelConfig(**vae_setting))


def test_a_too_small_validation_split_is_refused_before_any_step(sample_data):
    """A share that holds out no image (or too few) would crash, or mean nothing, at the first epoch's end:
    train refuses it before the first step, and the weights are untouched."""
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(data="sample", steps=5, model=model.config, labels=100, validation_share=1e-6, progress=False)
    with pytest.raises(ValueError, match="holds out 0 of the 8,000 training images"):
        train(model, sample_data, cfg)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert len(m2.split(sample_data.train_y, 100, 100 / 8000, 0).validation) == 100  # the least allowed


def test_each_labelled_batch_carries_its_own_images_labels():
    """Synthetic images whose pixels say their class and their position: class c sets pixel c, and pixels 10 to 25
    write the position in binary, grey levels 0 or 1 (so binarising keeps them). Every labelled batch's labels must
    be the classes its images show, and its images the split's labelled ones, over two epochs' shuffles."""
    n, bits = 2000, 16
    generator = torch.Generator().manual_seed(0)
    train_y = torch.randint(C, (n,), generator=generator)
    position = torch.arange(n)
    train_x = torch.zeros(n, 784)
    train_x[position, train_y] = 1.0
    train_x[:, C:C + bits] = ((position[:, None] >> torch.arange(bits)) & 1).float()
    data = m2.MNISTData(train_x, train_y, train_x[:10], train_y[:10], "sample", "synthetic")
    cfg = TrainConfig(data="sample", batch_size=20, model=ModelConfig(kind="m2"), labels=50, progress=False)
    batches = m2.M2Batches(data, cfg, torch.Generator().manual_seed(1))
    labelled = set(m2.split(train_y, 50, cfg.validation_share, cfg.seed).labelled.tolist())
    steps, seen = len(batches) // cfg.batch_size, set()
    for epoch in range(2):
        batches.shuffle()
        for i in range(steps if epoch == 0 else 5):
            batch = batches(i)
            x = batch.x_labelled
            assert len(x) == 20 and torch.equal(x[:, :C].sum(-1), torch.ones(20))  # one class pixel each
            assert torch.equal(x[:, :C].argmax(-1), batch.y), (epoch, i)
            where = (x[:, C:C + bits].long() << torch.arange(bits)).sum(-1)
            assert set(where.tolist()) <= labelled and torch.equal(train_y[where], batch.y)
            seen |= set(where.tolist())
    assert seen == labelled  # every labelled image was drawn


def test_sample_draws_labels_and_codes_on_the_generators_device():
    """The same images for a seed as drawing y, then z, from that generator by hand; and, with CUDA here, a CUDA
    generator works for a model on either device."""
    model = small_model()
    got = model.sample(7, torch.Generator().manual_seed(4))
    generator = torch.Generator().manual_seed(4)
    y = torch.randint(C, (7,), generator=generator)
    z = torch.randn(7, 3, generator=generator)
    torch.testing.assert_close(got, torch.sigmoid(model.decode(z, F.one_hot(y, C).float())).detach())
    if torch.cuda.is_available():
        for device in ("cpu", "cuda"):
            drawn = model.to(device).sample(7, torch.Generator("cuda").manual_seed(4))
            assert drawn.shape == (7, 784) and drawn.device.type == device


def test_an_unknown_model_is_refused_with_the_known_ones(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--model", "m3", "--labels", "100"])
    err = capsys.readouterr().err
    assert "invalid choice: 'm3'" in err and "'vae', 'm2'" in err


def test_train_help_offers_labels(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = capsys.readouterr().out
    assert "--labels N" in shown and "--alpha" in shown and "{vae,m2}" in shown
    assert "--labelled-bound" in shown and "--classifier-activation {same,relu,tanh,elu}" in shown


TINY = ["--model", "m2", "--labels", "100", "--z-dim", "2", "--seed", "3"]


def test_a_tiny_run_writes_test_accuracy_and_resumes_where_it_would_have_ended(tmp_path, monkeypatch, capsys,
                                                                               sample_data):
    """70 steps on the sample (66 per epoch: 6,667 unlabelled images in batches of 100): metrics with the test
    accuracy on every test image, validation accuracy after each epoch; then the same run stopped after its first
    epoch and resumed ends with the very same weights."""
    whole = tmp_path / "whole"
    code, printed = run_cli("--steps", "70", "--out", str(whole), *TINY)
    assert code == 0
    metrics = json.loads((whole / "metrics.json").read_text())
    assert metrics["n_test"] == 2000 and metrics["labels"] == 100
    checkpoint = read_checkpoint(whole / "model.pt")  # the test accuracy again, from the saved model
    saved = build_model(checkpoint["config"])
    saved.load_state_dict(checkpoint["state_dict"])
    with torch.no_grad():
        right = sum((saved.classify(x).argmax(-1) == y).sum().item()
                    for x, y in zip(sample_data.test_x.split(1000), sample_data.test_y.split(1000)))
    assert metrics["test_accuracy"] == right / 2000 and right > 2000 / C  # above chance after 70 steps
    assert main(["evaluate", str(whole / "model.pt")]) == 1  # its numbers are here, not evaluate's
    assert "vaelib.registry.Kind.evaluates" in capsys.readouterr().err
    assert len(metrics["history"]["metrics"]["validation_accuracy"]) == 2 and metrics["history"]["step"] == [66, 70]
    assert "test accuracy (q(y|x))" in printed and f"{metrics['test_accuracy']:.4f}" in printed
    assert "validation accuracy" in printed.split("results")[0]  # each epoch's line

    import vaelib.train as training

    class StopAfterFirstEpoch:  # as Ctrl-C would: the loop asks after every step
        def __init__(self):
            self.asked = 0

        def is_set(self):
            self.asked += 1
            return self.asked > 66

    monkeypatch.setattr(training, "deferred_interrupt", lambda: contextlib.nullcontext(StopAfterFirstEpoch()))
    stopped = tmp_path / "stopped"
    with pytest.raises(SystemExit):
        run_cli("--steps", "70", "--out", str(stopped), *TINY)
    monkeypatch.undo()
    assert json.loads((stopped / "metrics.json").read_text())["complete"] is False
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--resume", str(stopped), "--no-progress"]) == 0
    resumed, expected = (read_checkpoint(d / "model.pt")["state_dict"] for d in (stopped, whole))
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)
    assert json.loads((stopped / "metrics.json").read_text())["test_accuracy"] == metrics["test_accuracy"]


def test_a_published_command_line_run_is_the_model_fit_trains(tmp_path, monkeypatch, sample_data):
    """benchmarks/m2_publish.py files a finished `train --model m2` run under vaelib.study.fit's key; fit then loads
    it, and fit training afresh from the same settings gives the same weights bit for bit."""
    import importlib.util
    from pathlib import Path

    from vaelib.study import fit

    spec = importlib.util.spec_from_file_location(
        "m2_publish", Path(__file__).resolve().parents[1] / "benchmarks" / "m2_publish.py")
    publish = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish)
    monkeypatch.setenv("VAELIB_SMOKE", "0")
    monkeypatch.setenv("VAELIB_PRETRAINED", "0")
    monkeypatch.setenv("VAELIB_ADAPT_THREADS", "0")
    run = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--model", "m2", "--labels", "100", "--data", "sample", "--no-progress", "--steps", "30",
                     "--hidden", "16", "--z-dim", "2", "--alpha", "500", "--seed", "3", "--out", str(run)]) in (0, None)
    monkeypatch.setenv("VAELIB_RUNS", str(tmp_path / "published"))
    publish.publish(run)
    options = dict(labels=100, alpha=500.0, seed=3)
    with contextlib.redirect_stdout(io.StringIO()) as said:
        loaded, _ = fit(sample_data, ModelConfig(kind="m2", hidden=(16,), z_dim=2), 30, **options)
    assert "loaded from" in said.getvalue()
    monkeypatch.setenv("VAELIB_RUNS", str(tmp_path / "fresh"))
    with contextlib.redirect_stdout(io.StringIO()) as said:
        fresh, _ = fit(sample_data, ModelConfig(kind="m2", hidden=(16,), z_dim=2), 30, **options)
    assert "trained now" in said.getvalue()
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), fresh.state_dict().values()))


@pytest.mark.parametrize("label", [-1, 10, 2.0, True])
def test_a_label_outside_the_ten_digits_is_refused(label):
    with pytest.raises(ValueError, match="integer from 0 to 9"):
        m2.label_log_px_z(small_model(z_dim=2), label)
