"""CAM inference throughput and peak memory: one image per forward vs several, on the same images.

    python benchmarks/cam_inference.py                      # cpu profile, 32 val images, batch 8
    python benchmarks/cam_inference.py --profile smoke --images 16 --batch-size 4 --device cpu

Each mode runs in its own child process so that its peak memory (resident set on the CPU, allocated
memory on a GPU) is its own. Both modes use the notebook's protocol (scales x flips, the flips of an
image in the same batch); "one at a time" puts one image in each forward, "batched" puts
``--batch-size`` images of one size. The classifier is the trained checkpoint of the profile's run
when there is one, else the same architecture with random weights (the speed does not depend on the
weights). Prints a table and the ratios, measured in this one run.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _classifier import benchmark_classifier  # noqa: E402  (beside this script)


def measure(profile: str, images: int, batch_size: int, device: str, scales: list[float]) -> dict:
    """Run in a child process: infer the CAMs of the first ``images`` val images."""
    import torch

    from infercam.cam import infer_cams
    from infercam.config import load_profile, resolve_device
    from infercam.datasets import VOCSegmentation

    settings = load_profile(profile)
    device = resolve_device(device)
    model, source = benchmark_classifier(settings, device)
    dataset = VOCSegmentation(ROOT / settings["data_root"], "val")
    dataset.names = dataset.names[:images]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        infer_cams(model, dataset, out, scales=scales, device=device, batch_size=batch_size,
                   mixed_precision="auto", progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
    peak = (torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before)
    return {"images": len(dataset.names), "seconds": seconds, "images_per_second": len(dataset.names) / seconds,
            "peak_memory_mib": peak, "device": str(device), "weights": source}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--scales", default="1.0,0.5,1.5", help="comma-separated (psa: 1.0,0.5,1.5,2.0)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # batch size of one measurement
    args = parser.parse_args(argv)
    scales = [float(s) for s in args.scales.split(",")]
    if args.child is not None:
        print(json.dumps(measure(args.profile, args.images, args.child, args.device, scales)))
        return 0
    results = {}
    for label, batch_size in (("one at a time", 1), (f"batched ({args.batch_size})", args.batch_size)):
        child = subprocess.run([sys.executable, __file__, "--profile", args.profile, "--images", str(args.images),
                                "--device", args.device, "--scales", args.scales, "--child", str(batch_size)],
                               capture_output=True, text=True)
        if child.returncode:
            sys.stderr.write(child.stderr)
            return child.returncode
        results[label] = json.loads(child.stdout.strip().splitlines()[-1])
    first, second = results.values()
    print(f"CAM inference, profile {args.profile}, {first['images']} val images, scales {scales} x flip, "
          f"device {first['device']}, weights: {first['weights']}")
    memory = "peak GPU memory (MiB)" if first["device"].startswith("cuda") else "peak RSS growth (MiB)"
    print(f"{'mode':<16} {'images/s':>9} {'s/image':>8} {memory:>22}")
    for label, result in results.items():
        print(f"{label:<16} {result['images_per_second']:>9.2f} {1 / result['images_per_second']:>8.3f} "
              f"{result['peak_memory_mib']:>22.0f}")
    print(f"throughput ratio batched / one at a time: {second['images_per_second'] / first['images_per_second']:.2f}")
    if first["peak_memory_mib"] > 0:
        print(f"memory ratio batched / one at a time: {second['peak_memory_mib'] / first['peak_memory_mib']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
