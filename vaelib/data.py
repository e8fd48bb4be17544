"""Binarised MNIST as tensors: the full data set, read the way torchvision reads it, or the offline sample.

  "mnist"  the 60,000 + 10,000 digits of LeCun, Cortes & Burges in a torchvision MNIST/raw folder under
           data_dir() (--data-dir, else $VAELIB_DATA, else ~/.cache/vaelib), each file checked against its MD5;
           what is missing or corrupt is fetched with torchvision.datasets.MNIST(root, download=True).
  "sample" the real MNIST test set bundled in vaelib/data, MD5-checked, split 8,000 train / 2,000 test
           (index % 5 == 4 is test).
  "auto"   "mnist" when present or downloadable, else "sample"; says which and why.

Images stay (N, 784) floats in [0, 1]; training batches are binarised afresh at every draw, the test set
once with a fixed seed, so its loss is the same at every evaluation.
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
FULL_FILES = {  # MD5s of the extracted files that torchvision leaves in MNIST/raw (the .gz MD5s are torchvision's)
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
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
        tensors = (t.to(device) for t in (self.train_x, self.train_y, self.test_x, self.test_y))
        return MNISTData(*tensors, self.source, self.reason)


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def read_idx(path: Path, expected_md5: str | None = None) -> np.ndarray:
    """Read an IDX file (magic 2049 labels, 2051 images), gzipped or not, after checking its MD5."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} is missing")
    if expected_md5 is not None and md5(path) != expected_md5:
        raise DataError(f"{path} is corrupt or truncated (MD5 {md5(path)}, expected {expected_md5})")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # the gzip magic number
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{path} is not a complete gzip file ({err})") from err
    magic, n = int.from_bytes(raw[0:4], "big"), int.from_bytes(raw[4:8], "big")
    shape, offset = {2049: ((n,), 8), 2051: ((n, 28 * 28), 16)}.get(magic, (None, 0))
    if shape is None or len(raw) != offset + int(np.prod(shape)):
        raise DataError(f"{path} is not a valid IDX file (magic {magic}, {len(raw)} bytes)")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape).copy()


