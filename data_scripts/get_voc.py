"""Download, verify and extract PASCAL VOC 2012 trainval into <root>/VOCdevkit/VOC2012.

    python data_scripts/get_voc.py --root data
    python data_scripts/get_voc.py --root data --archive ~/Downloads/VOCtrainval_11-May-2012.tar

Re-running is safe: a verified archive is not downloaded again, a partial one is resumed, and a
completed extraction is skipped. Address and checksum overrides: --url/--md5/--sha256 or
INFERCAM_VOC2012_URL/_MD5/_SHA256 (see infercam/sources.py).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

try:
    import infercam  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infercam.download import DataSetupError, extraction_complete
from infercam.sources import (DataLayout, add_source_options, fetch_and_extract, missing_voc_parts, run_cli,
                              source_from_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_options(parser, what="the VOC2012 trainval tar")
    parser.add_argument("--force", action="store_true", help="extract again even if a previous run finished")
    return parser


def install_voc(args: argparse.Namespace) -> None:
    layout = DataLayout(args.root)
    source = source_from_args("voc2012", args)
    extracted_by_hand = not missing_voc_parts(layout.voc_dir) and not extraction_complete(layout.root, source.name)
    if extracted_by_hand and not args.force and args.archive is None:
        print(f"VOC2012 is already present in {layout.voc_dir} (not extracted by this script; "
              f"--force downloads and extracts it again)")
    else:
        fetch_and_extract(source, layout.root, layout.downloads_dir, local_path=args.archive,
                          force=args.force, retries=args.retries)
        missing = missing_voc_parts(layout.voc_dir)
        if missing:
            raise DataSetupError(f"the archive did not produce a complete VOC2012 tree in {layout.voc_dir} "
                                 f"(missing: {', '.join(missing)}); is it the VOC2012 trainval tar?")
    print(f"VOC2012 is in {layout.voc_dir}")
    print(f"next: python data_scripts/get_sbd.py --root {args.root}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(install_voc, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
