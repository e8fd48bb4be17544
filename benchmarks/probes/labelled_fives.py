"""Probe (issue 22): do a label draw's 100 labelled images alone make it read test fives as threes?

Classifiers with no weights and no seed but the label draw's: the nearest class mean and the nearest neighbour
among the draw's 100 labelled training images (grey pixels, Euclidean distance), scored on all 892 test fives,
binarised with vaelib's fixed test seed (as the models are scored) and grey (like with like: the labelled images
are grey, and only binarised per batch in training). Prints, per label draw and test version, the share of the
test fives each reads as threes, and the nearest neighbour's accuracy on all 10,000 test images.

    VAELIB_DATA=DIR python benchmarks/probes/labelled_fives.py       # DIR holds full MNIST (MNIST/raw)
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from vaelib import m2  # noqa: E402
from vaelib.data import load_full_mnist, load_mnist  # noqa: E402

data = load_mnist("mnist")
grey = load_full_mnist(splits=("t10k",))[0]  # the same 10,000 test images in the same order, not binarised
fives = data.test_y == 5
print("| label draw (seed) | test images | nearest class mean: fives read as threes "
      "| nearest neighbour: fives read as threes | nearest neighbour: test accuracy |")
print("| --- | --- | ---: | ---: | ---: |")
for draw in range(5):
    where = m2.split(data.train_y, 100, 1 / 6, seed=draw).labelled  # the same images as `train --seed draw`
    x, y = data.train_x[where], data.train_y[where]
    means = torch.stack([x[y == c].mean(0) for c in range(10)])
    for name, test_x in (("binarised", data.test_x), ("grey", grey)):
        by_mean = torch.cdist(test_x[fives], means).argmin(-1)
        by_neighbour = y[torch.cdist(test_x, x).argmin(-1)]
        print(f"| {draw} | {name} | {(by_mean == 3).float().mean():.1%} | "
              f"{(by_neighbour[fives] == 3).float().mean():.1%} | {(by_neighbour == data.test_y).float().mean():.4f} |")
