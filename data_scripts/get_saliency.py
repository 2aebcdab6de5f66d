"""Install saliency maps for VOC 2012 as <root>/VOCdevkit/VOC2012/SaliencyMaps/<name>.png.

    python data_scripts/get_saliency.py --root data --archive ~/Downloads/saliency_maps.zip
    python data_scripts/get_saliency.py --root data --url DIRECT_LINK   (or INFERCAM_SALIENCY_URL)

The paper's segmentation stage uses OAA's saliency maps (one grey 0..255 PNG per image). They are
released on Google Drive, linked from the OAA, NSROM and EPS repositories, with no stable address
or checksum, so there is no default: give the archive (zip or tar, any folder layout) or a link.
PNGs named like VOC images (2007_000032.png) are taken from anywhere inside the archive; each is
checked to open as an image and stored single-channel (converted to grey 'L' if needed).
"""
from __future__ import annotations

import argparse
import io
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

try:
    import infercam  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from PIL import Image, UnidentifiedImageError

from infercam.download import DataSetupError, iter_archive_files
from infercam.sbd import read_name_list
from infercam.sources import DataLayout, add_source_options, obtain, run_cli, source_from_args

VOC_IMAGE_NAME = re.compile(r"^\d{4}_\d{6}$")
SALIENCY_RELEASES = (
    ("OAA", "https://github.com/PengtaoJiang/OAA-PyTorch"),
    ("NSROM", "https://github.com/NUST-Machine-Intelligence-Laboratory/nsrom"),
    ("EPS", "https://github.com/halbielee/EPS"),
)


def no_source_message(root: Path) -> str:
    releases = "\n".join(f"  {name:6} {url}" for name, url in SALIENCY_RELEASES)
    return ("no saliency maps given (no --archive, --url or INFERCAM_SALIENCY_URL).\n"
            "The paper uses OAA's saliency maps for VOC 2012: one grey 0..255 PNG per image, named like "
            "2007_000032.png.\nThey are released on Google Drive, linked from the READMEs of\n"
            f"{releases}\nand have no stable direct address or published checksum. Download the archive "
            "(zip or tar) by hand, then run:\n"
            f"  python data_scripts/get_saliency.py --root {root} --archive /path/to/saliency_maps.zip")


def saliency_image_name(member_name: str) -> str | None:
    """VOC image name for an archive member like ``any/folder/2007_000032.png``; None for other files."""
    path = PurePosixPath(member_name.replace("\\", "/"))
    if path.suffix.lower() != ".png" or path.name.startswith("."):
        return None
    return path.stem if VOC_IMAGE_NAME.match(path.stem) else None


def to_grey(image: Image.Image) -> Image.Image:
    """A single-channel 8-bit copy of a saliency map (16-bit maps are rescaled to 0..255)."""
    if image.mode == "L":
        return image.copy()
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 / 65535.0 if values.max() > 255 else 1.0
        return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), mode="L")
    return image.convert("L")


def install_saliency_maps(archive: Path, saliency_dir: Path) -> tuple[int, list[str]]:
    """Write every VOC-named PNG in ``archive`` to ``saliency_dir``; return (count, rejected members)."""
    saliency_dir.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    rejected: list[str] = []
    for member_name, stream in iter_archive_files(archive):
        name = saliency_image_name(member_name)
        if name is None or name in written:
            continue
        try:
            with Image.open(io.BytesIO(stream.read())) as image:
                grey = to_grey(image)
        except (UnidentifiedImageError, OSError, ValueError) as error:
            rejected.append(f"{member_name} ({error})")
            continue
        temporary = saliency_dir / f".{name}.tmp{os.getpid()}.png"
        grey.save(temporary)
        os.replace(temporary, saliency_dir / f"{name}.png")
        written.add(name)
    return len(written), rejected


def coverage_report(voc_dir: Path, saliency_dir: Path) -> list[str]:
    """How many images of each VOC list present on disk have a saliency map."""
    lines = []
    for list_name in ("train_aug", "train", "val"):
        list_path = voc_dir / "ImageSets" / "Segmentation" / f"{list_name}.txt"
        if list_path.is_file():
            names = read_name_list(list_path)
            covered = sum((saliency_dir / f"{name}.png").exists() for name in names)
            lines.append(f"{list_name}: {covered}/{len(names)} images have a saliency map")
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_options(parser, what="the saliency-map archive")
    return parser


def install_saliency(args: argparse.Namespace) -> None:
    layout = DataLayout(args.root)
    source = source_from_args("saliency", args)
    if args.archive is None and not source.url:
        raise DataSetupError(no_source_message(args.root))
    archive = obtain(source, layout.downloads_dir / source.filename, local_path=args.archive, retries=args.retries)
    count, rejected = install_saliency_maps(archive, layout.saliency_dir)
    for problem in rejected:
        print(f"WARNING: skipped unreadable {problem}", file=sys.stderr)
    if count == 0:
        raise DataSetupError(f"{archive} holds no PNG named like a VOC image (e.g. 2007_000032.png)")
    print(f"{count} saliency maps are in {layout.saliency_dir}")
    for line in coverage_report(layout.voc_dir, layout.saliency_dir):
        print(line)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(install_saliency, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