def binarise(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw pixel x_d ~ Bernoulli(grey level) as 1{u_d < grey level}, u_d ~ U[0, 1): a fresh {0, 1} image
    each call. On the CPU this is torch.bernoulli's draw bit for bit; written out, it is also the draw
    vaelib.train's batches make on any device (a GPU's torch.bernoulli draws differently). Shape kept."""
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (u < x).to(x.dtype)


def load_sample() -> tuple[torch.Tensor, ...]:
    """The bundled MNIST test digits, verified, as (train_x, train_y, test_x, test_y) in [0, 1]."""
    try:
        images = read_idx(PACKAGE_DATA / "t10k-images-idx3-ubyte.gz", SAMPLE_FILES["t10k-images-idx3-ubyte.gz"])
        labels = read_idx(PACKAGE_DATA / "t10k-labels-idx1-ubyte.gz", SAMPLE_FILES["t10k-labels-idx1-ubyte.gz"])
    except DataError as err:
        raise DataError(f"the bundled offline sample is damaged: {err}. Restore it from git "
                        f"(git checkout -- vaelib/data) or reinstall vaelib.") from err
    images, labels = torch.from_numpy(images).float() / 255, torch.from_numpy(labels).long()
    test = torch.arange(len(images)) % 5 == 4  # the fixed split: 2,000 test, 8,000 train
    return images[~test], labels[~test], images[test], labels[test]


def data_dir(folder: str | os.PathLike | None = None) -> Path:
    """The root folder of full MNIST: `folder` (--data-dir), else $VAELIB_DATA, else ~/.cache/vaelib."""
    return Path(folder or os.environ.get("VAELIB_DATA") or Path.home() / ".cache" / "vaelib").expanduser()


def raw_folder(root: Path) -> Path:
    """Where the IDX files under data_dir() are: root/MNIST/raw, as torchvision lays it out, or root itself (a
    `raw` folder), or root/raw (a `MNIST` folder), the first that holds any of them."""
    for candidate in (root / "MNIST" / "raw", root, root / "raw"):
        if any((candidate / name).exists() or (candidate / f"{name}.gz").exists() for name in FULL_FILES):
            return candidate
    return root / "MNIST" / "raw"


def _where(folder) -> str:
    """The data folder as a reader should see it: no path of this machine when it came from the defaults."""
    if folder:
        return str(folder)
    return "$VAELIB_DATA" if os.environ.get("VAELIB_DATA") else "~/.cache/vaelib"


def check_files(raw: Path, md5s: dict[str, str], then: str) -> list[str]:
    """The files of `md5s` that are missing from `raw`; a file whose MD5 differs is deleted first, saying
    so and what happens `then`."""
    missing = []
    for name, expected in md5s.items():
        path = raw / name
        if path.exists() and md5(path) != expected:
            print(f"vaelib: {path} is corrupt or truncated (MD5 {md5(path)}, expected {expected}); "
                  f"deleting it, {then}")
            path.unlink()
        if not path.exists():
            missing.append(name)
    return missing


def downloads_allowed() -> bool:
    """False when VAELIB_DOWNLOAD=0: `make check` sets it, so that offline runs do not wait for the network."""
    return os.environ.get("VAELIB_DOWNLOAD", "1") not in ("", "0", "false", "False")


def download(raw: Path) -> None:
    """Fetch MNIST into raw = root/MNIST/raw with torchvision, which downloads each missing .gz from its
    mirrors, checks the official MD5 and extracts it (a valid .gz already there is extracted, offline)."""
    if not downloads_allowed():
        raise DataError("downloads are off (VAELIB_DOWNLOAD=0)")
    try:
        from torchvision.datasets import MNIST
    except ImportError as err:  # e.g. a PyTorch without its torchvision: the sample still works
        raise DataError(f"torchvision, which downloads MNIST, cannot be imported ({err}); "
                        f"`pip install torchvision` to match your PyTorch") from err
    if raw.parts[-2:] != ("MNIST", "raw"):
        raise DataError(f"{raw} is not a torchvision MNIST/raw folder, so torchvision cannot download into it")
    try:
        MNIST(raw.parent.parent, train=False, download=True)
    except Exception as err:  # no network, a dead mirror, a full disk: the caller says what to do
        raise DataError(str(err).strip().splitlines()[-1]) from err


def load_full_mnist(folder=None, fetch=None, splits=("train", "t10k")) -> tuple[torch.Tensor, ...]:
    """Full MNIST (60,000 train, 10,000 test) from data_dir(folder), fetching what is missing or corrupt.

    Every file is checked against the MD5 of its extracted form (FULL_FILES) before use; fetch(raw)
    brings what is missing (default: `download`, torchvision's).
    Returns (train_x, train_y, test_x, test_y), images (N, 784) in [0, 1]; splits=("t10k",): (test_x, test_y)
    alone, without reading the training images into memory (every file is still checked).
    """
    if not splits or set(splits) - {"train", "t10k"}:
        raise ValueError(f"splits names MNIST's files, 'train' and 't10k', got {splits!r}")
    raw = raw_folder(data_dir(folder))
    missing = check_files(raw, FULL_FILES, "fetching it again")
    if missing:
        try:
            (fetch or download)(raw)
        except DataError as err:
            raise DataError(
                f"MNIST is not complete in {raw} (missing: {', '.join(missing)}) and could not be fetched "
                f"({err}). Without network, put the four files {', '.join(FULL_FILES)} (or their .gz "
                f"downloads) in {raw}, as torchvision.datasets.MNIST(root) leaves them in root/MNIST/raw, "
                f"or point --data-dir or $VAELIB_DATA at a folder that has them.") from err
        still = check_files(raw, FULL_FILES, "the fetched file is not MNIST")
        if still:
            raise DataError(f"after fetching, {', '.join(still)} is still missing or corrupt in {raw}")
    arrays = {name.rsplit("-", 2)[0]: read_idx(raw / name) for name in FULL_FILES
              if name.split("-")[0] in splits}  # "train-images": ...
    images = lambda split: torch.from_numpy(arrays[f"{split}-images"]).float() / 255  # noqa: E731
    labels = lambda split: torch.from_numpy(arrays[f"{split}-labels"]).long()  # noqa: E731
    return tuple(t for split in splits for t in (images(split), labels(split)))


def has_full_mnist(folder=None) -> bool:
    """True when data_dir(folder) holds every MNIST file, extracted or as its .gz (not yet checked)."""
    raw = raw_folder(data_dir(folder))
    return all((raw / name).exists() or (raw / f"{name}.gz").exists() for name in FULL_FILES)


def load_mnist(source: str = "auto", folder=None, verbose: bool = True) -> MNISTData:
    """Binarised MNIST from `source` ("auto" | "mnist" | "sample"), full MNIST read from
    data_dir(folder); see the module docstring."""
    global _download_failure
    if source not in ("auto", "mnist", "sample"):
        raise ValueError(f"data source must be 'auto', 'mnist' or 'sample', got {source!r}")
    tensors, reason = None, "asked for"
    if source == "mnist":
        tensors, reason = load_full_mnist(folder), f"from {_where(folder)}"
    elif source == "auto":
        if has_full_mnist(folder) or (_download_failure is None and downloads_allowed()):
            try:
                tensors, reason = load_full_mnist(folder), f"full MNIST found in {_where(folder)} or downloaded"
            except DataError as err:
                _download_failure = str(err.__cause__ or err)
        if tensors is None:
            why = f"could not be downloaded ({_download_failure})" if downloads_allowed() else \
                "downloads are off (VAELIB_DOWNLOAD=0)"
            reason = (f"full MNIST is not in {_where(folder)} and {why}; "
                      f"`python -m vaelib train --data mnist` says how to provide it")
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
