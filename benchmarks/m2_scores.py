"""What benchmarks/m2_cs236_table.py and benchmarks/probes/run_fives.py score a trained M2 on: its classifier q(y|x)
on all 10,000 MNIST test images, binarised (vaelib's fixed test binarisation) and grey (the same images in the same
order), and the share of the 892 binarised test fives it reads as threes (where CS236's recipe fails on label
draws 3 and 4 at alpha 100). Both scripts need full MNIST: VAELIB_DATA=DIR, DIR holding MNIST/raw.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vaelib import m2  # noqa: E402
from vaelib.data import load_full_mnist, load_mnist  # noqa: E402


class TestImages(NamedTuple):
    binarised: torch.Tensor
    grey: torch.Tensor
    labels: torch.Tensor


class Scores(NamedTuple):
    binarised: float  # accuracy on all 10,000 binarised test images
    grey: float  # accuracy on the same images, grey
    fives_as_threes: float  # share of the binarised test fives read as threes


def test_images() -> TestImages:
    """All 10,000 test images of full MNIST; stops with what to do where full MNIST is not found."""
    data = load_mnist("mnist")
    grey = load_full_mnist(splits=("t10k",))[0]
    if grey.shape != data.test_x.shape:
        raise SystemExit(f"error: the grey test images ({tuple(grey.shape)}) are not the binarised ones' shape "
                         f"({tuple(data.test_x.shape)}): VAELIB_DATA should hold one copy of full MNIST")
    return TestImages(data.test_x, grey, data.test_y)


@torch.no_grad()
def scores(model: m2.M2, images: TestImages) -> Scores:
    """The model's accuracy on the binarised and the grey test images, and its share of fives read as threes."""
    fives = images.binarised[images.labels == 5]
    threes = (model.classify(fives).argmax(-1) == 3).float().mean().item()
    return Scores(m2.accuracy(model, images.binarised, images.labels), m2.accuracy(model, images.grey, images.labels),
                  threes)
