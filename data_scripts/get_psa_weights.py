"""Download psa's trained ResNet-38 weights (res38_cls.pth, res38_aff.pth) and the ImageNet ResNet-101
that the segmentation network starts from (torchvision's resnet101-63fe2227.pth) into <root>/weights/.

    python data_scripts/get_psa_weights.py --root data
    python data_scripts/get_psa_weights.py --root data --weights cls --archive ~/Downloads/res38_cls.pth

They come from Google Drive without a published checksum, so each file is checked to be a
torch.save file (zip or pickle), never an HTML page. --url/--md5/--sha256/--archive refer to one
file, so they need --weights cls, aff or deeplab. Environment overrides:
INFERCAM_PSA_RES38_CLS_URL/_MD5/_SHA256 and INFERCAM_PSA_RES38_AFF_URL/_MD5/_SHA256.
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

from infercam.download import DataSetupError, check_torch_file
from infercam.sources import DataLayout, add_source_options, obtain, run_cli, source_from_args

SOURCE_NAMES = {"cls": "psa_res38_cls", "aff": "psa_res38_aff", "deeplab": "resnet101_imagenet"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_options(parser, what="the selected weights file")
    parser.add_argument("--weights", choices=(*SOURCE_NAMES, "all"), default="all",
                        help="which weights: cls (classifier, for CAMs), aff (AffinityNet), deeplab (ImageNet "
                             "ResNet-101 for the segmentation network) or all (default)")
    return parser


def install_weights(args: argparse.Namespace) -> None:
    overrides = [option for option in ("url", "md5", "sha256", "archive") if getattr(args, option) is not None]
    if overrides and args.weights == "all":
        raise DataSetupError(f"--{', --'.join(overrides)} name a single file: add --weights cls, aff or deeplab")
    layout = DataLayout(args.root)
    keys = list(SOURCE_NAMES) if args.weights == "all" else [args.weights]
    for key in keys:
        source = source_from_args(SOURCE_NAMES[key], args)
        path = obtain(source, layout.weights_dir / source.filename, local_path=args.archive, copy_local=True,
                      validate=check_torch_file, retries=args.retries)
        print(f"{source.filename}: {path}")
    print(f"next (saliency maps, only for the segmentation stage): "
          f"python data_scripts/get_saliency.py --root {args.root} --archive PATH")


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(install_weights, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
