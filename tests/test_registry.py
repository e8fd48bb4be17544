"""The seams of vaelib.registry: a new network and a new labelled model kind, each added by registering it, run
through training, the command line, checkpoints, the cache, IWAE and the exact quadrature with no change to them.

The toy labelled model is a VAE with a classifier q(y|x) beside it; its kind draws a second stream of labelled
batches, and its objective adds the classifier's cross-entropy on them to the ELBO of the unlabelled batch.
"""

import contextlib
import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vaelib import registry, runs
from vaelib.__main__ import main
from vaelib.config import ModelConfig, TrainConfig
from vaelib.elbo import elbo_terms
from vaelib.evaluate import per_image_iwae
from vaelib.exact import converged_log_px, log_px_grid
from vaelib.model import VAE, LatentVariableModel, build_model, load_checkpoint, save_checkpoint
from vaelib.train import Batches, train


def toy_encoder(config):
    return nn.Sequential(nn.Linear(config.x_dim, 12), nn.Tanh()), 12


def toy_decoder(config):
    return nn.Sequential(nn.Linear(config.z_dim, 12), nn.Tanh(), nn.Linear(12, config.x_dim))


class Labelled(VAE):
    """A VAE and, beside it, a classifier q(y|x) over the 10 digits."""

    def __init__(self, config):
        super().__init__(config)
        self.classifier = nn.Linear(config.x_dim, 10)


class LabelledBatches(Batches):
    """The usual batches, each with a labelled batch of 10 drawn from the first 50 training images."""

    def __init__(self, data, cfg, generator):
        super().__init__(data.train_x, cfg.batch_size, generator)
        self.labelled_x, self.labels = data.train_x[:50], data.train_y[:50]

    def __call__(self, i):
        pick = torch.randperm(50, generator=self.generator, device=self.labels.device)[:10]
        return super().__call__(i), (torch.bernoulli(self.labelled_x[pick], generator=self.generator), self.labels[pick])


def labelled_objective(model, batch, generator, cfg):
    x, (x_labelled, y) = batch
    terms = elbo_terms(model, x, generator)
    loss = -terms.elbo.mean() + F.cross_entropy(model.classifier(x_labelled), y)
    return loss, torch.stack([-terms.elbo.mean(), terms.kl.mean()])


@pytest.fixture
def registered():
    registry.NETWORKS["toy"] = registry.Network(encoder=toy_encoder, decoder=toy_decoder)
    registry.KINDS["toy-labelled"] = registry.Kind(build=Labelled, batches=LabelledBatches)
    registry.OBJECTIVES["toy-labelled"] = labelled_objective
    yield ModelConfig(arch="toy", kind="toy-labelled", z_dim=2)
    for table, name in ((registry.NETWORKS, "toy"), (registry.KINDS, "toy-labelled"),
                        (registry.OBJECTIVES, "toy-labelled")):
        del table[name]


def test_an_unregistered_name_is_refused_with_the_registered_ones():
    with pytest.raises(ValueError, match="arch must be 'mlp', 'conv', 'conv-mlp' or 'mlp-conv', got 'toy'"):
        ModelConfig(arch="toy")
    with pytest.raises(ValueError, match="objective must be 'elbo' or 'iwae', got 'toy-labelled'"):
        TrainConfig(objective="toy-labelled")


def test_a_registered_network_and_labelled_kind_train_save_load_and_score(registered, sample_data, tmp_path):
    config = registered
    torch.manual_seed(0)
    model = build_model(config)
    assert isinstance(model, Labelled) and isinstance(model, LatentVariableModel)
    assert model.encoder[0].out_features == 12  # the toy network, not the MLP
    cfg = TrainConfig(data="sample", steps=30, batch_size=50, objective="toy-labelled", model=config, progress=False)
    classifier_before = model.classifier.weight.detach().clone()
    history = train(model, sample_data, cfg)
    assert math.isfinite(history.test_neg_elbo[-1]) and not torch.equal(model.classifier.weight, classifier_before)

    save_checkpoint(tmp_path / "m.pt", model)
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert isinstance(loaded, Labelled) and loaded.config == config
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))

    x = sample_data.test_x[:6]
    iwae, se = per_image_iwae(loaded, x, 2000, return_se=True)
    exact, _, _ = converged_log_px(loaded, x)
    torch.testing.assert_close(exact, log_px_grid(loaded, x, half_width=8.0, spacing=0.02), atol=0.02, rtol=0)
    assert (iwae < exact + 4 * se).all() and (exact - iwae < 5).all()  # a lower bound, up to its Monte Carlo noise


def test_a_registered_kind_goes_through_the_cache_and_the_command_line(registered, sample_data, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setattr(runs, "PRETRAINED", tmp_path / "pretrained")
    monkeypatch.setenv("VAELIB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VAELIB_SMOKE", "0")
    cfg = TrainConfig(data="sample", steps=10, batch_size=50, objective="toy-labelled", model=registered,
                      progress=False)

    def fit():
        torch.manual_seed(0)
        model = build_model(cfg.model)
        return model, train(model, sample_data, cfg)

    first = runs.trained({"toy": 1}, fit, "toy")
    again = runs.trained({"toy": 1}, fit, "toy")
    assert (first.source, again.source) == ("trained", "cache") and isinstance(again.model, Labelled)

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", "--data", "sample", "--steps", "5", "--batch-size", "50", "--arch", "toy", "--model",
                     "toy-labelled", "--objective", "toy-labelled", "--iwae-k", "3", "--out", str(tmp_path / "r"),
                     "--no-progress"]) == 0
    assert isinstance(load_checkpoint(tmp_path / "r" / "model.pt"), Labelled)
