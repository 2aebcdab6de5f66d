"""What the ImageNet start costs: a training step and a CAM forward of EfficientNet-Lite0 (ImageNet)
against the cpu profile's width-16 ResNet-18 (from scratch), side by side in one run.

    python benchmarks/imagenet_backbone.py            # 3 timed repeats of each
    python benchmarks/imagenet_backbone.py --repeats 5

Training step: forward + backward + AdamW step on a random batch at the notebook's crop (ResNet-18:
batch 32 of 256 px at output stride 16; EfficientNet: batch 16 of ``--crop`` px at output stride
32), with 0 or 3 frozen stages, in channels-last memory or not. CAM forward: one 384 px image (the
cpu profile's size) at the CAM's output stride, for EfficientNet also with its BatchNorms run as they
are instead of folded into the convolutions (what inference does: infercam.models.folding), and at
96 px (a split & unite patch at half scale). Prints seconds per image and ratios to the ResNet-18.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from infercam.models import build_classifier
from infercam.training import ClassifierTraining, freeze_stages, make_optimizer


def seconds_per_call(function, repeats: int) -> float:
    function()  # warm-up: oneDNN picks its kernels on the first call
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - started) / repeats


def training_step(backbone: str, output_stride: int, batch: int, crop: int, frozen: int, channels_last: bool):
    model = build_classifier(backbone, width=16, output_stride=output_stride)
    model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    freeze_stages(model, frozen)
    model.train()
    optimizer = make_optimizer(model, ClassifierTraining(backbone=backbone, optimizer="adamw", lr=1e-4))
    images, labels = torch.randn(batch, 3, crop, crop), (torch.rand(batch, 20) < 0.1).float()

    def step():
        loss = F.multilabel_soft_margin_loss(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def cam_forward(backbone: str, output_stride: int, channels_last: bool, size: int = 384, folded: bool = True):
    model = build_classifier(backbone, width=16, output_stride=output_stride).eval()
    model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    image = torch.randn(1, 3, size, size)

    def forward():
        with torch.no_grad():
            if folded:
                model.cam(image)
            else:  # the network's own modules, BatchNorms as they are
                model.classifier(model.backbone.net.forward_features(image))
    return forward


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crop", type=int, default=224, help="EfficientNet's training crop")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows = {
        "train resnet18 w16 os16, batch 32 x 256 px": (training_step("resnet18", 16, 32, 256, 0, False), 32),
        f"train lite0 os32, batch 16 x {args.crop} px": (training_step("efficientnet_lite0", 32, 16, args.crop, 0, True), 16),
        f"train lite0 os32, 3 stages frozen, {args.crop} px": (
            training_step("efficientnet_lite0", 32, 16, args.crop, 3, True), 16),
        f"train lite0 os32, 3 stages frozen, {args.crop} px, contiguous": (
            training_step("efficientnet_lite0", 32, 16, args.crop, 3, False), 16),
        "CAM resnet18 w16 os8, 384 px": (cam_forward("resnet18", 8, False), 1),
        "CAM lite0 os16, 384 px": (cam_forward("efficientnet_lite0", 16, True), 1),
        "CAM lite0 os16, 384 px, contiguous": (cam_forward("efficientnet_lite0", 16, False), 1),
        "CAM lite0 os16, 384 px, BatchNorm not folded": (cam_forward("efficientnet_lite0", 16, True, folded=False), 1),
        "CAM lite0 os16, 96 px": (cam_forward("efficientnet_lite0", 16, True, 96), 1),
        "CAM lite0 os16, 96 px, BatchNorm not folded": (cam_forward("efficientnet_lite0", 16, True, 96, False), 1),
        "CAM lite0 os8, 384 px": (cam_forward("efficientnet_lite0", 8, True), 1),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    per_image = {}
    for name, (function, images) in rows.items():
        per_image[name] = seconds_per_call(function, args.repeats) / images
        print(f"{name:58s} {1000 * per_image[name]:8.1f} ms/image", flush=True)
    train_base, cam_base = next(iter(per_image.values())), per_image["CAM resnet18 w16 os8, 384 px"]
    for name, value in per_image.items():
        print(f"{name:58s} x{value / (train_base if name.startswith('train') else cam_base):.2f} of the ResNet-18")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
