"""ResNet-38 (psa's resnet38d) layout, loading of psa-style state dicts, stride and frozen BN."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from infercam.models import ResNet38Classifier, ResNet38d

# Independent, hand-written expectation of psa's res38_cls.pth layout (not derived from the model).
BLOCKS = ["b2", "b2_1", "b2_2", "b3", "b3_1", "b3_2", "b4", "b4_1", "b4_2", "b4_3", "b4_4", "b4_5",
          "b5", "b5_1", "b5_2", "b6", "b7"]
PROJECTED = {"b2", "b3", "b4", "b5", "b6", "b7"}
BOTTLENECK = {"b6", "b7"}
BN = ["weight", "bias", "running_mean", "running_var"]


def expected_keys() -> list[str]:
    keys = ["conv1a.weight"]
    for b in BLOCKS:
        keys += [f"{b}.bn_branch2a.{s}" for s in BN] + [f"{b}.conv_branch2a.weight"]
        keys += [f"{b}.bn_branch2b1.{s}" for s in BN] + [f"{b}.conv_branch2b1.weight"]
        if b in BOTTLENECK:
            keys += [f"{b}.bn_branch2b2.{s}" for s in BN] + [f"{b}.conv_branch2b2.weight"]
        if b in PROJECTED:
            keys.append(f"{b}.conv_branch1.weight")
    keys += [f"bn7.{s}" for s in BN] + ["fc8.weight"]
    return keys


EXPECTED_SHAPES = {  # a sample of shapes worked out by hand from the A1 widths
    "conv1a.weight": (64, 3, 3, 3),
    "b2.conv_branch2a.weight": (128, 64, 3, 3),
    "b2.conv_branch1.weight": (128, 64, 1, 1),
    "b4_5.conv_branch2b1.weight": (512, 512, 3, 3),
    "b5.conv_branch2a.weight": (512, 512, 3, 3),
    "b5.conv_branch2b1.weight": (1024, 512, 3, 3),
    "b5.conv_branch1.weight": (1024, 512, 1, 1),
    "b6.conv_branch2a.weight": (512, 1024, 1, 1),
    "b6.conv_branch2b1.weight": (1024, 512, 3, 3),
    "b6.conv_branch2b2.weight": (2048, 1024, 1, 1),
    "b7.conv_branch2a.weight": (1024, 2048, 1, 1),
    "b7.conv_branch2b1.weight": (2048, 1024, 3, 3),
    "b7.conv_branch2b2.weight": (4096, 2048, 1, 1),
    "b7.conv_branch1.weight": (4096, 2048, 1, 1),
    "bn7.running_var": (4096,),
    "fc8.weight": (20, 4096, 1, 1),
}


@pytest.fixture(scope="module")
def model() -> ResNet38Classifier:
    torch.manual_seed(0)
    return ResNet38Classifier()


@pytest.fixture(scope="module")
def backbone() -> ResNet38d:
    return ResNet38d()


def psa_style(model: nn.Module) -> OrderedDict:
    """The model's state dict as psa's file holds it: no num_batches_tracked entries."""
    sd = model.state_dict()
    for k in [k for k in sd if k.endswith("num_batches_tracked")]:
        del sd[k]
    return sd


def test_state_dict_names_and_shapes(model):
    sd = psa_style(model)
    assert list(sd) == expected_keys()
    assert len(sd) == 192
    for k, shape in EXPECTED_SHAPES.items():
        assert tuple(sd[k].shape) == shape, k
    n_values = sum(v.numel() for v in sd.values())
    assert 105.1e6 < n_values < 105.3e6, n_values
    assert not any(k.endswith("bias") and "bn" not in k for k in sd)  # convolutions have no bias


def test_dilations_and_strides(model):
    strided = {n: m.stride[0] for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.stride[0] > 1}
    assert strided == {f"{b}.{c}": 2 for b in ("b2", "b3", "b4") for c in ("conv_branch2a", "conv_branch1")}
    assert model.b5.conv_branch2a.dilation == (1, 1) and model.b5.conv_branch2b1.dilation == (2, 2)
    for b in ("b5_1", "b5_2"):
        assert getattr(model, b).conv_branch2a.dilation == getattr(model, b).conv_branch2b1.dilation == (2, 2)
    for b in ("b6", "b7"):
        assert getattr(model, b).conv_branch2b1.dilation == (4, 4)


def test_strict_load_without_and_with_num_batches_tracked(model, backbone):
    fresh = ResNet38Classifier()
    sd = psa_style(model)
    fresh.load_state_dict(sd, strict=True)  # OrderedDict with current _metadata
    fresh.load_state_dict(dict(sd), strict=True)  # plain dict, no metadata (like an old torch.save)
    fresh.load_state_dict(model.state_dict(), strict=True)  # with num_batches_tracked
    for k, v in sd.items():
        assert torch.equal(fresh.state_dict()[k], v), k
    # only num_batches_tracked may be missing: anything else still fails a strict load
    missing = OrderedDict((k, v) for k, v in sd.items() if k != "b3.bn_branch2a.running_var")
    with pytest.raises(RuntimeError, match="running_var"):
        fresh.load_state_dict(missing, strict=True)
    extra = OrderedDict(sd, **{"fc8.bias": torch.zeros(20)})
    with pytest.raises(RuntimeError, match="fc8.bias"):
        fresh.load_state_dict(extra, strict=True)
    # the backbone alone takes the same dict minus fc8 (the converted ImageNet weights)
    backbone.load_state_dict(OrderedDict((k, v) for k, v in sd.items() if not k.startswith("fc8")), strict=True)


def test_output_stride_and_cam(model):
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = model.features(x)
        cam = model.cam(x)
        logits = model(x)
    assert feats.shape == (1, 4096, 8, 8)
    assert cam.shape == (1, 20, 8, 8)
    assert logits.shape == (1, 20)
    assert (feats >= 0).all()
    assert (cam < 0).any()  # raw fc8 response, no ReLU
    # in eval mode the logits are the spatial mean of the raw CAM (GAP and 1x1 conv commute)
    torch.testing.assert_close(logits, cam.mean(dim=(2, 3)), rtol=1e-4, atol=1e-4)


def test_train_keeps_batchnorm_frozen(model):
    model.train()
    assert model.training and model.dropout7.training and model.b7.dropout_2b1.training
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 1 + 2 * 15 + 3 * 2  # bn7, two per plain block, three per bottleneck
    assert not any(m.training for m in bns)
    assert not any(p.requires_grad for m in bns for p in m.parameters())
    frozen = ("conv1a", "b2", "b2_1", "b2_2")  # psa's classifier.not_training
    for name, p in model.named_parameters():
        assert p.requires_grad == (not name.startswith(tuple(f"{f}." for f in frozen)) and ".bn" not in name
                                   and not name.startswith("bn7")), name
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    out = model(torch.randn(2, 3, 32, 32))
    out.sum().backward()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.fc8.weight.grad is not None and model.conv1a.weight.grad is None
    model.zero_grad(set_to_none=True)
    model.eval()
    assert not model.training and not any(m.training for m in bns)


def test_parameter_groups(model, backbone):
    weights, biases, scratch_w, scratch_b = model.parameter_groups()
    assert scratch_w == [model.fc8.weight] and biases == [] and scratch_b == []
    assert len(weights) == 1 + 2 * 15 + 4 + 3 * 2 + 2 - (1 + 2 * 3 + 1)  # trainable convs minus frozen ones
    backbone.train()  # psa's backbone freezes conv1a only
    assert not backbone.conv1a.weight.requires_grad and backbone.b2.conv_branch2a.weight.requires_grad


def test_affinity_net_has_psa_s_names_and_loads_a_psa_style_state_dict():
    from infercam.models import ResNet38Affinity

    torch.manual_seed(0)
    net = ResNet38Affinity()
    head = {"f8_3.weight": (64, 512, 1, 1), "f8_4.weight": (128, 1024, 1, 1), "f8_5.weight": (256, 4096, 1, 1),
            "f9.weight": (448, 448, 1, 1)}
    expected = [k for k in expected_keys() if k != "fc8.weight"] + list(head)
    state = net.state_dict()
    assert [k for k in state if not k.endswith("num_batches_tracked")] == expected
    assert {k: tuple(state[k].shape) for k in head} == head
    psa_style = OrderedDict((k, torch.randn_like(state[k].float())) for k in expected)  # as res38_aff.pth holds
    ResNet38Affinity().load_state_dict(psa_style, strict=True)
    net.eval()
    from infercam.affinity import pair_indices

    first, second = pair_indices(4, 4)
    with torch.no_grad():
        affinities = net(torch.randn(1, 3, 32, 32))
    assert affinities.shape == (1, len(first)) and (affinities > 0).all()
