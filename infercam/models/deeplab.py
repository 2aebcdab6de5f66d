"""DeepLab v2 (Chen et al. 2017) as the paper trains it: a ResNet at output stride 8 and ASPP —
four parallel 3x3 convolutions with dilation 6, 12, 18 and 24, each straight to the classes, summed.
The paper profile uses torchvision's ResNet-101 layout (deeplab-pytorch initialises it from
COCO-pretrained weights).

On 2 CPU cores that network cannot be trained long enough to learn (a fine-tuned DeepLab v2 on
mini-VOC's ground truth reached 33 val mIoU, below the CAMs it should improve on), so the offline
profiles train :class:`FrozenBackboneSegmenter`: the classifier's backbone kept fixed, its features
computed once, and only a light decoder trained on them, for many epochs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from infercam.models.resnet import set_output_stride

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


def _conv_norm_relu(in_channels: int, out_channels: int, kernel_size: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class PyramidDecoder(nn.Module):
    """A light decoder in the manner of DeepLab v3+'s: the deep and middle features (stride 16)
    projected and mixed by a 3x3 convolution, upsampled to the shallow features (stride 8), joined
    with them and mixed again, then a 1x1 convolution to the classes. The shallow features give the
    boundaries that stride 16 alone blurs."""

    def __init__(self, channels: tuple[int, int, int], num_classes: int = 21, width: int = 128):
        super().__init__()
        shallow, middle, deep = channels
        self.deep, self.middle, self.shallow = (_conv_norm_relu(deep, width), _conv_norm_relu(middle, width // 2),
                                                _conv_norm_relu(shallow, width // 4))
        self.mix_deep = _conv_norm_relu(width + width // 2, width, 3)
        self.mix_shallow = _conv_norm_relu(width + width // 4, 3 * width // 4, 3)
        self.classifier = nn.Conv2d(3 * width // 4, num_classes, 1)

    def forward(self, shallow: torch.Tensor, middle: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        x = self.mix_deep(torch.cat([self.deep(deep), self.middle(middle)], dim=1))
        x = F.interpolate(x, size=shallow.shape[2:], mode="bilinear", align_corners=False)
        return self.classifier(self.mix_shallow(torch.cat([x, self.shallow(shallow)], dim=1)))


class FrozenBackboneSegmenter(nn.Module):
    """A fixed backbone (its weights and BatchNorm statistics never change) and a trained
    :class:`PyramidDecoder` on its ``pyramid(x)`` features, at output stride 16. ``forward(x)`` ->
    logits at stride 8, as DeepLab v2's; ``predict(x)`` upsamples them to the input's size."""

    def __init__(self, backbone: nn.Module, num_classes: int = 21):
        super().__init__()
        if not hasattr(backbone, "pyramid"):
            raise ValueError(f"{type(backbone).__name__} has no pyramid(x) of features at three depths: a frozen "
                             "backbone needs one (EfficientNet-Lite0 and the ResNets have it)")
        self.backbone = backbone
        if hasattr(backbone, "set_output_stride"):  # a backbone with its own layout (EfficientNet)
            backbone.set_output_stride(16)
        else:
            set_output_stride(backbone, 16)
        backbone.requires_grad_(False)
        self.decoder = PyramidDecoder(backbone.pyramid_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(*self.backbone.pyramid(x))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self(x), size=x.shape[2:], mode="bilinear", align_corners=False)

    def parameter_groups(self) -> tuple[list[nn.Parameter], ...]:
        """The decoder's weights and its biases and norms (the backbone has nothing to learn), in the
        places of DeepLab v2's backbone groups: one learning rate, as for a network trained from scratch."""
        parameters = list(self.decoder.parameters())
        return [p for p in parameters if p.ndim > 1], [p for p in parameters if p.ndim <= 1], [], []
