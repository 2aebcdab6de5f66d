"""Seconds per image of the random walk and of the dense CRF on this machine, and the walk's memory
against the dense N x N matrix psa squares, for growing image sizes (one run, printed).

    python benchmarks/random_walk.py                  # 256, 384, 512, 768 px
    python benchmarks/random_walk.py --sizes 384 1024 --classes 3

The affinities are random (time and memory do not depend on their values); the walk is psa's
(radius 5 at stride 8, beta 8, t = 2 ** 8) on [background; classes] scores, as the pseudo-label step
runs it (infercam.timing.time_walk_and_crf: from the full-size maps to the walked scores). Memory is
the peak of the walk's numpy/scipy allocations (tracemalloc), beside what psa's dense float32 matrix
would take.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 384, 512, 768], help="image sides in pixels")
    parser.add_argument("--classes", type=int, default=2, help="object classes in the image (plus background)")
    args = parser.parse_args(argv)

    import numpy as np
    import pandas as pd
    import torch

    from infercam.affinity import FEATURE_STRIDE, pair_indices
    from infercam.timing import time_walk_and_crf

    rng = np.random.default_rng(0)

    def measure(size: int, trace_memory: bool) -> dict:
        grid = -(-size // FEATURE_STRIDE)
        first, second = pair_indices(grid, grid)
        affinities = torch.from_numpy(rng.random(len(first), dtype=np.float32))
        cams = rng.random((args.classes, size, size), dtype=np.float32)
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        return {"grid": f"{grid} x {grid}", "pairs": len(first),
                **time_walk_and_crf(image, cams, affinities, first, second, (grid, grid), trace_memory=trace_memory),
                "psa dense T MiB": (grid * grid) ** 2 * 4 / 2 ** 20}

    measure(32, trace_memory=False)  # warm-up: the first walk imports scipy, which is not the walk's cost
    rows = {f"{size} px": measure(size, trace_memory=True) for size in args.sizes}
    columns = ["grid", "pairs", "random walk s", "walk peak MiB", "psa dense T MiB", "CRF s"]
    table = pd.DataFrame(rows).T[columns].rename(columns={"random walk s": "walk s"})
    print(f"random walk (radius 5, beta 8, t = 256) and dense CRF (psa: 10 iterations), {1 + args.classes} labels, CPU")
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    first_row, last_row = table.iloc[0], table.iloc[-1]
    pixel_ratio = (int(table.index[-1].split()[0]) / int(table.index[0].split()[0])) ** 2
    print(f"from {table.index[0]} to {table.index[-1]} ({pixel_ratio:.1f}x the pixels): walk memory "
          f"x{last_row['walk peak MiB'] / first_row['walk peak MiB']:.1f}, psa's dense matrix "
          f"x{last_row['psa dense T MiB'] / first_row['psa dense T MiB']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
