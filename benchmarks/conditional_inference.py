"""What class-conditional inference costs against the baseline CAM, on the same images in one run:
time per image and its ratio to the baseline's, network forwards per image, pixels through the
network, and where the time goes (the network's forwards vs everything else).

    python benchmarks/conditional_inference.py                 # cpu profile, 20 val images
    python benchmarks/conditional_inference.py --profile smoke --images 8 --device cpu

The methods are those of the ablation grid's Table 2 rows (infercam.conditional.MethodSettings with
the paper's rules). Split & unite splits by the baseline maps: its time is given without them (they
are the baseline step's output, reused) and with them (the whole cost of starting from the image).
The paper: 40 against 13 minutes on VOC train, 3.1 times.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _classifier import benchmark_classifier  # noqa: E402  (beside this script)

METHODS = {"baseline": {}, "split & unite": {"split_unite": True}, "iterative": {"iterative": True},
           "combined": {"split_unite": True, "iterative": True}}


class CountingClassifier:
    """Wraps a classifier: counts its forwards, the pixels they see and the seconds they take."""

    def __init__(self, model, device):
        self.model, self.device = model, device
        self.output_stride = getattr(model, "output_stride", None)
        self.forwards, self.pixels, self.seconds = 0, 0, 0.0

    def _timed(self, function, x):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        started = time.perf_counter()
        out = function(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - started
        self.forwards += 1
        self.pixels += x.shape[0] * x.shape[2] * x.shape[3]
        return out

    def cam(self, x):
        return self._timed(self.model.cam, x)

    def __call__(self, x):
        return self._timed(self.model, x)

    def eval(self):
        return self


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--scales", default="1.0,0.5", help="comma-separated (the cpu profile: 1.0,0.5; psa: 1.0,0.5,1.5,2.0)")
    parser.add_argument("--batch-size", type=int, default=4, help="images of one size iterated together (row 'iterative, batched')")
    args = parser.parse_args(argv)

    import numpy as np
    import pandas as pd

    from infercam.cam import infer_in_batches
    from infercam.conditional import MethodSettings
    from infercam.config import load_profile, resolve_device
    from infercam.datasets import VOCSegmentation

    settings = load_profile(args.profile)
    device = resolve_device(args.device)
    model, source = benchmark_classifier(settings, device)
    scales = [float(s) for s in args.scales.split(",")]
    dataset = VOCSegmentation(ROOT / settings["data_root"], "val")
    names = dataset.names[:args.images]
    images = {name: dataset.load_image(name) for name in names}
    class_ids = {name: np.flatnonzero(dataset.cls_labels[dataset.names.index(name)]) for name in names}
    protocol = dict(scales=scales, flip=True, device=device, mixed_precision=True)
    baseline = MethodSettings().build(**protocol)
    baseline(model, images[names[0]], class_ids[names[0]])  # warm-up: first-call allocations are not the method's
    baseline_maps = {name: baseline(model, images[name], class_ids[name]) for name in names}

    rows = {}
    batched = f"iterative, batched ({args.batch_size} images)"
    for label, changes in {**METHODS, batched: METHODS["iterative"]}.items():
        method_settings = MethodSettings(**changes)
        method = method_settings.build(**protocol)
        counted = CountingClassifier(model, device)
        started = time.perf_counter()
        if label == batched:  # the passes of several images of one size in one forward per scale
            for start in range(0, len(names), args.batch_size):
                chunk = names[start:start + args.batch_size]
                infer_in_batches(method, counted, [images[n] for n in chunk], [class_ids[n] for n in chunk])
        for name in names if label != batched else []:
            extra = (baseline_maps[name],) if method_settings.split_unite else ()
            method(counted, images[name], class_ids[name], *extra)
        seconds = time.perf_counter() - started
        rows[label] = {"s / image": seconds / len(names), "forwards / image": counted.forwards / len(names),
                       "megapixels / image": counted.pixels / len(names) / 1e6,
                       "network share of time": counted.seconds / seconds}
    table = pd.DataFrame(rows).T
    base = table.loc["baseline"]
    table.insert(1, "× baseline", table["s / image"] / base["s / image"])
    table.insert(2, "× baseline, with its baseline maps",
                 [(s + (base["s / image"] if METHODS.get(label, {}).get("split_unite") else 0)) / base["s / image"]
                  for label, s in table["s / image"].items()])
    table.insert(4, "pixels × baseline", table["megapixels / image"] / base["megapixels / image"])
    print(f"class-conditional inference, profile {args.profile}, {len(names)} val images, scales {scales} x flip, "
          f"device {device}, weights: {source}")
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    print("paper: 40 against 13 minutes on VOC train (3.1 times); the issue's goal: at most 1.5 times")
    return 0


if __name__ == "__main__":
    sys.exit(main())
