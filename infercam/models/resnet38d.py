"""ResNet-38 ("resnet38d", model A1 of Wu, Shen & van den Hengel's wider-or-deeper ResNets) and the
CAM classifier on top of it, laid out exactly as psa (Ahn & Kwak, CVPR 2018) lays them out.

The module and parameter names, shapes, strides and dilations follow psa's ``network/resnet38d.py``
and ``network/resnet38_cls.py`` so that psa's released ``res38_cls.pth`` loads into
:class:`ResNet38Classifier` with ``strict=True`` (and the converted ImageNet weights
``ilsvrc-cls_rna-a1_cls1000_ep-0001`` into :class:`ResNet38d`).

Architecture (input stride in brackets)::

    conv1a    3x3 conv 3->64                                        [1]
    b2..b2_2  3 pre-activation blocks, 128 ch, b2 stride 2          [2]
    b3..b3_2  3 blocks, 256 ch, b3 stride 2                         [4]
    b4..b4_5  6 blocks, 512 ch, b4 stride 2                         [8]
    b5..b5_2  3 blocks, 512->1024 ch; dilation 2 (b5's first conv
              keeps dilation 1, its second and b5_1/b5_2 use 2)     [8]
    b6        bottleneck 1024->2048, dilation 4, dropout 0.3        [8]
    b7        bottleneck 2048->4096, dilation 4, dropout 0.5        [8]
    bn7, ReLU                                                       [8]

Every residual block is pre-activation (BN -> ReLU -> conv); the projection shortcut
``conv_branch1`` (1x1) exists only where the shape changes (b2, b3, b4, b5, b6, b7) and, as in psa,
is applied to the *normalised and rectified* input. The two dropouts inside b6/b7 (Dropout2d) are
psa's; they carry no parameters.

Frozen parts, as psa does in ``Net.train``:

* every BatchNorm layer stays in eval mode (running statistics are never updated) and its affine
  weight and bias get ``requires_grad=False``;
* the modules in ``frozen`` get ``requires_grad=False`` for all their parameters: psa's backbone
  freezes ``conv1a`` only; psa's classifier freezes ``conv1a, b2, b2_1, b2_2``.

psa applies the freezing only when ``train()`` is called; here it is applied at construction as
well and re-applied on every ``train()``/``eval()``.

Inputs are RGB images normalised with ImageNet statistics (``x/255``, mean (0.485, 0.456, 0.406),
std (0.229, 0.224, 0.225)); the normalisation is not part of the model.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BLOCK_NAMES",
    "CLASSIFIER_FROZEN",
    "BACKBONE_FROZEN",
    "ResNet38d",
    "ResNet38Classifier",
]

# Residual blocks in forward order (psa's attribute names).
BLOCK_NAMES: tuple[str, ...] = (
    "b2", "b2_1", "b2_2",
    "b3", "b3_1", "b3_2",
    "b4", "b4_1", "b4_2", "b4_3", "b4_4", "b4_5",
    "b5", "b5_1", "b5_2",
    "b6", "b7",
)
BACKBONE_FROZEN: tuple[str, ...] = ("conv1a",)  # psa resnet38d.Net.not_training
CLASSIFIER_FROZEN: tuple[str, ...] = ("conv1a", "b2", "b2_1", "b2_2")  # psa resnet38_cls.Net.not_training

FEATURE_CHANNELS = 4096
OUTPUT_STRIDE = 8


class _BatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that also loads state dicts lacking ``num_batches_tracked`` (psa's checkpoints
    were saved by PyTorch 0.3/0.4, before that buffer existed). Only that one key is tolerated as
    missing; every other key mismatch still fails a strict load. The buffer keeps its current value
    (it is unused anyway: the layers run in eval mode)."""

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        key = prefix + "num_batches_tracked"
        if self.num_batches_tracked is not None and key not in state_dict:
            state_dict[key] = self.num_batches_tracked.detach().clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    # padding = dilation keeps the size for stride 1 and halves it (ceil) for stride 2
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)


