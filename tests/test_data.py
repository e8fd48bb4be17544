"""The offline sample, full MNIST in a torchvision MNIST/raw folder (built here, tiny), and binarisation."""

import gzip
import hashlib
import shutil

import numpy as np
import pytest
import torch

import vaelib.data as data
from vaelib.data import DataError, load_mnist, read_idx

SAMPLE = data.PACKAGE_DATA / "t10k-labels-idx1-ubyte.gz"
SAMPLE_MD5 = data.SAMPLE_FILES[SAMPLE.name]
SAMPLE_MD5S = data.SAMPLE_FILES


def test_sample_split_is_by_index(sample_data):
    labels = torch.from_numpy(read_idx(SAMPLE, SAMPLE_MD5)).long()
    assert len(sample_data.train_x) == 8000 and len(sample_data.test_x) == 2000
    assert torch.equal(sample_data.test_y, labels[4::5])
    assert sample_data.train_x.shape[1] == 784 and 0 <= sample_data.train_x.min() < sample_data.train_x.max() <= 1


def test_test_set_is_binarised_once_and_the_same_every_load(sample_data):
    assert set(sample_data.test_x.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(load_mnist("sample", verbose=False).test_x, sample_data.test_x)


def test_truncated_bundled_file_names_the_file_and_the_fix(tmp_path, monkeypatch):
    for name in data.SAMPLE_FILES:
        shutil.copy(data.PACKAGE_DATA / name, tmp_path / name)
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:1000])
    monkeypatch.setattr(data, "PACKAGE_DATA", tmp_path)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz is corrupt or truncated.*git checkout"):
        load_mnist("sample")


def test_invalid_idx_content_is_refused(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 20))
    with pytest.raises(DataError, match="not a valid IDX"):
        read_idx(bad)


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file as MNIST ships it: magic 2049 (labels, (N,)) or 2051 (images, (N, 28, 28)), big-endian sizes."""
    magic = 2051 if array.ndim == 3 else 2049
    return b"".join(n.to_bytes(4, "big") for n in (magic, *array.shape)) + array.astype(np.uint8).tobytes()


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """A torchvision MNIST/raw folder of 30 train and 10 test digits, extracted files and their .gz, with
    vaelib's and torchvision's MD5 tables pointed at these files and torchvision's mirrors at a closed port."""
    from torchvision.datasets import MNIST

    g = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": g.integers(0, 256, (30, 28, 28)), "train-labels-idx1-ubyte": g.integers(0, 10, 30),
              "t10k-images-idx3-ubyte": g.integers(0, 256, (10, 28, 28)), "t10k-labels-idx1-ubyte": g.integers(0, 10, 10)}
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, array in arrays.items():
        (raw / name).write_bytes(idx_bytes(array))
        (raw / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    monkeypatch.setattr(data, "FULL_FILES", {name: data.md5(raw / name) for name in arrays})
    monkeypatch.setattr(MNIST, "resources", [(f"{name}.gz", data.md5(raw / f"{name}.gz")) for name in arrays])
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # nothing listens there: no network is used
    monkeypatch.delenv("VAELIB_DATA", raising=False)
    monkeypatch.delenv("VAELIB_DOWNLOAD", raising=False)  # `make check` turns downloads off; these test them
    return raw, arrays


def assert_loaded(tensors, arrays):
    train_x, train_y, test_x, test_y = tensors
    torch.testing.assert_close(train_x, torch.tensor(arrays["train-images-idx3-ubyte"].reshape(30, 784) / 255).float())
    assert train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert test_x.shape == (10, 784) and test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


@pytest.mark.parametrize("layout", ["extracted only", ".gz and extracted", ".gz only"])
def test_a_torchvision_raw_folder_loads_in_each_layout(tiny_mnist, layout):
    raw, arrays = tiny_mnist
    for name in arrays:
        if layout == "extracted only":
            (raw / f"{name}.gz").unlink()
        if layout == ".gz only":  # torchvision extracts the verified .gz files, with no network
            (raw / name).unlink()
    assert_loaded(data.load_full_mnist(raw.parent.parent), arrays)
    assert all((raw / name).exists() for name in arrays)


@pytest.mark.parametrize("level", ["root", "MNIST", "raw"])
def test_data_dir_may_name_the_root_the_mnist_folder_or_the_raw_folder(tiny_mnist, level):
    raw, arrays = tiny_mnist
    folder = {"root": raw.parent.parent, "MNIST": raw.parent, "raw": raw}[level]
    assert data.raw_folder(folder) == raw
    assert_loaded(data.load_full_mnist(folder), arrays)


def test_vaelib_data_names_the_folder_when_none_is_given(tiny_mnist, monkeypatch, capsys):
    raw, arrays = tiny_mnist
    monkeypatch.setenv("VAELIB_DATA", str(raw.parent.parent))
    loaded = load_mnist("mnist")
    assert loaded.source == "mnist" and len(loaded.train_x) == 30
    assert "from $VAELIB_DATA" in capsys.readouterr().out  # the variable, not a path of this machine


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_a_damaged_extracted_file_is_named_and_extracted_again_from_its_gz(tiny_mnist, damage, capsys):
    raw, arrays = tiny_mnist
    path = raw / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:100] if damage == "truncated" else b"\x00" * path.stat().st_size)
    assert_loaded(data.load_full_mnist(raw), arrays)  # the original digits, not the damaged ones
    assert f"{path} is corrupt or truncated" in capsys.readouterr().out


