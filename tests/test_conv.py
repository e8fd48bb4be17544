"""The convolutional networks of vaelib.conv (--arch conv, conv-mlp, mlp-conv): shapes against PyTorch's own layers,
parameter counts against their closed forms, checkpoints, the command line, and everything that takes a model
(IWAE training and scoring, the planar flow, the learned priors, the gap fits, the cache) taking them unchanged.
The exact log p(x) of a 2-D convolutional model is checked against a rectangle rule written here with
torch.distributions.
"""

import contextlib
import io
import math

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Normal

from vaelib import registry
from vaelib.__main__ import build_parser, main
from vaelib.config import ModelConfig, TrainConfig
from vaelib.conv import ConvDecoder, conv_encoder, conv_out, conv_transpose_out
from vaelib.elbo import elbo_terms, iwae_bound
from vaelib.exact import converged_log_px
from vaelib.gaps import fit_local, local_parameters
from vaelib.model import CheckpointError, build_model, load_checkpoint, read_checkpoint, save_checkpoint
from vaelib.train import train

ARCHS = ("conv", "conv-mlp", "mlp-conv")


def small(arch: str) -> dict:
    """Small networks, for the tests' arithmetic rather than MNIST's accuracy (hidden only where an MLP half is)."""
    return dict(channels=(4, 8)) if arch == "conv" else dict(channels=(4, 8), hidden=(16,))


@pytest.mark.parametrize("side,kernel,stride,padding", [(28, 3, 2, 1), (14, 3, 2, 1), (28, 4, 2, 1), (7, 5, 1, 2),
                                                         (9, 3, 2, 0)])
def test_output_sides_are_pytorchs(side, kernel, stride, padding):
    x = torch.zeros(1, 1, side, side)
    out = nn.Conv2d(1, 1, kernel, stride, padding)(x)
    assert out.shape[-1] == conv_out(side, kernel, stride, padding)
    for extra in range(stride):  # output_padding must be smaller than the stride
        up = nn.ConvTranspose2d(1, 1, kernel, stride, padding, output_padding=extra)(out)
        assert up.shape[-1] == conv_transpose_out(out.shape[-1], kernel, stride, padding, extra)


def test_the_default_shape_halves_28_twice_and_comes_back():
    assert [conv_out(28), conv_out(conv_out(28))] == [14, 7]
    assert [conv_transpose_out(7), conv_transpose_out(14)] == [14, 28]


@pytest.mark.parametrize("channels,z_dim", [((32, 64), 2), ((4, 8), 5)])
def test_parameter_counts_are_the_closed_forms(channels, z_dim):
    c1, c2 = channels
    config = ModelConfig(arch="conv", z_dim=z_dim, channels=channels)
    encoder, width = conv_encoder(config)
    decoder = ConvDecoder(config)
    assert width == c2 * 7 * 7
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(encoder) == (9 + 1) * c1 + (9 * c1 + 1) * c2  # two 3 x 3 convolutions with biases
    assert count(decoder) == (z_dim + 1) * c2 * 49 + (9 * c2 + 1) * c1 + (9 * c1 + 1)
    model = build_model(config)
    heads = 2 * (width + 1) * z_dim
    assert count(model) == count(encoder) + heads + count(decoder)


@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_through_the_protocol(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, z_dim=3, **small(arch)))
    x = (torch.rand(5, 784) < 0.3).float()
    logits, mu, logvar = model(x)
    assert logits.shape == (5, 784) and mu.shape == logvar.shape == (5, 3)
    z, log_q = model.sample_posterior(x, k=4)
    assert z.shape == (4, 5, 3) and log_q.shape == (4, 5)
    assert model.decode(z).shape == (4, 5, 784)
    # Decoding a batch of draws equals decoding each draw alone: the leading dimensions are only folded.
    torch.testing.assert_close(model.decode(z)[2], model.decode(z[2]))
    assert model.sample(7).shape == (7, 784)


