"""BatchNorm folded into the convolution before it, for inference (a constant factor off every forward).

In eval mode a BatchNorm is an affine map per channel, ``y = (x - mean) / sqrt(var + eps) * gamma
+ beta``; after a convolution it can be folded into the convolution's weights and bias, which
leaves the same function (up to float rounding) without the BatchNorm operations: a forward of
EfficientNet-Lite0 takes about 20% less time on a CPU, at 384 px as at 96 px
(``benchmarks/imagenet_backbone.py`` times both side by side).
The network's own weights are left as they are (a folded copy is used), so its state dict, and
the fingerprint that names which classifier made a folder of maps, do not change.
"""
from __future__ import annotations

import copy
import itertools

import torch
from torch import nn
from torch.nn.modules.module import (register_module_buffer_registration_hook, register_module_module_registration_hook,
                                     register_module_parameter_registration_hook)
from timm.layers import BatchNormAct2d

# How many parameters, buffers and modules have been assigned to modules in this process: a network
# whose tensor was replaced (not changed in place) is folded again.
_assignments = 0


def _count_assignment(*_):
    global _assignments
    _assignments += 1


for _register in (register_module_parameter_registration_hook, register_module_buffer_registration_hook,
                  register_module_module_registration_hook):
    _register(_count_assignment)


def fold_batch_norms(net: nn.Module) -> nn.Module:
    """A copy of ``net`` in eval mode in which every ``nn.Conv2d`` directly followed, among its
    parent's children, by a BatchNorm (``nn.BatchNorm2d`` or timm's ``BatchNormAct2d``, with
    running statistics) carries that BatchNorm in its weights and bias; the BatchNorm becomes its
    activation (timm's) or nothing. Only for networks whose children run in the order they are
    registered, as timm's EfficientNet blocks do (its tests compare the two)."""
    folded = copy.deepcopy(net).eval()
    for parent in list(folded.modules()):
        children = list(parent.named_children())
        for (_, conv), (name, norm) in zip(children, children[1:]):
            if not (isinstance(conv, nn.Conv2d) and type(norm) in (nn.BatchNorm2d, BatchNormAct2d)
                    and norm.running_mean is not None):
                continue
            with torch.no_grad():
                scale = norm.running_var.add(norm.eps).rsqrt()
                shift = -norm.running_mean * scale
                if norm.affine:
                    scale, shift = scale * norm.weight, shift * norm.weight + norm.bias
                bias = shift if conv.bias is None else conv.bias * scale + shift
                channels_last = conv.weight.is_contiguous(memory_format=torch.channels_last)
                weight = conv.weight * scale.view(-1, 1, 1, 1)
                conv.weight = nn.Parameter(weight.contiguous(memory_format=torch.channels_last if channels_last
                                                             else torch.contiguous_format), requires_grad=False)
                conv.bias = nn.Parameter(bias, requires_grad=False)
            setattr(parent, name, nn.Sequential(norm.drop, norm.act) if isinstance(norm, BatchNormAct2d) else nn.Identity())
    return folded


class FoldedForInference:
    """A network's folded copy (:func:`fold_batch_norms`), kept while the network stays as it was
    folded: made again when one of its weights or statistics changes in place (an optimiser step,
    ``load_state_dict``), moves (``.to``), or when any module's tensor is replaced, and when
    ``setting`` (e.g. the output stride) changes. The check costs about 50 microseconds a call."""

    def __init__(self):
        self._tensors: tuple[torch.Tensor, ...] = ()
        self._state = None
        self._folded: nn.Module | None = None

    def of(self, net: nn.Module, setting=None) -> nn.Module:
        if self._folded is None or self._state != self._current(setting):
            self._tensors = tuple(itertools.chain(net.parameters(), net.buffers()))
            self._folded = fold_batch_norms(net)
            self._state = self._current(setting)  # after folding, whose own assignments are counted
        return self._folded

    def _current(self, setting):
        return setting, _assignments, tuple((tensor._version, tensor.data_ptr()) for tensor in self._tensors)
