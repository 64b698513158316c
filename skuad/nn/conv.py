"""Convolutional encoder and decoder for small images (``image_shape=(C, H, W)``).

LeNet-style blocks as in Ruff et al. (2018): 5x5 convolution, BatchNorm without a learnable
shift, leaky ReLU, 2x2 max-pooling; a linear layer maps the last feature map to the code.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F


def _pooled_sizes(height, width, n_blocks):
    """Spatial size after each block; pooling stops once a side would drop below 1."""
    sizes = [(height, width)]
    for _ in range(n_blocks):
        h, w = sizes[-1]
        sizes.append((max(h // 2, 1), max(w // 2, 1)))
    return sizes


class ConvEncoder(nn.Module):
    """Image -> code vector.

    Parameters
    ----------
    image_shape : tuple of int
        ``(channels, height, width)`` of one image.
    channels : sequence of int
        Number of filters of each convolutional block.
    n_outputs : int
        Size of the code.
    bias : bool
        Bias terms in convolutions and the final linear layer. BatchNorm never has a
        learnable shift here (``affine=False``), so ``bias=False`` gives a bias-free network.
    """

    def __init__(self, image_shape, channels, n_outputs, *, bias=True):
        super().__init__()
        in_channels, height, width = image_shape
        self.image_shape = tuple(image_shape)
        self.blocks = nn.ModuleList()
        self.sizes = _pooled_sizes(height, width, len(channels))
        for out_channels in channels:
            self.blocks.append(
                nn.ModuleDict(
                    {
                        "conv": nn.Conv2d(in_channels, out_channels, 5, padding=2, bias=bias),
                        "norm": nn.BatchNorm2d(out_channels, eps=1e-4, affine=False),
                    }
                )
            )
            in_channels = out_channels
        h, w = self.sizes[-1]
        self.flat_size = in_channels * h * w
        self.linear = nn.Linear(self.flat_size, n_outputs, bias=bias)

    def forward(self, x):
        x = x.reshape(-1, *self.image_shape)
        for block, (h, w) in zip(self.blocks, self.sizes[1:], strict=True):
            x = F.leaky_relu(block["norm"](block["conv"](x)))
            x = F.adaptive_max_pool2d(x, (h, w))
        return self.linear(x.flatten(1))


class ConvDecoder(nn.Module):
    """Code vector -> flattened image, mirroring :class:`ConvEncoder`."""

    def __init__(self, image_shape, channels, n_inputs, *, bias=True):
        super().__init__()
        out_channels, height, width = image_shape
        self.image_shape = tuple(image_shape)
        self.sizes = _pooled_sizes(height, width, len(channels))[::-1]
        channels = list(channels)[::-1]
        self.start_shape = (channels[0], *self.sizes[0])
        self.linear = nn.Linear(n_inputs, math.prod(self.start_shape), bias=bias)
        self.blocks = nn.ModuleList()
        for i, c_in in enumerate(channels):
            c_out = channels[i + 1] if i + 1 < len(channels) else channels[-1]
            self.blocks.append(
                nn.ModuleDict(
                    {
                        "conv": nn.Conv2d(c_in, c_out, 5, padding=2, bias=bias),
                        "norm": nn.BatchNorm2d(c_out, eps=1e-4, affine=False),
                    }
                )
            )
        self.output = nn.Conv2d(channels[-1], out_channels, 5, padding=2, bias=bias)

    def forward(self, z):
        x = F.leaky_relu(self.linear(z)).reshape(-1, *self.start_shape)
        for block, size in zip(self.blocks, self.sizes[1:], strict=True):
            x = F.interpolate(x, size=size, mode="nearest")
            x = F.leaky_relu(block["norm"](block["conv"](x)))
        return torch.flatten(self.output(x), 1)
