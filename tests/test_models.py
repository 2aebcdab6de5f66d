"""The offline backbones and the CAM classifier wrapper, on tiny seeded inputs; no downloads."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from infercam.models import CAMClassifier, ResNet18, build_classifier, set_output_stride

torch.manual_seed(0)


def test_width_64_resnet18_is_torchvisions_resnet18():
    reference = torchvision.models.resnet18(weights=None).eval()
    ours = ResNet18(width=64, output_stride=32).eval()
    state = {key: value for key, value in reference.state_dict().items() if not key.startswith("fc.")}
    ours.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 64, 64)
    trunk = nn.Sequential(*list(reference.children())[:-2])
    assert torch.allclose(ours(x), trunk(x), atol=1e-5)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
@pytest.mark.parametrize("stride", [8, 16, 32])
def test_output_stride(backbone, stride):
    model = build_classifier(backbone, width=8, output_stride=stride).eval()
    with torch.no_grad():
        maps = model.cam(torch.randn(1, 3, 64, 96))
    assert maps.shape == (1, 20, 64 // stride, 96 // stride)
    assert model.output_stride == stride


def test_resnet50_dilation_matches_torchvision():
    ours = build_classifier("resnet50", output_stride=8).backbone
    reference = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
    geometry = lambda net: [(m.stride, m.dilation, m.padding) for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert geometry(ours) == geometry(reference)[:len(geometry(ours))]


def test_restriding_keeps_the_weights_and_equals_a_net_built_at_that_stride():
    trained_at_16 = ResNet18(width=8, output_stride=16).eval()
    built_at_8 = ResNet18(width=8, output_stride=8).eval()
    built_at_8.load_state_dict(trained_at_16.state_dict())
    x = torch.randn(1, 3, 64, 64)
    set_output_stride(trained_at_16, 8)
    with torch.no_grad():
        assert torch.allclose(trained_at_16(x), built_at_8(x), atol=1e-6)
    with pytest.raises(ValueError, match="output_stride must be one of"):
        set_output_stride(trained_at_16, 4)


def test_the_cam_is_the_classifier_applied_per_location():
    model = CAMClassifier(ResNet18(width=8, output_stride=8)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.cam(x).mean(dim=(2, 3)), model(x), atol=1e-5)  # pooling and 1x1 conv commute
    assert model.classifier.bias is None


def test_parameter_groups_hold_every_trainable_parameter_once():
    model = build_classifier("resnet18", width=8)
    grouped = [p for group in model.parameter_groups() for p in group]
    assert len({id(p) for p in grouped}) == len(grouped) == len(list(model.parameters()))


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match="resnet38d, resnet18, resnet50"):
        build_classifier("vgg16")
