"""AffinityNet (psa): features from three stages of the backbone, each reduced by a 1x1 convolution
(no bias) and ELU — 64, 128 and 256 channels — concatenated (448) and mixed by a 1x1 ``f9`` (448,
ELU). The affinity of two feature-grid cells is exp(-mean_c |f_i - f_j|), in (0, 1].

* :class:`ResNet38Affinity`: psa's network on ResNet-38, with psa's state-dict names (``f8_3``,
  ``f8_4``, ``f8_5``, ``f9`` beside the backbone's), so ``res38_aff.pth`` loads strictly;
  stages ``conv4`` (512), ``conv5`` (1024), ``conv6`` (4096).
* :class:`ResNetAffinity`: the same head on a torchvision-layout backbone (the offline profiles'
  ResNet-18); stages layer2, layer3, layer4.
* :class:`EfficientNetAffinity`: the same head on ImageNet's EfficientNet-Lite0; stages 2 (40
  channels, the first at stride 8), 4 (112) and the 1280-channel head.

The first stage read is at stride 8 and sets the grid of the affinities. The deeper ones run at the
backbone's output stride: 8 as psa's, or 16 with their features upsampled onto the stride-8 grid (the
offline profiles': the dilated deep stages at stride 8 are most of a CPU's training time).
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from infercam.models.resnet38d import CLASSIFIER_FROZEN, ResNet38d
from infercam.affinity import shifted_pairs
from infercam.models.recompute import recomputed
from infercam.models.resnet import set_output_stride

HEAD_CHANNELS = (64, 128, 256)


def pair_affinities(features: torch.Tensor, radius: int, recompute: bool = False) -> torch.Tensor:
    """exp(-mean_c |f_i - f_j|) of features (N, C, h, w) for every pair of
    :func:`infercam.affinity.pair_indices` (same order): (N, P). Computed one offset at a time on
    shifted views of the grid, not by gathering pairs (a (N, C, P) gather is gigabytes on a CPU).
    ``recompute``: each offset's differences (N, C, h, w), which the backward pass of ``abs`` needs,
    are computed again there instead of kept (the same gradients; 0.8 GB less for 16 crops of 256)."""
    def affinity(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(first - second).abs().mean(dim=1)).flatten(1)

    run = recomputed if recompute else (lambda function, *inputs: function(*inputs))
    return torch.cat([run(affinity, first, second) for first, second in shifted_pairs(features.float(), radius)], dim=1)


def _head(module: nn.Module, stage_channels: tuple[int, int, int]) -> None:
    """Adds psa's head (initialised as psa: Kaiming-normal reductions, Xavier-uniform f9 with gain 4)."""
    for name, cin, cout in zip(("f8_3", "f8_4", "f8_5"), stage_channels, HEAD_CHANNELS):
        conv = nn.Conv2d(cin, cout, 1, bias=False)
        nn.init.kaiming_normal_(conv.weight)
        setattr(module, name, conv)
    module.f9 = nn.Conv2d(sum(HEAD_CHANNELS), sum(HEAD_CHANNELS), 1, bias=False)
    nn.init.xavier_uniform_(module.f9.weight, gain=4)


class _AffinityOutput:
    """``features(x)`` -> (N, 448, h, w); ``forward(x, radius)`` -> affinities (N, P) of the pairs
    within ``radius`` (in the order of :func:`infercam.affinity.pair_indices`)."""

    head_names = ("f8_3", "f8_4", "f8_5", "f9")

    def _mix(self, stages: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        reduced = [F.elu(getattr(self, name)(stage)) for name, stage in zip(self.head_names[:3], stages)]
        size = reduced[0].shape[2:]
        reduced = [r if r.shape[2:] == size else F.interpolate(r, size=size, mode="bilinear", align_corners=False)
                   for r in reduced]
        return F.elu(self.f9(torch.cat(reduced, dim=1)))

    #: Training keeps fewer tensors for the backward pass and computes them again there (the same
    #: gradients, about a third more time): set where memory is short (a CPU's training).
    recompute_in_backward = False

    def forward(self, x: torch.Tensor, radius: int = 5) -> torch.Tensor:
        return pair_affinities(self.features(x), radius, self.recompute_in_backward)

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for name in self.head_names for p in getattr(self, name).parameters()]

    def parameter_groups(self) -> tuple[list[nn.Parameter], ...]:
        """psa's four groups (lr x1, x2, x10, x20): trainable backbone weights, trainable backbone
        biases and norms, head weights, head biases (none)."""
        head = {id(p) for p in self.head_parameters()}
        body = [p for p in self.parameters() if p.requires_grad and id(p) not in head]
        return [p for p in body if p.ndim > 1], [p for p in body if p.ndim <= 1], self.head_parameters(), []


class ResNet38Affinity(_AffinityOutput, ResNet38d):
    """psa's ``resnet38_aff.Net`` (psa freezes conv1a and b2..b2_2 and keeps BatchNorm fixed)."""

    def __init__(self, frozen: Iterable[str] = CLASSIFIER_FROZEN):
        super().__init__(frozen=frozen)
        _head(self, (512, 1024, 4096))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        stages = self.forward_features(x)
        return self._mix((stages["conv4"], stages["conv5"], stages["conv6"]))


class ResNetAffinity(_AffinityOutput, nn.Module):
    """The head on a torchvision-layout backbone (``conv1 bn1 maxpool layer1..layer4``) at
    ``output_stride`` 8 (layer2..layer4 share the stride-8 grid) or 16 (layer3 and layer4 upsampled)."""

    def __init__(self, backbone: nn.Module, output_stride: int = 8):
        nn.Module.__init__(self)
        set_output_stride(backbone, output_stride)
        self.backbone = backbone
        channels = tuple(_last_conv(getattr(backbone, f"layer{i}")).out_channels for i in (2, 3, 4))
        _head(self, channels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x = b.layer1(b.maxpool(F.relu(b.bn1(b.conv1(x)))))
        layer2 = b.layer2(x)
        layer3 = b.layer3(layer2)
        return self._mix((layer2, layer3, b.layer4(layer3)))


def _last_conv(layer: nn.Module) -> nn.Conv2d:
    return [m for m in layer.modules() if isinstance(m, nn.Conv2d)][-1]


class EfficientNetAffinity(_AffinityOutput, nn.Module):
    """The head on :class:`infercam.models.efficientnet.EfficientNetLite0` at ``output_stride`` 8 or 16."""

    def __init__(self, backbone: nn.Module, output_stride: int = 8):
        nn.Module.__init__(self)
        backbone.set_output_stride(output_stride)
        self.backbone = backbone
        channels = [backbone.net.blocks[i][-1].conv_pwl.out_channels for i in backbone.affinity_stages]
        _head(self, (*channels, backbone.out_channels))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        stages = self.backbone.stages(x, recompute=self.recompute_in_backward)
        return self._mix((*(stages[i] for i in self.backbone.affinity_stages), stages[-1]))
