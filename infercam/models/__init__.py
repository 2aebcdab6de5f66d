"""Classification networks whose 1x1-conv heads give class activation maps.

Every classifier here has ``forward(x) -> (N, 20)`` logits, ``cam(x) -> (N, 20, h, w)`` raw maps
(the head applied per location, before pooling) and ``parameter_groups()``; :func:`build_classifier`
makes one by name.
"""
from __future__ import annotations

from infercam.models.affinity import ResNet38Affinity, ResNetAffinity
from infercam.models.resnet import BACKBONES, CAMClassifier, ResNet18, ResNet50, set_output_stride
from infercam.models.resnet38d import ResNet38Classifier, ResNet38d

__all__ = ["BACKBONES", "CAMClassifier", "ResNet18", "ResNet50", "ResNet38d", "ResNet38Classifier",
           "ResNet38Affinity", "ResNetAffinity", "build_affinity_net", "build_classifier", "set_output_stride"]

CLASSIFIERS = ("resnet38d", *BACKBONES)


def build_classifier(backbone: str, num_classes: int = 20, width: int = 64, output_stride: int = 8):
    """``"resnet38d"`` (psa's network, output stride 8, loads ``res38_cls.pth``), ``"resnet18"``
    (``width`` channels in its first layer) or ``"resnet50"``, randomly initialised."""
    if backbone == "resnet38d":
        if output_stride != 8:
            raise ValueError("resnet38d has output stride 8 only")
        return ResNet38Classifier(num_classes)
    if backbone == "resnet18":
        return CAMClassifier(ResNet18(width, output_stride), num_classes)
    if backbone == "resnet50":
        return CAMClassifier(ResNet50(output_stride), num_classes)
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(CLASSIFIERS)}")


def build_affinity_net(backbone: str, width: int = 64):
    """AffinityNet on ``"resnet38d"`` (psa's names: loads ``res38_aff.pth``), ``"resnet18"`` or
    ``"resnet50"`` (output stride 8), randomly initialised."""
    if backbone == "resnet38d":
        return ResNet38Affinity()
    if backbone == "resnet18":
        return ResNetAffinity(ResNet18(width, 8))
    if backbone == "resnet50":
        return ResNetAffinity(ResNet50(8))
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(CLASSIFIERS)}")
