"""Generate mini-VOC, the offline stand-in for PASCAL VOC 2012, for a profile.

    python data_scripts/make_minivoc.py --profile cpu        # into the profile's data_root
    python data_scripts/make_minivoc.py --profile smoke --data-root /tmp/minivoc/VOC2012
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    import infercam  # noqa: F401
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infercam.config import load_profile, resolve_path
from infercam.minivoc import generate_minivoc, is_complete, minivoc_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", help="profile name (profiles/<name>.yaml) or path")
    parser.add_argument("--data-root", help="output VOC2012 folder (default: the profile's data_root)")
    parser.add_argument("--seed", type=int, help="default: the profile's seed")
    parser.add_argument("--workers", type=int, default=2, help="processes (the result does not depend on it)")
    args = parser.parse_args(argv)

    profile = load_profile(args.profile)
    seed = profile["seed"] if args.seed is None else args.seed
    root = resolve_path(args.data_root or profile["data_root"])
    config = minivoc_config(profile["profile"], seed)
    if is_complete(root, config):
        print(f"mini-VOC is already complete in {root}")
        return 0
    start = time.perf_counter()
    generate_minivoc(root, config, workers=args.workers)
    print(f"mini-VOC ({config.num_train} train, {config.num_val} val, {config.num_train + config.num_aug} train_aug, "
          f"{config.image_size} px) written to {root} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
