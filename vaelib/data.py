"""Binarised MNIST as tensors: the full data set (downloaded once) or the offline sample shipped here.

Sources:
  "mnist"  the 60,000 + 10,000 digits of LeCun, Cortes & Burges, fetched with torchvision's
           mirrors and checksums into a cache folder ($VAELIB_DATA, else ~/.cache/vaelib).
  "sample" the real MNIST test set (10,000 digits) bundled in vaelib/data, checked against its
           official MD5 on load and split 8,000 train / 2,000 test by index (index % 5 == 4 is test).
  "auto"   "mnist" when cached or downloadable, else "sample"; says which and why.

Images stay (N, 784) float tensors in [0, 1]. Training batches are binarised afresh at every
draw (dynamic binarisation); the test set is binarised once with a fixed seed, so its loss is
the same at every evaluation.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PACKAGE_DATA = Path(__file__).parent / "data"
SAMPLE_FILES = {  # official MD5s of the MNIST test set (see vaelib/data/MD5SUMS)
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
TEST_BINARISATION_SEED = 20140101  # fixed, so every run and every evaluation sees the same test set
_download_failure: str | None = None  # "auto" tries the network at most once per process


class DataError(RuntimeError):
    """A data file is missing, corrupt or truncated; the message says how to fix it."""


@dataclass
class MNISTData:
    train_x: torch.Tensor  # (N_train, 784) grey levels in [0, 1], binarised per batch
    train_y: torch.Tensor  # (N_train,) digit labels
    test_x: torch.Tensor  # (N_test, 784) binarised once, {0, 1}
    test_y: torch.Tensor  # (N_test,)
    source: str  # "mnist" or "sample"
    reason: str  # why this source was used

    def to(self, device) -> "MNISTData":
        move = lambda t: t.to(device)  # noqa: E731
        return MNISTData(move(self.train_x), move(self.train_y), move(self.test_x),
                         move(self.test_y), self.source, self.reason)


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def read_idx(path: Path, expected_md5: str | None = None) -> np.ndarray:
    """Read a gzipped IDX file (magic 2049 labels, 2051 images) after checking its MD5."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} is missing")
    if expected_md5 is not None and md5(path) != expected_md5:
        raise DataError(f"{path} is corrupt or truncated (MD5 {md5(path)}, expected {expected_md5})")
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as err:
        raise DataError(f"{path} is not a complete gzip file ({err})") from err
    magic, n = int.from_bytes(raw[0:4], "big"), int.from_bytes(raw[4:8], "big")
    shape, offset = {2049: ((n,), 8), 2051: ((n, 28 * 28), 16)}.get(magic, (None, 0))
    if shape is None or len(raw) != offset + int(np.prod(shape)):
        raise DataError(f"{path} is not a valid IDX file (magic {magic}, {len(raw)} bytes)")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape).copy()


