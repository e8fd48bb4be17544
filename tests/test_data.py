"""The offline sample, the download cache and binarisation."""

import gzip
import shutil

import pytest
import torch

import vaelib.data as data
from vaelib.data import DataError, fetch, load_mnist, read_idx

SAMPLE = data.PACKAGE_DATA / "t10k-labels-idx1-ubyte.gz"
SAMPLE_MD5 = data.SAMPLE_FILES[SAMPLE.name]


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


def test_corrupt_cached_download_is_fetched_again(tmp_path):
    (tmp_path / SAMPLE.name).write_bytes(b"half a file")
    calls = []

    def fake_download(filename, folder, expected_md5):
        calls.append(filename)
        shutil.copy(SAMPLE, folder / filename)

    labels = fetch(SAMPLE.name, SAMPLE_MD5, tmp_path, download=fake_download)
    assert calls == [SAMPLE.name] and labels.shape == (10000,)


def test_valid_cached_file_is_not_downloaded_again(tmp_path):
    shutil.copy(SAMPLE, tmp_path / SAMPLE.name)
    fetch(SAMPLE.name, SAMPLE_MD5, tmp_path, download=lambda *a: pytest.fail("downloaded again"))


def test_a_download_that_stays_corrupt_is_an_error(tmp_path):
    def bad_download(filename, folder, expected_md5):
        (folder / filename).write_bytes(b"garbage")

    with pytest.raises(DataError, match="corrupt"):
        fetch(SAMPLE.name, SAMPLE_MD5, tmp_path, download=bad_download)


def test_auto_falls_back_to_the_sample_and_tries_the_network_once(tmp_path, monkeypatch, capsys):
    calls = []

    def no_network(filename, folder, expected_md5):
        calls.append(filename)
        raise DataError(f"could not download {filename}: no network")

    monkeypatch.setattr(data, "_download", no_network)
    monkeypatch.setattr(data, "_download_failure", None)
    monkeypatch.setenv("VAELIB_DATA", str(tmp_path))
    first, second = load_mnist("auto"), load_mnist("auto")
    assert first.source == second.source == "sample" and len(calls) == 1
    assert "could not be downloaded" in capsys.readouterr().out


def test_dynamic_binarisation_is_fresh_each_draw_and_seeded(sample_data):
    x = sample_data.train_x[:50]
    a = data.binarise(x, torch.Generator().manual_seed(0))
    b = data.binarise(x, torch.Generator().manual_seed(0))
    c = data.binarise(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {0.0, 1.0} and torch.equal(a[x == 0], x[x == 0])