class _PreActivationBlock(nn.Module):
    """What psa's two block types share: BN + ReLU on the input feeds both the residual branch and
    the 1x1 projection shortcut (present when the shape changes)."""

    def forward(self, x: torch.Tensor, return_preact: bool = False):
        pre = F.relu(self.bn_branch2a(x))
        shortcut = x if self.same_shape else self.conv_branch1(pre)
        out = shortcut + self.residual(pre)
        return (out, pre) if return_preact else out


class ResBlock(_PreActivationBlock):
    """Pre-activation block of two 3x3 convolutions (psa ``ResBlock``).

    ``conv_branch2a`` carries the stride and ``first_dilation`` (default: ``dilation``);
    ``conv_branch2b1`` uses ``dilation``."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, stride: int = 1,
                 first_dilation: int | None = None, dilation: int = 1):
        super().__init__()
        if first_dilation is None:
            first_dilation = dilation
        self.same_shape = in_channels == out_channels and stride == 1
        self.bn_branch2a = _BatchNorm2d(in_channels)
        self.conv_branch2a = _conv3x3(in_channels, mid_channels, stride, first_dilation)
        self.bn_branch2b1 = _BatchNorm2d(mid_channels)
        self.conv_branch2b1 = _conv3x3(mid_channels, out_channels, 1, dilation)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def residual(self, pre: torch.Tensor) -> torch.Tensor:
        return self.conv_branch2b1(F.relu(self.bn_branch2b1(self.conv_branch2a(pre))))


class BottleneckBlock(_PreActivationBlock):
    """Pre-activation bottleneck 1x1 -> 3x3 (dilated) -> 1x1 with widths out/4, out/2, out and
    Dropout2d before the last two convolutions (psa ``ResBlock_bot``). Always has the projection
    shortcut in ResNet-38 (the channel count changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        self.same_shape = in_channels == out_channels and stride == 1
        self.bn_branch2a = _BatchNorm2d(in_channels)
        self.conv_branch2a = nn.Conv2d(in_channels, out_channels // 4, 1, stride, bias=False)
        self.bn_branch2b1 = _BatchNorm2d(out_channels // 4)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = _conv3x3(out_channels // 4, out_channels // 2, 1, dilation)
        self.bn_branch2b2 = _BatchNorm2d(out_channels // 2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(out_channels // 2, out_channels, 1, bias=False)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def residual(self, pre: torch.Tensor) -> torch.Tensor:
        y = self.conv_branch2a(pre)
        y = self.conv_branch2b1(self.dropout_2b1(F.relu(self.bn_branch2b1(y))))
        return self.conv_branch2b2(self.dropout_2b2(F.relu(self.bn_branch2b2(y))))


class ResNet38d(nn.Module):
    """ResNet-38 backbone; ``forward(x)`` returns ReLU(bn7(b7(...))) of shape
    (N, 4096, ceil(H/8), ceil(W/8)).

    ``frozen``: names of top-level modules whose parameters get ``requires_grad=False``
    (default psa's backbone choice, ``("conv1a",)``)."""

    def __init__(self, frozen: Iterable[str] = BACKBONE_FROZEN):
        super().__init__()
        self.conv1a = nn.Conv2d(3, 64, 3, padding=1, bias=False)

        self.b2 = ResBlock(64, 128, 128, stride=2)
        self.b2_1 = ResBlock(128, 128, 128)
        self.b2_2 = ResBlock(128, 128, 128)

        self.b3 = ResBlock(128, 256, 256, stride=2)
        self.b3_1 = ResBlock(256, 256, 256)
        self.b3_2 = ResBlock(256, 256, 256)

        self.b4 = ResBlock(256, 512, 512, stride=2)
        self.b4_1 = ResBlock(512, 512, 512)
        self.b4_2 = ResBlock(512, 512, 512)
        self.b4_3 = ResBlock(512, 512, 512)
        self.b4_4 = ResBlock(512, 512, 512)
        self.b4_5 = ResBlock(512, 512, 512)

        self.b5 = ResBlock(512, 512, 1024, stride=1, first_dilation=1, dilation=2)
        self.b5_1 = ResBlock(1024, 512, 1024, dilation=2)
        self.b5_2 = ResBlock(1024, 512, 1024, dilation=2)

        self.b6 = BottleneckBlock(1024, 2048, stride=1, dilation=4, dropout=0.3)
        self.b7 = BottleneckBlock(2048, 4096, stride=1, dilation=4, dropout=0.5)

        self.bn7 = _BatchNorm2d(FEATURE_CHANNELS)

        self.frozen = tuple(frozen)
        for name in self.frozen:
            if not isinstance(getattr(self, name, None), nn.Module):
                raise ValueError(f"unknown module to freeze: {name!r}")
        self._apply_freezing()
        self.train()

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """psa's ``forward_as_dict``: ``conv4`` = pre-activation input of b5 (512 ch),
        ``conv5`` = pre-activation input of b6 (1024 ch), ``conv6`` = final features (4096 ch),
        all at stride 8."""
        x = self.conv1a(x)
        for name in BLOCK_NAMES[:12]:  # b2 .. b4_5
            x = getattr(self, name)(x)
        x, conv4 = self.b5(x, return_preact=True)
        x = self.b5_2(self.b5_1(x))
        x, conv5 = self.b6(x, return_preact=True)
        x = self.b7(x)
        conv6 = F.relu(self.bn7(x))
        return {"conv4": conv4, "conv5": conv5, "conv6": conv6}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["conv6"]

    def _apply_freezing(self) -> None:
        for name in self.frozen:
            for p in getattr(self, name).parameters():
                p.requires_grad_(False)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
                for p in m.parameters(recurse=False):
                    p.requires_grad_(False)

    def train(self, mode: bool = True):
        """Sets the mode like ``nn.Module.train`` but keeps every BatchNorm in eval mode and
        re-applies the freezing (psa's behaviour)."""
        super().train(mode)
        self._apply_freezing()
        return self


class ResNet38Classifier(ResNet38d):
    """psa's classification network: backbone -> Dropout2d(0.5) -> global average pooling ->
    ``fc8`` (1x1 conv 4096->num_classes, no bias, Xavier-uniform init) -> (N, num_classes) logits.

    A subclass of the backbone (not a wrapper) so that the state-dict keys are psa's flat names
    (``conv1a.weight``, ``b2.bn_branch2a.weight``, ..., ``bn7.*``, ``fc8.weight``).
    ``frozen`` defaults to psa's classifier choice, ``("conv1a", "b2", "b2_1", "b2_2")``."""

    def __init__(self, num_classes: int = 20, frozen: Iterable[str] = CLASSIFIER_FROZEN):
        super().__init__(frozen=frozen)
        self.num_classes = num_classes
        self.dropout7 = nn.Dropout2d(0.5)
        self.fc8 = nn.Conv2d(FEATURE_CHANNELS, num_classes, 1, bias=False)
        nn.init.xavier_uniform_(self.fc8.weight)
        self.train()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features (N, 4096, H/8, W/8)."""
        return super().forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout7(self.features(x))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc8(x).flatten(1)

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """Raw class activation maps (N, num_classes, H/8, W/8): ``fc8`` applied at every location
        of the backbone features, without dropout and WITHOUT ReLU. psa's ``forward_cam`` applies
        ReLU here; in this project the ReLU (and upsampling, label masking, normalisation) belongs
        to the CAM inference protocol, so the raw map stays available for analysis (e.g. CAM > 0).
        Call ``.eval()`` first so the dropouts inside b6/b7 are off."""
        return F.conv2d(self.features(x), self.fc8.weight)

    def parameter_groups(self) -> tuple[list[nn.Parameter], ...]:
        """psa's ``get_parameter_groups``: trainable conv weights of the backbone, their biases
        (none in ResNet-38), trainable weights and biases of the from-scratch layer ``fc8``
        (psa trains them with lr x1, x2, x10, x20). BatchNorm parameters are in no group."""
        groups: tuple[list[nn.Parameter], ...] = ([], [], [], [])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                scratch = 2 if m is self.fc8 else 0
                if m.weight.requires_grad:
                    groups[scratch].append(m.weight)
                if m.bias is not None and m.bias.requires_grad:
                    groups[scratch + 1].append(m.bias)
        return groups