def binarise(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw pixel x_d ~ Bernoulli(grey level): a fresh {0, 1} image each call. Shape kept."""
    return torch.bernoulli(x, generator=generator)


def split_sample(images: torch.Tensor, labels: torch.Tensor):
    """The sample's fixed split: index % 5 == 4 is test (2,000), the rest train (8,000)."""
    test = torch.arange(len(images)) % 5 == 4
    return images[~test], labels[~test], images[test], labels[test]


def load_sample() -> tuple[torch.Tensor, ...]:
    """The bundled MNIST test digits, verified, as (train_x, train_y, test_x, test_y) in [0, 1]."""
    try:
        images = read_idx(PACKAGE_DATA / "t10k-images-idx3-ubyte.gz", SAMPLE_FILES["t10k-images-idx3-ubyte.gz"])
        labels = read_idx(PACKAGE_DATA / "t10k-labels-idx1-ubyte.gz", SAMPLE_FILES["t10k-labels-idx1-ubyte.gz"])
    except DataError as err:
        raise DataError(f"the bundled offline sample is damaged: {err}. Restore it from git "
                        f"(git checkout -- vaelib/data) or reinstall vaelib.") from err
    return split_sample(torch.from_numpy(images).float() / 255, torch.from_numpy(labels).long())


def cache_dir() -> Path:
    return Path(os.environ.get("VAELIB_DATA", Path.home() / ".cache" / "vaelib")) / "MNIST" / "raw"


def _download(filename: str, folder: Path, expected_md5: str) -> None:
    """Fetch one MNIST file from torchvision's mirrors; raises if every mirror fails."""
    from torchvision.datasets import MNIST
    from torchvision.datasets.utils import download_url

    errors = []
    for mirror in MNIST.mirrors:
        try:
            download_url(mirror + filename, str(folder), filename, expected_md5, max_redirect_hops=3)
            return
        except Exception as err:  # a dead mirror or no network: try the next one
            errors.append(f"{type(err).__name__}: {err}")
    raise DataError(f"could not download {filename} from {len(errors)} mirror(s): {errors[0]}")


def fetch(filename: str, expected_md5: str, folder: Path | None = None, download=None) -> np.ndarray:
    """A cached MNIST file, verified; a missing or corrupt one is (re)downloaded, never used as is."""
    folder = Path(folder or cache_dir())
    path = folder / filename
    if path.exists() and md5(path) != expected_md5:
        print(f"vaelib: {path} is corrupt or truncated; deleting it and downloading it again")
        path.unlink()
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        (download or _download)(filename, folder, expected_md5)
    return read_idx(path, expected_md5)


def load_full_mnist(folder: Path | None = None, download=None) -> tuple[torch.Tensor, ...]:
    """The full MNIST (60,000 train, 10,000 test) from the cache, downloading what is missing."""
    from torchvision.datasets import MNIST

    arrays = {name: fetch(name, md5sum, folder, download) for name, md5sum in MNIST.resources}
    get = lambda prefix: torch.from_numpy(next(a for n, a in arrays.items() if n.startswith(prefix)))  # noqa: E731
    return (get("train-images").float() / 255, get("train-labels").long(),
            get("t10k-images").float() / 255, get("t10k-labels").long())


def _cached_full_mnist(folder: Path | None = None) -> bool:
    from torchvision.datasets import MNIST

    folder = Path(folder or cache_dir())
    return all((folder / name).exists() for name, _ in MNIST.resources)


def load_mnist(source: str = "auto", folder: Path | None = None, verbose: bool = True) -> MNISTData:
    """Binarised MNIST from `source` ("auto" | "mnist" | "sample"); see the module docstring."""
    global _download_failure
    if source not in ("auto", "mnist", "sample"):
        raise ValueError(f"data source must be 'auto', 'mnist' or 'sample', got {source!r}")
    tensors, reason = None, "asked for"
    if source == "mnist":
        tensors = load_full_mnist(folder)
    elif source == "auto":
        if _cached_full_mnist(folder) or _download_failure is None:
            try:
                tensors, reason = load_full_mnist(folder), "full MNIST found or downloaded"
            except DataError as err:
                _download_failure = str(err)
        if tensors is None:
            reason = f"full MNIST is not cached in {folder or cache_dir()} and could not be downloaded ({_download_failure})"
    if tensors is None:
        tensors, source = load_sample(), "sample"
    train_x, train_y, test_x, test_y = tensors
    test_x = binarise(test_x, torch.Generator().manual_seed(TEST_BINARISATION_SEED))
    data = MNISTData(train_x, train_y, test_x, test_y, "mnist" if source != "sample" else "sample", reason)
    if verbose:
        print(f"vaelib: using {describe(data)} ({reason})")
    return data


def describe(data: MNISTData) -> str:
    name = "full MNIST" if data.source == "mnist" else "the offline sample of real MNIST test digits"
    return f"{name}: {len(data.train_x):,} train / {len(data.test_x):,} test images"
