"""Classification networks whose 1x1-conv heads give class activation maps.

Every classifier here has ``forward(x) -> (N, 20)`` logits, ``cam(x) -> (N, 20, h, w)`` raw maps
(the head applied per location, before pooling) and ``parameter_groups()``; :func:`build_classifier`
makes one by name.
"""
from __future__ import annotations

from infercam.models.affinity import EfficientNetAffinity, ResNet38Affinity, ResNetAffinity
from infercam.models.deeplab import ASPP, DeepLabV2, FrozenBackboneSegmenter, PyramidDecoder
from infercam.models.efficientnet import EfficientNetLite0
from infercam.models.resnet import BACKBONES, CAMClassifier, ResNet18, ResNet50, ResNet101, set_output_stride
from infercam.models.resnet38d import ResNet38Classifier, ResNet38d

__all__ = ["ASPP", "BACKBONES", "CAMClassifier", "DeepLabV2", "FrozenBackboneSegmenter", "PyramidDecoder", "EfficientNetAffinity", "EfficientNetLite0", "ResNet18", "ResNet50", "ResNet101", "ResNet38d",
           "ResNet38Classifier", "ResNet38Affinity", "ResNetAffinity", "build_affinity_net", "build_classifier",
           "build_segmenter", "set_output_stride"]

# Backbones that start from ImageNet's weights (the others start from random weights).
IMAGENET_BACKBONES = {"efficientnet_lite0": EfficientNetLite0}
CLASSIFIERS = ("resnet38d", *BACKBONES, *IMAGENET_BACKBONES)


def build_classifier(backbone: str, num_classes: int = 20, width: int = 64, output_stride: int = 8,
                     imagenet: bool = True):
    """``"resnet38d"`` (psa's network, output stride 8, loads ``res38_cls.pth``), ``"resnet18"``
    (``width`` channels in its first layer), ``"resnet50"`` or ``"resnet101"``, randomly initialised;
    ``"efficientnet_lite0"`` from ImageNet's weights (``imagenet=False``: random, for a checkpoint)."""
    if backbone == "resnet38d":
        if output_stride != 8:
            raise ValueError("resnet38d has output stride 8 only")
        return ResNet38Classifier(num_classes)
    if backbone in IMAGENET_BACKBONES:
        return CAMClassifier(IMAGENET_BACKBONES[backbone](output_stride, imagenet), num_classes)
    if backbone == "resnet18":
        return CAMClassifier(ResNet18(width, output_stride), num_classes)
    if backbone in BACKBONES:
        return CAMClassifier(BACKBONES[backbone](output_stride), num_classes)
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(CLASSIFIERS)}")


def build_affinity_net(backbone: str, width: int = 64, imagenet: bool = True, output_stride: int = 8):
    """AffinityNet on ``"resnet38d"`` (psa's names: loads ``res38_aff.pth``), ``"resnet18"`` or
    ``"resnet50"``, randomly initialised, or ``"efficientnet_lite0"`` from ImageNet. The affinities
    are always on the stride-8 grid; ``output_stride`` 16 runs the deep stages at stride 16 and
    upsamples their features onto it (far less work on a CPU; psa: 8, ResNet-38's only)."""
    if output_stride not in (8, 16):
        raise ValueError(f"AffinityNet's output stride must be 8 or 16, got {output_stride}")
    if backbone == "resnet38d":
        if output_stride != 8:
            raise ValueError("resnet38d's AffinityNet has output stride 8 only (psa's): set aff_output_stride to 8")
        return ResNet38Affinity()
    if backbone in IMAGENET_BACKBONES:
        return EfficientNetAffinity(IMAGENET_BACKBONES[backbone](8, imagenet), output_stride)
    if backbone == "resnet18":
        return ResNetAffinity(ResNet18(width, 8), output_stride)
    if backbone == "resnet50":
        return ResNetAffinity(ResNet50(8), output_stride)
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(CLASSIFIERS)}")


def build_segmenter(backbone: str = "resnet101", num_classes: int = 21, width: int = 64,
                    imagenet: bool = True, frozen_backbone: bool = False) -> DeepLabV2 | FrozenBackboneSegmenter:
    """DeepLab v2 with ASPP on ``"resnet101"`` (the paper), ``"resnet50"`` or ``"resnet18"``
    (``width`` channels in its first layer), at output stride 8, randomly initialised, or on
    ``"efficientnet_lite0"`` from ImageNet; with ``frozen_backbone``, the same backbone fixed under a
    trained :class:`PyramidDecoder` instead (the offline profiles' recipe)."""
    if backbone in IMAGENET_BACKBONES:
        features = IMAGENET_BACKBONES[backbone](8, imagenet)
    elif backbone == "resnet18":
        features = ResNet18(width, 8)
    elif backbone in BACKBONES:
        features = BACKBONES[backbone](8)
    else:
        raise ValueError(f"unknown segmentation backbone {backbone!r}; "
                         f"choose one of {', '.join([*BACKBONES, *IMAGENET_BACKBONES])}")
    return FrozenBackboneSegmenter(features, num_classes) if frozen_backbone else DeepLabV2(features, num_classes)