def test_images_that_are_not_square_multiples_of_4_are_refused_with_what_to_do():
    for x_dim in (100, 30 * 30, 783):
        with pytest.raises(ValueError, match="--arch mlp"):
            build_model(ModelConfig(arch="conv", x_dim=x_dim))
    build_model(ModelConfig(arch="conv", x_dim=16 * 16, **small("conv")))  # 16 -> 8 -> 4 and back


@pytest.mark.parametrize("arch", ARCHS)
def test_a_checkpoint_round_trip(arch, tmp_path):
    torch.manual_seed(1)
    model = build_model(ModelConfig(arch=arch, z_dim=2, **small(arch)))
    save_checkpoint(tmp_path / "m.pt", model)
    assert read_checkpoint(tmp_path / "m.pt")["config"] == model.config
    loaded = load_checkpoint(tmp_path / "m.pt")
    z = torch.randn(6, 2)
    torch.testing.assert_close(loaded.decode(z), model.decode(z), rtol=0, atol=0)


def test_an_unregistered_network_in_a_checkpoint_is_not_called_damaged(tmp_path):
    model = build_model(ModelConfig(arch="conv", z_dim=2, **small("conv")))
    save_checkpoint(tmp_path / "m.pt", model)
    networks = dict(registry.NETWORKS)
    del registry.NETWORKS["conv"]
    try:
        with pytest.raises(CheckpointError, match="import the module that registers it") as err:
            read_checkpoint(tmp_path / "m.pt")
        assert "damaged" not in str(err.value)
    finally:
        registry.NETWORKS.clear()
        registry.NETWORKS.update(networks)  # in the same order: the error messages list them


def rectangle_rule_log_px(model, x, half_width=7.0, spacing=0.05):
    """log p(x) = log sum_g p(x|z_g) N(z_g; 0, I) h^2 over a square grid, with torch.distributions."""
    axis = torch.arange(-half_width, half_width + spacing / 2, spacing, dtype=torch.float64)
    z = torch.cartesian_prod(axis, axis)  # (G, 2)
    with torch.no_grad():
        logits = model.decode(z.float()).double()  # (G, D)
    log_prior = Normal(0.0, 1.0).log_prob(z).sum(-1)  # (G,)
    log_lik = torch.stack([Bernoulli(logits=logits).log_prob(xi.double()).sum(-1) for xi in x])  # (N, G)
    return torch.logsumexp(log_lik + log_prior, 1) + 2 * math.log(spacing)


def test_the_exact_log_px_of_a_2d_conv_model_matches_a_rectangle_rule(sample_data):
    torch.manual_seed(2)
    model = build_model(ModelConfig(arch="conv", z_dim=2, **small("conv"))).eval()
    with torch.no_grad():  # sharpen the decoder so that the posteriors are narrow enough to test the refinement
        model.decoder.net[-1].weight.mul_(4)
    x = sample_data.test_x[:4]
    exact, _, _ = converged_log_px(model, x)
    torch.testing.assert_close(exact.double(), rectangle_rule_log_px(model, x), atol=0.02, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("variant", [dict(), dict(objective="iwae", iwae_train_k=3),
                                     dict(posterior="planar", flow_layers=2), dict(prior="mog"), dict(prior="vamp")])
def test_every_variant_trains_and_scores_with_a_conv_network(arch, variant, sample_data):
    model_fields = {key: variant[key] for key in ("posterior", "flow_layers", "prior") if key in variant}
    train_fields = {key: variant[key] for key in ("objective", "iwae_train_k") if key in variant}
    config = ModelConfig(arch=arch, z_dim=2, **small(arch), **model_fields)
    torch.manual_seed(0)
    model = build_model(config)
    cfg = TrainConfig(data="sample", steps=4, batch_size=50, model=config, progress=False, **train_fields)
    history = train(model, sample_data, cfg)
    assert math.isfinite(history.test_neg_elbo[-1])
    x = sample_data.test_x[:3]
    bound = iwae_bound(model, x, 10)
    assert torch.isfinite(bound).all()
    starts = [local_parameters(model, x)]
    best, elbo_star = fit_local(model, x, starts, steps=3, samples=2, eval_samples=5)
    assert torch.isfinite(elbo_star).all()


def test_training_is_reproducible_on_the_cpu(sample_data):
    config = ModelConfig(arch="conv", z_dim=2, **small("conv"))
    runs_ = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(config)
        train(model, sample_data, TrainConfig(data="sample", steps=5, batch_size=50, model=config, progress=False))
        runs_.append(elbo_terms(model, sample_data.test_x[:20], torch.Generator().manual_seed(0)).elbo)
    assert torch.equal(*runs_)


def test_the_encoder_keeps_leading_dimensions_as_the_mlp_does():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="conv", z_dim=2, **small("conv")))
    x = (torch.rand(2, 3, 784) < 0.4).float()
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (2, 3, 2)
    torch.testing.assert_close(mu[1], model.encode(x[1])[0])


