"""A small residual network for classifying small images (8x8 to 32x32 pixels).

The CIFAR-style layout of He et al. (2016): a 3x3 stride-1 stem with no max-pooling, then one
stage of basic residual blocks per width, each stage after the first halving the resolution,
then global average pooling and a linear classifier. ImageNet's 7x7 stride-2 stem and max-pool
would shrink a 28x28 image to 7x7 before the first block; this stem keeps the resolution.
"""

from torch import nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a shortcut (1x1 projection when shapes change)."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """Flattened image rows -> class logits.

    Parameters
    ----------
    image_shape : tuple of int
        ``(channels, height, width)`` of one image; rows are reshaped to it.
    widths : sequence of int
        Channels of each stage. Stage ``i > 0`` halves the resolution with a stride-2 block
        (never below 1 pixel).
    n_classes : int
        Number of output logits.

    Notes
    -----
    One basic block per stage (ResNet-18 has two in each of four stages): enough for 8x8 to
    32x32 images.
    """

    def __init__(self, image_shape, widths, n_classes):
        super().__init__()
        in_channels, height, width = image_shape
        self.image_shape = tuple(image_shape)
        widths = list(widths)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        blocks = []
        channels, side = widths[0], min(height, width)
        for i, stage_width in enumerate(widths):
            stride = 2 if i > 0 and side >= 2 else 1
            side = (side + stride - 1) // stride
            blocks.append(BasicBlock(channels, stage_width, stride))
            channels = stage_width
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(channels, n_classes)

    def forward(self, x):
        x = x.reshape(-1, *self.image_shape)
        features = self.blocks(self.stem(x))
        return self.classifier(features.mean(dim=(2, 3)))
