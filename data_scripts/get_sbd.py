"""Download SBD, then build VOC2012/SegmentationClassAug and ImageSets/Segmentation/train_aug.txt.

    python data_scripts/get_sbd.py --root data
    python data_scripts/get_sbd.py --root data --archive ~/Downloads/benchmark.tgz

Needs VOC2012 first (python data_scripts/get_voc.py). SBD lands in <root>/SBD/benchmark_RELEASE; its
train_noval.txt (reference only, not needed for the build) in <root>/SBD/. train_aug is
(SBD train ∪ SBD val ∪ VOC train) − VOC val; labels come from VOC's SegmentationClass where VOC has
one, else from SBD (see infercam/sbd.py). Overrides: --url/--md5/--sha256 or INFERCAM_SBD_URL/_MD5/
_SHA256; INFERCAM_SBD_TRAIN_NOVAL_URL/_MD5/_SHA256 for the list.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

try:
    import infercam  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infercam.download import DataSetupError, DownloadError
from infercam.sbd import TrainAugCountWarning, build_segmentation_class_aug
from infercam.sources import (DataLayout, add_source_options, fetch_and_extract, missing_voc_parts, obtain,
                              resolve_source, run_cli, source_from_args)

log = logging.getLogger("get_sbd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_options(parser, what="SBD's benchmark.tgz")
    parser.add_argument("--force", action="store_true", help="extract SBD again even if a previous run finished")
    parser.add_argument("--skip-train-noval", action="store_true",
                        help="do not fetch SBD's train_noval.txt (it is not needed to build train_aug)")
    return parser


def install_sbd(args: argparse.Namespace) -> None:
    layout = DataLayout(args.root)
    missing = missing_voc_parts(layout.voc_dir)
    if missing:
        raise DataSetupError(f"VOC2012 is not in {layout.voc_dir} (missing: {', '.join(missing)}); "
                             f"run first: python data_scripts/get_voc.py --root {args.root}")
    fetch_and_extract(source_from_args("sbd", args), layout.sbd_dir, layout.downloads_dir,
                      local_path=args.archive, force=args.force, retries=args.retries)
    if not (layout.sbd_dataset_dir / "cls").is_dir():
        raise DataSetupError(f"{layout.sbd_dataset_dir / 'cls'} is missing after extraction; "
                             f"is the archive SBD's benchmark.tgz?")
    if not args.skip_train_noval:
        train_noval = resolve_source("sbd_train_noval")
        try:
            obtain(train_noval, layout.sbd_dir / train_noval.filename, retries=args.retries)
        except DownloadError as error:  # optional: the build below does not use it
            log.warning("could not fetch the optional %s (%s); continuing", train_noval.filename, error)

    with warnings.catch_warnings():  # printed below with the other findings
        warnings.simplefilter("ignore", TrainAugCountWarning)
        result = build_segmentation_class_aug(layout.voc_dir, layout.sbd_dataset_dir)
    for warning in result.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    print(f"SBD is in {layout.sbd_dataset_dir}")
    print(f"SegmentationClassAug: {result.label_dir} ({result.written_from_voc} from VOC, "
          f"{result.written_from_sbd} from SBD, {result.already_present} already there)")
    print(f"train_aug: {result.train_aug_list} ({result.train_aug_count} images)")
    print(f"next: python data_scripts/get_psa_weights.py --root {args.root}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(install_sbd, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
