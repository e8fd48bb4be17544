"""Convolutional encoder and decoder: `--arch conv`, and the two halves mixed with the MLP's.

The encoder of TensorFlow's CVAE tutorial and the Keras VAE example, and a decoder that mirrors it: the encoder
is two 3 x 3 convolutions of stride 2 (28 x 28 -> 14 x 14 -> 7 x 7, with C1 and C2 channels,
ModelConfig.channels) whose flattened output feeds the same mu and logvar heads as the MLP's; the decoder is a
linear layer to C2 x 7 x 7 and two 3 x 3 transposed convolutions of stride 2 back to one 28 x 28 channel of
logits. Each layer but the last is followed by config.activation. The tutorials' decoders end otherwise: their
second transposed convolution keeps C1 channels, and a third, of stride 1, makes the logits. Here the stride-2
layer makes them, so neighbouring logits are summed from 1, 2 or 4 kernel taps in a checkerboard pattern; the
smaller decoder is the one notebook 12 measures. A (transposed) convolution's output side is

    conv:             out = floor((in + 2 p - k) / s) + 1
    transposed conv:  out = (in - 1) s - 2 p + k + output_padding

so with k = 3, s = 2, p = 1: 28 -> 14 -> 7, and back 7 -> 14 -> 28 with output_padding = 1 (`conv_out`,
`conv_transpose_out`). Everything else (heads, flows, priors, the losses, the quadrature, checkpoints) takes
these networks unchanged: they keep the protocol of vaelib.registry.Network, images as (B, D) rows in and
logits as (..., D) rows out.

Four networks are registered: "mlp" (vaelib.model), "conv" (both halves convolutional), "conv-mlp" (the
convolutional encoder with the MLP decoder) and "mlp-conv" (the MLP encoder with the convolutional decoder):
the encoder's name first. Notebook 12 compares them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import registry
from .model import ACTIVATIONS, mlp_decoder, mlp_encoder

KERNEL, STRIDE, PADDING = 3, 2, 1


def conv_out(side: int, kernel: int = KERNEL, stride: int = STRIDE, padding: int = PADDING) -> int:
    """The side of a convolution's output: floor((side + 2 padding - kernel) / stride) + 1."""
    return (side + 2 * padding - kernel) // stride + 1


def conv_transpose_out(side: int, kernel: int = KERNEL, stride: int = STRIDE, padding: int = PADDING,
                       output_padding: int = 1) -> int:
    """The side of a transposed convolution's output: (side - 1) stride - 2 padding + kernel + output_padding."""
    return (side - 1) * stride - 2 * padding + kernel + output_padding


def image_side(config) -> int:
    """The side of the square images, refused with what to do unless two stride-2 convolutions halve it twice."""
    side = math.isqrt(config.x_dim)
    if side * side != config.x_dim or side % 4:
        raise ValueError(f"a convolutional network needs square images whose side is a multiple of 4 (MNIST's "
                         f"28 x 28 = 784); x_dim={config.x_dim} is not. Use --arch mlp for other data.")
    return side


class ConvDecoder(nn.Module):
    """z (..., L) -> logits (..., D): linear to C2 x 7 x 7, then two transposed convolutions of stride 2."""

    def __init__(self, config):
        super().__init__()
        side, (c1, c2), act = image_side(config), config.channels, ACTIVATIONS[config.activation]
        small = conv_out(conv_out(side))
        self.net = nn.Sequential(
            nn.Linear(config.z_dim, c2 * small * small), act(), nn.Unflatten(1, (c2, small, small)),
            nn.ConvTranspose2d(c2, c1, KERNEL, STRIDE, PADDING, output_padding=1), act(),
            nn.ConvTranspose2d(c1, 1, KERNEL, STRIDE, PADDING, output_padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], -1)  # leading dimensions folded, then back


class ConvEncoder(nn.Sequential):
    """x (..., D) -> features (..., C2 * 7 * 7): two convolutions of stride 2, each followed by the activation.
    The leading dimensions are folded into one batch and unfolded after, as the MLP's Linear layers keep them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)


def conv_encoder(config) -> tuple[nn.Module, int]:
    """The encoder and the width of its features, C2 * 7 * 7."""
    side, (c1, c2), act = image_side(config), config.channels, ACTIVATIONS[config.activation]
    small = conv_out(conv_out(side))
    return ConvEncoder(nn.Unflatten(1, (1, side, side)), nn.Conv2d(1, c1, KERNEL, STRIDE, PADDING), act(),
                       nn.Conv2d(c1, c2, KERNEL, STRIDE, PADDING), act(), nn.Flatten()), c2 * small * small


registry.NETWORKS["conv"] = registry.Network(encoder=conv_encoder, decoder=ConvDecoder)
registry.NETWORKS["conv-mlp"] = registry.Network(encoder=conv_encoder, decoder=mlp_decoder)
registry.NETWORKS["mlp-conv"] = registry.Network(encoder=mlp_encoder, decoder=ConvDecoder)
