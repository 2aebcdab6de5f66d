"""Backbones that train from scratch offline, and the one CAM classifier wrapper on top of them.

* ``resnet18``: ResNet-18's layout with torchvision's module names (``conv1, bn1, layer1..layer4``,
  ``downsample.0/1``), so a width-64 net loads torchvision's ``resnet18`` state dict, and with a
  ``width`` argument: width 32 (a quarter of the multiply-adds) trains on 2 CPU cores in minutes.
* ``resnet50``: torchvision's ResNet-50 (``weights=None``), IRN's backbone.

Output stride is a property of the network, not of its weights: :func:`set_output_stride` turns the
stride-2 convolutions of ``layer3``/``layer4`` into stride 1 and dilates every later 3x3
convolution (the a-trous trick), in place. The classifier can therefore train at output stride 16
and infer CAMs at 8 with the same weights, as DeepLab v3 trains at 16 and evaluates at 8.

:class:`CAMClassifier` is psa's head on any of them: backbone -> global average pooling -> 1x1
convolution with no bias, so that :meth:`CAMClassifier.cam` is exactly the classifier's weights
applied at every location.
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

# Stride and dilation of layer1..layer4 for each supported output stride.
_LAYER_GEOMETRY = {
    32: ((1, 1), (2, 1), (2, 1), (2, 1)),
    16: ((1, 1), (2, 1), (2, 1), (1, 2)),
    8: ((1, 1), (2, 1), (1, 2), (1, 4)),
}


class BasicBlock(nn.Module):
    """torchvision's BasicBlock (two 3x3 convolutions) without its refusal to dilate."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class _ResNetPyramid:
    """The features a segmentation decoder reads at three depths: layer2 (stride 8), layer3 and
    layer4 (stride 16 at output stride 16), with ``pyramid_channels`` channels."""

    def pyramid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        shallow = self.layer2(self.layer1(x))
        middle = self.layer3(shallow)
        return shallow, middle, self.layer4(middle)


class ResNet18(_ResNetPyramid, nn.Module):
    """ResNet-18 features (N, 8 * width, H / s, W / s) for output stride s in {8, 16, 32}."""

    def __init__(self, width: int = 64, output_stride: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        channels = width
        for index in range(4):
            out_channels = width * 2 ** index
            stride = 1 if index == 0 else 2
            setattr(self, f"layer{index + 1}", nn.Sequential(BasicBlock(channels, out_channels, stride),
                                                             BasicBlock(out_channels, out_channels)))
            channels = out_channels
        self.out_channels = channels
        self.pyramid_channels = (2 * width, 4 * width, 8 * width)
        set_output_stride(self, output_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ResNet50(_ResNetPyramid, nn.Module):
    """torchvision's ResNet-50 (random initialisation) as a feature extractor, 2048 channels."""

    builder = staticmethod(torchvision.models.resnet50)

    def __init__(self, output_stride: int = 8):
        super().__init__()
        net = self.builder(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.out_channels = 2048
        self.pyramid_channels = (512, 1024, 2048)
        set_output_stride(self, output_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def set_output_stride(backbone: nn.Module, output_stride: int) -> None:
    """Re-stride ``backbone.layer1..layer4`` (torchvision layout) in place for output stride 8, 16
    or 32. In each layer the first block's strided convolutions (the 3x3 that carries the stride
    and the 1x1 shortcut) get the layer's stride, and the 3x3 convolutions after them its dilation;
    the first block's 3x3 keeps the previous layer's dilation, as DeepLab and IRN do."""
    if output_stride not in _LAYER_GEOMETRY:
        raise ValueError(f"output_stride must be one of {sorted(_LAYER_GEOMETRY)}, got {output_stride}")
    previous_dilation = 1
    for index, (stride, dilation) in enumerate(_LAYER_GEOMETRY[output_stride]):
        for block_index, block in enumerate(getattr(backbone, f"layer{index + 1}")):
            strided = _strided_conv(block)
            for conv in (m for m in block.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)):
                first = block_index == 0 and conv is strided
                d = previous_dilation if first else dilation
                conv.dilation, conv.padding = (d, d), (d, d)
                conv.stride = (stride, stride) if first else (1, 1)
            if block.downsample is not None and block_index == 0:
                block.downsample[0].stride = (stride, stride)
        previous_dilation = dilation
    backbone.output_stride = output_stride


def _strided_conv(block: nn.Module) -> nn.Conv2d:
    """The 3x3 convolution that carries a block's stride: conv1 in a BasicBlock, conv2 in
    torchvision's Bottleneck (ResNet v1.5)."""
    return block.conv2 if hasattr(block, "conv3") else block.conv1


class ResNet101(ResNet50):
    """torchvision's ResNet-101 (random initialisation): DeepLab v2's backbone, 2048 channels."""

    builder = staticmethod(torchvision.models.resnet101)


BACKBONES = {"resnet18": ResNet18, "resnet50": ResNet50, "resnet101": ResNet101}


class CAMClassifier(nn.Module):
    """backbone -> global average pooling -> 1x1 conv (no bias) = multi-label logits (N, classes)."""

    def __init__(self, backbone: nn.Module, num_classes: int = 20):
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Conv2d(backbone.out_channels, num_classes, 1, bias=False)

    @property
    def output_stride(self) -> int:
        return self.backbone.output_stride

    def set_output_stride(self, output_stride: int) -> "CAMClassifier":
        if hasattr(self.backbone, "set_output_stride"):  # a backbone with its own layout (EfficientNet)
            self.backbone.set_output_stride(output_stride)
        else:
            set_output_stride(self.backbone, output_stride)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.backbone(x).mean(dim=(2, 3), keepdim=True)
        return self.classifier(pooled).flatten(1)

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """Raw class activation maps (N, classes, H / s, W / s): the head applied at every location
        (its spatial mean is the logit, as pooling and a 1x1 conv commute)."""
        return self.classifier(self.backbone(x))

    def parameter_groups(self) -> tuple[list[nn.Parameter], ...]:
        """The four groups of :meth:`ResNet38Classifier.parameter_groups` (psa trains them at lr x1,
        x2, x10, x20 and decays only the weights): the backbone's trainable conv weights; its
        trainable BatchNorm parameters; head weights; head biases (none). Frozen parameters
        (:meth:`EfficientNetLite0.freeze_stages`) are in no group."""
        body = [p for p in self.backbone.parameters() if p.requires_grad]
        return [p for p in body if p.ndim > 1], [p for p in body if p.ndim <= 1], [self.classifier.weight], []
