"""What float32, the CPU's default precision, costs against bfloat16 autocast on this CPU.

    python benchmarks/cpu_precision.py                 # the cpu profile's classifier (01_baseline_cam)
    python benchmarks/cpu_precision.py --width 8 --crop 96 --batch-size 16   # the smoke profile's

``mixed_precision="auto"`` computes in float32 on every CPU, so that no CPU computes in bfloat16
unasked (float32 still rounds a little differently from one CPU model to another); ``"native"``
takes bfloat16 on CPUs with bfloat16 units (AVX-512 BF16, AMX). This times, side by side in one
run, one training step of the classifier and one CAM forward (two 384 px images) in each precision,
each the best of a few repeats, and prints the ratios. On a CPU
without bfloat16 units the bfloat16 column is emulated (many times slower).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infercam.config import autocast, cpu_computes_bfloat16, cpu_name  # noqa: E402
from infercam.models import build_classifier  # noqa: E402


def best_seconds(step, repeats: int) -> float:
    step()  # warm-up: oneDNN picks its kernels on the first call
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = build_classifier("resnet18", width=args.width, output_stride=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    images, labels = torch.randn(args.batch_size, 3, args.crop, args.crop), (torch.rand(args.batch_size, 20) < 0.1).float()
    cam_images = torch.randn(2, 3, 384, 384)

    def train_step(bfloat16: bool):
        with autocast("cpu", bfloat16):
            logits = model(images)
        optimizer.zero_grad()
        F.multilabel_soft_margin_loss(logits.float(), labels).backward()
        optimizer.step()

    @torch.no_grad()
    def cam_forward(bfloat16: bool):
        with autocast("cpu", bfloat16):
            model.cam(cam_images)

    print(f"{cpu_name()}; bfloat16 units: {'yes' if cpu_computes_bfloat16() else 'no (bfloat16 is emulated)'}; "
          f"torch threads {torch.get_num_threads()}")
    print(f"ResNet-18 width {args.width}: training step at crop {args.crop}, batch {args.batch_size}; "
          f"CAM forward of 2 images of 384 px")
    print(f"{'step':<14} {'float32 s':>10} {'bfloat16 s':>11} {'float32 / bfloat16':>19}")
    for name, step in (("training step", train_step), ("CAM forward", cam_forward)):
        # Interleaved so that a change in the machine's load hits both precisions alike.
        float32, bfloat16 = [], []
        for _ in range(2):
            float32.append(best_seconds(lambda: step(False), args.repeats))
            bfloat16.append(best_seconds(lambda: step(True), args.repeats))
        print(f"{name:<14} {min(float32):>10.3f} {min(bfloat16):>11.3f} {min(float32) / min(bfloat16):>19.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