def test_settings_no_half_uses_and_malformed_channels_are_refused():
    with pytest.raises(ValueError, match="two numbers"):
        ModelConfig(arch="conv", channels=(4,))
    with pytest.raises(ValueError, match="two numbers"):
        ModelConfig(arch="conv", channels=4)
    with pytest.raises(ValueError, match="--arch conv, conv-mlp or mlp-conv"):
        ModelConfig(arch="mlp", channels=(8, 8))
    with pytest.raises(ValueError, match="use --channels"):
        ModelConfig(arch="conv", hidden=(64,))
    ModelConfig(arch="conv-mlp", hidden=(64,), channels=(8, 8))  # each half uses one of them


def test_the_command_line_offers_and_trains_the_architectures(tmp_path):
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "--arch" in help_text and "conv-mlp" in help_text and "--channels" in help_text
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", "--data", "sample", "--steps", "3", "--batch-size", "50", "--arch", "conv",
                     "--channels", "4", "8", "--iwae-k", "3", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    model = load_checkpoint(tmp_path / "r" / "model.pt")
    assert model.config.arch == "conv" and model.config.channels == (4, 8)
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        main(["train", "--arch", "resnet"])


def test_a_plain_mlp_keeps_its_settings_and_key(tmp_path):
    """Models committed before the conv networks existed keep their checkpoint settings (no channels field)."""
    model = build_model(ModelConfig())
    save_checkpoint(tmp_path / "m.pt", model)
    saved = torch.load(tmp_path / "m.pt", weights_only=True)
    assert "channels" not in saved["config"] and "arch" not in saved["config"]
    conv = build_model(ModelConfig(arch="conv", channels=(8, 16)))
    save_checkpoint(tmp_path / "c.pt", conv)
    assert torch.load(tmp_path / "c.pt", weights_only=True)["config"]["channels"] == [8, 16]


def test_the_quadrature_decodes_a_bounded_number_of_points_at_once(sample_data):
    """A convolutional decoder holds some 20,000 floats per point: the coarse grid's tens of thousands of points
    decoded at once took 3.6 GB, and Binder has 2 GB. Every call to decode gets at most DECODE_CHUNK points."""
    from vaelib.exact import DECODE_CHUNK
    torch.manual_seed(3)  # the same weights on every run (with these, the grid-edge warning does not fire)
    model = build_model(ModelConfig(arch="conv", z_dim=2, **small("conv"))).eval()
    sizes, decode = [], model.decode
    model.decode = lambda z: (sizes.append(len(z)), decode(z))[1]
    converged_log_px(model, sample_data.test_x[:3])
    assert max(sizes) <= DECODE_CHUNK and sum(sizes) > 2 * DECODE_CHUNK  # many points, in pieces
