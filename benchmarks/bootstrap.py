"""Seconds of the paired bootstrap's resampled mIoUs, vectorised (one matrix product of the draw
counts and the per-image confusions) against a loop that sums the drawn images' confusions one
resample at a time, on the same draws, for growing numbers of images (one run, printed).

    python benchmarks/bootstrap.py                    # 100, 500, 1464 images, 1,000 resamples
    python benchmarks/bootstrap.py --images 10582 --resamples 1000

The confusions are random 21 x 21 counts (the time does not depend on their values); the loop is
timed on its first --loop-resamples resamples and scaled to all of them.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[100, 500, 1464], help="images per row")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--loop-resamples", type=int, default=50, help="resamples the slow loop is timed on")
    args = parser.parse_args(argv)

    import numpy as np
    import pandas as pd

    from infercam.bootstrap import resample_counts, resampled_mious
    from infercam.metrics import NUM_LABELS, mean_iou

    rows = {}
    for images in args.images:
        confusions = np.random.default_rng(0).integers(0, 500, size=(images, NUM_LABELS, NUM_LABELS))
        counts = resample_counts(images, args.resamples, seed=0)
        start = time.perf_counter()
        fast = resampled_mious(confusions, counts)
        vectorised = time.perf_counter() - start
        timed = counts[:args.loop_resamples]
        start = time.perf_counter()
        slow = [mean_iou(confusions[np.repeat(np.arange(images), row)].sum(axis=0)) for row in timed]
        loop = (time.perf_counter() - start) * len(counts) / len(timed)
        rows[images] = {"vectorised (s)": vectorised, "loop (s, scaled)": loop, "loop / vectorised": loop / vectorised,
                        "same mIoUs": bool(np.allclose(fast[:len(timed)], slow))}
    print(f"{args.resamples} resamples of one row's mIoU")
    print(pd.DataFrame.from_dict(rows, orient="index").rename_axis("images").round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
