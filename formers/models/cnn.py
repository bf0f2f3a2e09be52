"""A small ResNet-style CNN encoder whose feature grid doubles as visual tokens.

He et al. 2016, "Deep Residual Learning for Image Recognition" (basic blocks, ResNet v1 order).

pixels (B, C, H, W) -> stem (3x3 conv, norm, ReLU) -> stages of basic blocks (the first block of every
stage after the first halves the grid with stride 2 and widens the channels)
    -> features (B, D, H', W') -> last_hidden_state (B, H'*W', D), row-major like ViT's patches
    -> pooled = mean over the grid (B, D) -> [dropout -> linear] -> logits

Normalisation is GroupNorm by default (Wu & He 2018) rather than BatchNorm: an image's features then
never depend on the other images in its batch, so train and eval modes compute the same function, a
micro-batch of gradient accumulation or one rank's slice under DDP gives exactly the gradient of the
whole batch (the Trainer's accumulation and the distributed tests rely on that), and there are no
running statistics to drift or to synchronise. `norm="batchnorm"` (Ioffe & Szegedy 2015) is there for
comparison; it trains a little faster per step at large batches and couples the images of a batch.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn

from formers.config import Config, check
from formers.models.output import VisionOutput
from formers.nn.patches import check_pixels

ConvNorm = Literal["groupnorm", "batchnorm"]


@dataclasses.dataclass(kw_only=True)
class CNNConfig(Config):
    family: Literal["cnn"] = "cnn"
    n_channels: int = 3
    widths: list[int] = dataclasses.field(default_factory=lambda: [32, 64, 128])  # channels per stage; last = D
    depths: list[int] = dataclasses.field(default_factory=lambda: [1, 1, 1])  # basic blocks per stage
    stem_stride: int = 1  # 1 for small images (28x28 stays 28x28 into the first stage); 2 halves large ones
    norm: ConvNorm = "groupnorm"  # see the module docstring for why GroupNorm is the default
    groups: int = 8  # GroupNorm's groups; every width must be a multiple
    n_classes: int = 0  # a linear classifier on `pooled`; 0 = no head (logits None)
    dropout: float = 0.0  # on the pooled features before the classifier

    def __post_init__(self) -> None:
        super().__post_init__()
        check(len(self.widths) > 0 and len(self.widths) == len(self.depths), "CNNConfig.depths", self.depths,
              f"one entry per stage, as many as widths={self.widths}")
        check(all(w > 0 for w in self.widths), "CNNConfig.widths", self.widths, "positive ints")
        check(all(d > 0 for d in self.depths), "CNNConfig.depths", self.depths, "positive ints")
        for name in ("n_channels", "stem_stride", "groups"):
            check(getattr(self, name) > 0, f"CNNConfig.{name}", getattr(self, name), "a positive int")
        if self.norm == "groupnorm":
            check(all(w % self.groups == 0 for w in self.widths), "CNNConfig.groups", self.groups,
                  f"a divisor of every width {self.widths}")
        check(self.n_classes >= 0, "CNNConfig.n_classes", self.n_classes, "0 (no head) or a positive int")
        check(0.0 <= self.dropout < 1.0, "CNNConfig.dropout", self.dropout, "a value in [0, 1)")

    @property
    def d_model(self) -> int:
        """Width of the visual tokens: the last stage's channels."""
        return self.widths[-1]


def make_conv_norm(config: CNNConfig, channels: int) -> nn.Module:
    if config.norm == "groupnorm":
        return nn.GroupNorm(config.groups, channels)
    return nn.BatchNorm2d(channels)


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)  # the norm adds the bias


class BasicBlock(nn.Module):
    """relu(x' + norm(conv(relu(norm(conv(x)))))), x' = x or a strided 1x1 projection when the shape changes."""

    def __init__(self, config: CNNConfig, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.norm1 = conv3x3(c_in, c_out, stride), make_conv_norm(config, c_out)
        self.conv2, self.norm2 = conv3x3(c_out, c_out), make_conv_norm(config, c_out)
        self.act = nn.ReLU()
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          make_conv_norm(config, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.conv1(x)))
        return self.act(self.norm2(self.conv2(out)) + self.shortcut(x))


def init_cnn(model: nn.Module) -> None:
    """He init for convolutions (He et al. 2015); each residual branch's last norm starts at zero, so every
    block begins as the identity (Goyal et al. 2017), which speeds up early training."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    for m in model.modules():
        if isinstance(m, BasicBlock):
            nn.init.zeros_(m.norm2.weight)


class CNN(nn.Module):
    def __init__(self, config: CNNConfig) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        self.stem = nn.Sequential(
            nn.Conv2d(config.n_channels, w[0], 3, stride=config.stem_stride, padding=1, bias=False),
            make_conv_norm(config, w[0]), nn.ReLU(),
        )
        stages = []
        for i, (width, depth) in enumerate(zip(w, config.depths, strict=True)):
            c_in, stride = (w[i - 1], 2) if i else (w[0], 1)
            blocks = [BasicBlock(config, c_in, width, stride)]
            blocks += [BasicBlock(config, width, width, 1) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.d_model, config.n_classes) if config.n_classes else None
        init_cnn(self)

    def forward(self, pixel_values: torch.Tensor) -> VisionOutput:
        """pixel_values (B, C, H, W) float, any H and W -> tokens on a grid of about H/s x W/s, s the total stride."""
        check_pixels(pixel_values, self.config.n_channels)
        x = self.stem(pixel_values.to(self.stem[0].weight.dtype))  # bf16-pure models read fp32 batches
        features = self.stages(x)  # (B, D, H', W')
        tokens = features.flatten(2).transpose(1, 2)  # (B, H'*W', D)
        pooled = tokens.mean(dim=1)  # (B, D): global average pooling (Lin et al. 2014)
        logits = self.head(self.dropout(pooled)) if self.head is not None else None
        return VisionOutput(last_hidden_state=tokens, pooled=pooled, logits=logits)
