"""vaelib.plot: each figure checked against the model it draws (decoded tiles, codes, labels)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vaelib import plot  # noqa: E402
from vaelib.config import ModelConfig  # noqa: E402
from vaelib.model import VAE  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VAE(ModelConfig()).eval()


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def decoded(model, z):
    with torch.no_grad():
        return torch.sigmoid(model.decode(torch.tensor([z]))).reshape(28, 28)


@pytest.mark.parametrize("n", [20, 21])
def test_latent_grid_tile_under_a_point_of_the_axes_is_the_decoding_of_that_point(model, n):
    fig = plot.plot_latent_grid(model, n=n, half_width=4.0)
    image = fig.axes[0].images[0]
    left, right, bottom, top = image.get_extent()
    tile = (right - left) / n
    points = torch.linspace(-4, 4, n).tolist()
    for z1, z2 in [(points[0], points[-1]), (points[3], points[n - 5]), (points[-1], points[0])]:
        col, row = int((z1 - left) // tile), int((top - z2) // tile)
        drawn = torch.as_tensor(image.get_array()[28 * row:28 * (row + 1), 28 * col:28 * (col + 1)]).float()
        torch.testing.assert_close(drawn, decoded(model, (z1, z2)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("n", [2, 3, 9, 17, 20, 21])
def test_latent_grid_ticks_mark_grid_points(model, n):
    ax = plot.plot_latent_grid(model, n=n, half_width=4.0).axes[0]
    points = torch.linspace(-4, 4, n)
    for ticks in (ax.get_xticks(), ax.get_yticks()):
        assert 2 <= len(ticks) <= 9
        assert all((points - t).abs().min() < 1e-6 for t in ticks)
    if n == 21:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["-4", "-2", "0", "2", "4"]


def test_reconstructions_show_inputs_above_their_decoded_means_with_labels(model):
    x = torch.rand(10, 784).bernoulli()
    labels, code_labels = torch.arange(10), torch.tensor([0, 1, 2, 9, 4, 5, 6, 7, 8, 3])
    fig = plot.plot_reconstructions(model, x, labels, n=10, code_labels=code_labels, per_row=8)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 20
    grid = [[ax for ax in fig.axes if ax.get_subplotspec().rowspan.start == r] for r in range(4)]
    with torch.no_grad():
        recon = torch.sigmoid(model.decode(model.encode(x)[0]))
    for i in range(10):
        top, bottom = grid[2 * (i // 8)][i % 8], grid[2 * (i // 8) + 1][i % 8]
        torch.testing.assert_close(torch.as_tensor(top.images[0].get_array()).float(), x[i].reshape(28, 28))
        torch.testing.assert_close(torch.as_tensor(bottom.images[0].get_array()).float(), recon[i].reshape(28, 28))
        assert top.get_title() == f"label {i}"
        assert bottom.get_title() == f"near {int(code_labels[i])}s"
        red = matplotlib.colors.to_rgb(bottom.title.get_color()) == (1.0, 0.0, 0.0)
        assert red == (i in (3, 9))
    assert grid[0][0].get_ylabel() == "input" and grid[3][0].get_ylabel() == "decoded\nat mean"


def test_embedding_draws_posterior_means_with_each_digit_at_its_median(model):
    x, labels = torch.rand(40, 784).bernoulli(), torch.arange(40) % 4
    fig, (left, right) = plt.subplots(1, 2)
    assert plot.plot_embedding(model, x, labels, ax=right, legend=False) is fig
    assert not left.collections and right.get_legend() is None and right.get_aspect() == 1.0
    with torch.no_grad():
        mu = model.encode(x)[0]
    for digit, points in enumerate(right.collections[:4]):
        torch.testing.assert_close(torch.as_tensor(points.get_offsets()).float(), mu[labels == digit])
    texts = {t.get_text(): t.get_position() for t in right.texts}
    assert sorted(texts) == ["0", "1", "2", "3"]
    for digit in range(4):
        torch.testing.assert_close(torch.tensor(texts[str(digit)]).float(), mu[labels == digit].median(0).values)
    assert plot.plot_embedding(model, x, labels).axes[0].get_legend() is not None
