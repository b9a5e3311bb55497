"""Domain discriminators: FADA's fine-grained (class-aware) D and AdaptSegNet/ADVENT's binary D.

Both are fully convolutional and return logits (no activation); the losses live in
``udaseg.losses``. Both check the channel count of their input, because feeding the output-space
D with features (or the reverse) is an easy configuration slip that otherwise surfaces as a
cryptic conv error.
"""
from __future__ import annotations

import torch
from torch import nn


def _check_input(x: torch.Tensor, in_channels: int, kind: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{kind} discriminator expects a 4-D (N, C, H, W) input, got shape {tuple(x.shape)}")
    if x.shape[1] != in_channels:
        raise ValueError(f"{kind} discriminator expects {in_channels} input channels, got {x.shape[1]}")


class FineGrainedDiscriminator(nn.Module):
    """Class-aware domain discriminator (paper §3.2; FADA ``PixelDiscriminator``).

    conv3×3(in→256) → LeakyReLU(0.2) → conv3×3(256→128) → LeakyReLU(0.2) → conv3×3(128→2K),
    stride 1, padding 1, with bias. Output channel k (< K) = "source, class k", channel K + k =
    "target, class k"; the loss takes one log-softmax over all 2K channels.
    For in_channels=2048 (layer4 features), K=19: 5,057,702 parameters.

    Shapes: (N, in_channels, H, W) → (N, 2K, H, W).

    Example::

        D = FineGrainedDiscriminator(2048, num_classes=19)
        logits = D(features)  # (N, 38, H, W)
    """

    kind = "fine_grained"

    def __init__(self, in_channels: int, num_classes: int, hidden: tuple[int, int] = (256, 128)):
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        h1, h2 = hidden
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, h1, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(h1, h2, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(h2, 2 * num_classes, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels, self.kind)
        return self.net(x)


class BinaryDiscriminator(nn.Module):
    """Source-vs-target patch discriminator (AdaptSegNet / ADVENT ``FCDiscriminator``).

    Four 4×4 stride-2 pad-1 convs in → ndf → 2ndf → 4ndf → 8ndf, each followed by
    LeakyReLU(0.2), then a 4×4 stride-2 conv 8ndf → 1 (one logit per patch; BCE-with-logits,
    source = 0, target = 1 in the references). ndf = 64: 2,781,121 parameters for a 19-channel
    input (softmax output space, or AdvEnt's self-information map).

    Shapes: (N, in_channels, H, W) → (N, 1, ~H/32, ~W/32).

    Example::

        D = BinaryDiscriminator(in_channels=19)
        logit_map = D(torch.softmax(logits, 1))
    """

    kind = "binary"

    def __init__(self, in_channels: int, ndf: int = 64):
        super().__init__()
        self.in_channels = in_channels
        chans = (in_channels, ndf, ndf * 2, ndf * 4, ndf * 8)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(nn.Conv2d(chans[-1], 1, 4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels, self.kind)
        return self.net(x)
