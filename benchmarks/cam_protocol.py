"""What each part of the baseline CAM protocol buys: val mIoU and time of scales and flips.

    python benchmarks/cam_protocol.py                  # cpu profile's classifier, first 100 val images
    python benchmarks/cam_protocol.py --images 50 --protocols "1.0,0.5:flip" "1.0,0.5" "1.0"

How the offline profiles' protocol was chosen (on the baseline alone, never on the method's gain):
each protocol infers the baseline CAMs of the same images with the profile's trained classifier
(run notebooks/01_baseline_cam.ipynb first) and is scored as the CAM tables score it, at its best
background score. Prints a table and each protocol's mIoU and time against the first one's.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _classifier import benchmark_classifier  # noqa: E402  (beside this script)

DEFAULT_PROTOCOLS = ["1.0,0.5,1.5:flip", "1.0,0.5:flip", "1.0,0.5", "1.0:flip", "1.0"]


def parse_protocol(text: str) -> tuple[list[float], bool]:
    """``"1.0,0.5:flip"`` -> ([1.0, 0.5], True); without ``:flip`` no flips."""
    scales, _, flip = text.partition(":")
    if flip not in ("", "flip"):
        raise ValueError(f"protocol {text!r}: write scales, optionally followed by ':flip' (e.g. 1.0,0.5:flip)")
    return [float(s) for s in scales.split(",")], flip == "flip"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--images", type=int, default=100, help="the first val images")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--protocols", nargs="+", default=DEFAULT_PROTOCOLS, help="scales[:flip] each")
    args = parser.parse_args(argv)

    from infercam.cam import infer_cams
    from infercam.cam_analysis import evaluate_cams
    from infercam.config import load_profile, resolve_device
    from infercam.datasets import VOCSegmentation

    settings = load_profile(args.profile)
    device = resolve_device(args.device)
    model, source = benchmark_classifier(settings, device)
    if source == "random weights":
        sys.exit(f"error: no trained classifier in {settings['work_dir']}: run notebooks/01_baseline_cam.ipynb "
                 f"for the {args.profile} profile first (CAMs of random weights score nothing)")
    dataset = VOCSegmentation(ROOT / settings["data_root"], "val")
    dataset.names = dataset.names[:args.images]
    rows = {}
    for protocol in args.protocols:
        scales, flip = parse_protocol(protocol)
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            infer_cams(model, dataset, out, scales=scales, flip=flip, device=device, mixed_precision="auto",
                       progress=False)
            seconds = time.perf_counter() - started
            best = evaluate_cams(dataset, out, progress=False).best
        rows[protocol] = {"val mIoU (%)": 100 * best["miou"], "best t": best["threshold"],
                          "s / image": seconds / len(dataset.names)}
    table = pd.DataFrame(rows).T
    reference = table.index[0]
    table["Δ mIoU vs first"] = table["val mIoU (%)"] - table.loc[reference, "val mIoU (%)"]
    table["× time vs first"] = table["s / image"] / table.loc[reference, "s / image"]
    print(f"{len(dataset.names)} val images, classifier {source}, device {device}")
    print(table.round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
