"""DeepLab v2 (Chen et al. 2017) as the paper trains it: a ResNet at output stride 8 and ASPP —
four parallel 3x3 convolutions with dilation 6, 12, 18 and 24, each straight to the classes, summed.
The paper profile uses torchvision's ResNet-101 layout (deeplab-pytorch initialises it from
COCO-pretrained weights); the offline profiles the same head on the narrow ResNet-18.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ASPP_RATES = (6, 12, 18, 24)


class ASPP(nn.Module):
    """DeepLab v2's atrous spatial pyramid pooling: the sum of one dilated 3x3 conv per rate
    (weights N(0, 0.01), biases 0, as deeplab-pytorch)."""

    def __init__(self, in_channels: int, num_classes: int, rates=ASPP_RATES):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(in_channels, num_classes, 3, padding=rate, dilation=rate)
                                      for rate in rates)
        for conv in self.branches:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)


class DeepLabV2(nn.Module):
    """``forward(x)`` -> logits (N, classes, ceil(H/8), ceil(W/8)); ``predict(x)`` -> logits
    upsampled (bilinear) to the input's size."""

    def __init__(self, backbone: nn.Module, num_classes: int = 21, rates=ASPP_RATES):
        super().__init__()
        if getattr(backbone, "output_stride", None) != 8:
            raise ValueError("DeepLab v2 runs its backbone at output stride 8: build it with output_stride=8")
        self.backbone = backbone
        self.aspp = ASPP(backbone.out_channels, num_classes, rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.aspp(self.backbone(x))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self(x), size=x.shape[2:], mode="bilinear", align_corners=False)

    def parameter_groups(self) -> tuple[list[nn.Parameter], ...]:
        """deeplab-pytorch's groups (lr x1, x2 for biases in the backbone; head x10, x20): backbone
        weights, backbone biases and norms, ASPP weights, ASPP biases."""
        body = [p for p in self.backbone.parameters() if p.requires_grad]
        return ([p for p in body if p.ndim > 1], [p for p in body if p.ndim <= 1],
                [b.weight for b in self.aspp.branches], [b.bias for b in self.aspp.branches])