def test_a_damaged_file_without_network_is_deleted_and_the_error_says_where_to_put_the_files(tiny_mnist):
    raw, arrays = tiny_mnist
    for name in arrays:
        (raw / f"{name}.gz").unlink()
    (raw / "train-labels-idx1-ubyte").write_bytes(b"half a file")
    with pytest.raises(DataError, match=r"missing: train-labels-idx1-ubyte\) and could not be fetched .*"
                                        r"Without network, put the four files .* in .*raw"):
        data.load_full_mnist(raw)
    assert not (raw / "train-labels-idx1-ubyte").exists()  # never used


def test_a_fetch_that_leaves_a_corrupt_file_is_an_error(tiny_mnist):
    raw, _ = tiny_mnist
    (raw / "t10k-labels-idx1-ubyte").unlink()

    def bad_fetch(folder):
        (folder / "t10k-labels-idx1-ubyte").write_bytes(b"garbage")

    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte is still missing or corrupt"):
        data.load_full_mnist(raw, fetch=bad_fetch)


def test_the_md5_table_names_torchvisions_files_extracted():
    """Each extracted file's MD5 is checked; the table names the files torchvision extracts, and its MD5s
    are not the .gz ones (the shared full copy, which a user's clone lacks, is what they were taken from)."""
    from torchvision.datasets import MNIST

    gz = dict(MNIST.resources)
    assert set(data.FULL_FILES) == {name.removesuffix(".gz") for name in gz}
    assert all(len(v) == 32 and v != gz[f"{k}.gz"] for k, v in data.FULL_FILES.items())
    assert data.SAMPLE_FILES["t10k-images-idx3-ubyte.gz"] == gz["t10k-images-idx3-ubyte.gz"]


def test_the_sample_is_the_full_test_set_where_both_exist(sample_data):
    """The bundled t10k files, decompressed, have the MD5 that FULL_FILES gives the extracted t10k files."""
    for name in SAMPLE_MD5S:
        assert hashlib.md5(gzip.decompress((data.PACKAGE_DATA / name).read_bytes())).hexdigest() == \
            data.FULL_FILES[name.removesuffix(".gz")]


def test_auto_falls_back_to_the_sample_and_tries_the_network_once(tmp_path, monkeypatch, capsys):
    calls = []

    def no_network(raw):
        calls.append(raw)
        raise DataError("no network")

    monkeypatch.setattr(data, "download", no_network)
    monkeypatch.setattr(data, "_download_failure", None)
    monkeypatch.delenv("VAELIB_DOWNLOAD", raising=False)
    monkeypatch.setenv("VAELIB_DATA", str(tmp_path))
    first, second = load_mnist("auto"), load_mnist("auto")
    assert first.source == second.source == "sample" and len(calls) == 1
    assert "full MNIST is not in $VAELIB_DATA and could not be downloaded (no network)" in capsys.readouterr().out


def test_dynamic_binarisation_is_fresh_each_draw_and_seeded(sample_data):
    x = sample_data.train_x[:50]
    a = data.binarise(x, torch.Generator().manual_seed(0))
    b = data.binarise(x, torch.Generator().manual_seed(0))
    c = data.binarise(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {0.0, 1.0} and torch.equal(a[x == 0], x[x == 0])


def test_with_downloads_off_auto_uses_the_sample_at_once_and_mnist_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "_download_failure", None)
    monkeypatch.setenv("VAELIB_DOWNLOAD", "0")
    monkeypatch.setenv("VAELIB_DATA", str(tmp_path))
    monkeypatch.setattr(data, "load_full_mnist", lambda *a: pytest.fail("full MNIST was looked for"))
    assert load_mnist("auto").source == "sample"
    assert "downloads are off (VAELIB_DOWNLOAD=0)" in capsys.readouterr().out
    monkeypatch.undo()
    monkeypatch.setenv("VAELIB_DOWNLOAD", "0")
    with pytest.raises(DataError, match=r"could not be fetched \(downloads are off \(VAELIB_DOWNLOAD=0\)\)"):
        data.load_full_mnist(tmp_path)


def test_without_torchvision_the_download_is_a_clear_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("VAELIB_DOWNLOAD", "1")
    for name in ("torchvision", "torchvision.datasets"):  # importing them now fails
        monkeypatch.setitem(__import__("sys").modules, name, None)
    with pytest.raises(DataError, match="torchvision, which downloads MNIST, cannot be imported.*pip install"):
        data.download(tmp_path / "MNIST" / "raw")


def test_binarise_is_torch_bernoulli_on_the_cpu_and_keeps_shape_dtype_and_device():
    grey = torch.rand(64, 784)
    drawn = data.binarise(grey, torch.Generator().manual_seed(7))
    assert torch.equal(drawn, torch.bernoulli(grey, generator=torch.Generator().manual_seed(7)))
    assert drawn.shape == grey.shape and drawn.dtype == grey.dtype and drawn.device == grey.device


def test_the_test_split_alone_is_the_full_loads_test_split(tiny_mnist):
    """splits=("t10k",) gives load_full_mnist's test images and labels, without the training ones; a split MNIST
    does not have is refused."""
    raw, _ = tiny_mnist
    test_x, test_y = data.load_full_mnist(raw, splits=("t10k",))
    whole = data.load_full_mnist(raw)
    assert torch.equal(test_x, whole[2]) and torch.equal(test_y, whole[3])
    with pytest.raises(ValueError, match="'train' and 't10k'"):
        data.load_full_mnist(raw, splits=("test",))

