"""Where the real data comes from, where it lands, and the command-line glue shared by data_scripts/.

Registry (name -> address, checksum, file name). Every address and checksum can be overridden, in
this order of precedence: command-line option (``--url``, ``--md5``, ``--sha256``), then the
environment variables below, then the built-in value. A checksum set to ``none`` disables that check
(an empty variable counts as unset).

=================  ==============================================================================
name               environment variables
=================  ==============================================================================
voc2012            INFERCAM_VOC2012_URL, INFERCAM_VOC2012_MD5, INFERCAM_VOC2012_SHA256
sbd                INFERCAM_SBD_URL, INFERCAM_SBD_MD5, INFERCAM_SBD_SHA256
sbd_train_noval    INFERCAM_SBD_TRAIN_NOVAL_URL, INFERCAM_SBD_TRAIN_NOVAL_MD5, ..._SHA256
psa_res38_cls      INFERCAM_PSA_RES38_CLS_URL, INFERCAM_PSA_RES38_CLS_MD5, ..._SHA256
psa_res38_aff      INFERCAM_PSA_RES38_AFF_URL, INFERCAM_PSA_RES38_AFF_MD5, ..._SHA256
resnet101_imagenet INFERCAM_RESNET101_IMAGENET_URL, ..._MD5, ..._SHA256
saliency           INFERCAM_SALIENCY_URL, INFERCAM_SALIENCY_MD5, INFERCAM_SALIENCY_SHA256
=================  ==============================================================================

The psa weights and the saliency maps have no published checksum; the weights are checked to be
``torch.save`` files instead (see :func:`infercam.download.check_torch_file`). The saliency maps
have no default address at all (see data_scripts/get_saliency.py).

Layout under ``--root`` (default ``data``), see :class:`DataLayout`::

    <root>/downloads/                     archives as downloaded
    <root>/VOCdevkit/VOC2012/             VOC (+ SegmentationClassAug/, SaliencyMaps/,
                                          ImageSets/Segmentation/train_aug.txt)
    <root>/SBD/benchmark_RELEASE/dataset/ SBD (cls/*.mat, img/*.jpg, train.txt, val.txt)
    <root>/weights/                       res38_cls.pth, res38_aff.pth, resnet101-63fe2227.pth
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from infercam.download import (DEFAULT_RETRIES, DataSetupError, copy_atomic, download, extract_archive,
                               extraction_complete, google_drive_url, verify_file)

log = logging.getLogger(__name__)

DISABLED_CHECKSUM = "none"


@dataclass(frozen=True)
class Source:
    """One downloadable file: ``url``/``md5``/``sha256`` are None where unknown."""

    name: str
    url: str | None
    md5: str | None
    sha256: str | None
    filename: str
    description: str

    @property
    def env_prefix(self) -> str:
        return f"INFERCAM_{self.name.upper()}"

    def override_hint(self) -> str:
        """How to override this source's checksum (ends checksum error messages)."""
        return (f"override the expected checksum with --md5/--sha256 or {self.env_prefix}_MD5 / "
                f"{self.env_prefix}_SHA256 ('{DISABLED_CHECKSUM}' skips the check)")

    def url_hint(self) -> str:
        return f"give a new address with --url or {self.env_prefix}_URL"


SOURCES: dict[str, Source] = {source.name: source for source in (
    Source("voc2012", "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
           "6cd6e144f989b92b3379bac3b3de84fd", None, "VOCtrainval_11-May-2012.tar",
           "PASCAL VOC 2012 train+val images, annotations and segmentation labels (about 2 GB)"),
    Source("sbd", "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/"
                  "benchmark.tgz",
           "82b4d87ceb2ed10f6038a1cba92111cb", None, "benchmark.tgz",
           "Semantic Boundaries Dataset (Hariharan et al. 2011): extra segmentation labels (1.4 GB)"),
    Source("sbd_train_noval", "http://home.bharathh.info/pubs/codes/SBD/train_noval.txt",
           "79bff800c5f0b1ec6b21080a3c066722", None, "train_noval.txt",
           "SBD training list without the VOC2012 val images (reference only)"),
    Source("psa_res38_cls", google_drive_url("1xESB7017zlZHqxEWuh1Rb89UhjTGIKOA"), None, None,
           "res38_cls.pth", "psa's trained ResNet-38 classifier (the CAM baseline), about 400 MB"),
    Source("psa_res38_aff", google_drive_url("1mFvTH3siw0SS0vqPH0o9N3cI_ISQacwt"), None, None,
           "res38_aff.pth", "psa's trained AffinityNet (ResNet-38), about 400 MB"),
    Source("resnet101_imagenet", "https://download.pytorch.org/models/resnet101-63fe2227.pth", None, None,
           "resnet101-63fe2227.pth", "torchvision's ImageNet ResNet-101, where DeepLab v2 starts, about 170 MB"),
    Source("saliency", None, None, None, "saliency_maps.archive",
           "OAA saliency maps for VOC (grey 0..255 PNG per image); no stable public address"),
)}


def _override(option: str | None, environ: Mapping[str, str], variable: str, default: str | None) -> str | None:
    """Command-line value, else non-empty environment value, else the default; 'none' -> None."""
    value = option if option is not None else (environ.get(variable) or default)
    if value is not None and value.strip().lower() == DISABLED_CHECKSUM:
        return None
    return value


def resolve_source(name: str, *, url: str | None = None, md5: str | None = None, sha256: str | None = None,
                   environ: Mapping[str, str] | None = None) -> Source:
    """The registry entry ``name`` with command-line and environment overrides applied."""
    source = SOURCES[name]
    environ = os.environ if environ is None else environ
    return dataclasses.replace(
        source,
        url=_override(url, environ, f"{source.env_prefix}_URL", source.url),
        md5=_override(md5, environ, f"{source.env_prefix}_MD5", source.md5),
        sha256=_override(sha256, environ, f"{source.env_prefix}_SHA256", source.sha256),
    )


@dataclass(frozen=True)
class DataLayout:
    """Paths of everything the data scripts produce under one root directory."""

    root: Path

    @property
    def downloads_dir(self) -> Path:
        return self.root / "downloads"

    @property
    def voc_dir(self) -> Path:
        return self.root / "VOCdevkit" / "VOC2012"

    @property
    def sbd_dir(self) -> Path:
        return self.root / "SBD"

    @property
    def sbd_dataset_dir(self) -> Path:
        return self.sbd_dir / "benchmark_RELEASE" / "dataset"

    @property
    def weights_dir(self) -> Path:
        return self.root / "weights"

    @property
    def saliency_dir(self) -> Path:
        return self.voc_dir / "SaliencyMaps"


# Parts of an extracted VOC2012 tree that later steps rely on.
VOC_REQUIRED_PARTS: tuple[str, ...] = (
    "JPEGImages", "SegmentationClass", "Annotations", "ImageSets/Segmentation/train.txt",
    "ImageSets/Segmentation/val.txt",
)


def missing_voc_parts(voc_dir: str | Path) -> list[str]:
    """The entries of :data:`VOC_REQUIRED_PARTS` absent from ``voc_dir`` (empty when VOC is usable)."""
    return [part for part in VOC_REQUIRED_PARTS if not (Path(voc_dir) / part).exists()]


def obtain(source: Source, dest: str | Path, *, local_path: str | Path | None = None, copy_local: bool = False,
           validate: Callable[[Path], None] | None = None, retries: int = DEFAULT_RETRIES) -> Path:
    """Path of a verified copy of ``source``: the user's ``local_path`` or a download to ``dest``.

    A ``local_path`` is checked (checksum, ``validate``) and used in place, or copied to ``dest``
    when ``copy_local`` (for files that must live at a fixed place, like weights).
    """
    if local_path is not None:
        local_path = Path(local_path).expanduser()
        verify_file(local_path, source.md5, source.sha256, source=str(local_path),
                    override_hint=source.override_hint())
        if validate is not None:
            validate(local_path)
        return copy_atomic(local_path, dest) if copy_local else local_path
    if not source.url:
        raise DataSetupError(f"no address is known for {source.name} ({source.description}): "
                             f"pass --url or set {source.env_prefix}_URL, or pass --archive PATH")
    return download(source.url, dest, md5=source.md5, sha256=source.sha256, validate=validate,
                    override_hint=source.override_hint(), url_hint=source.url_hint(), retries=retries)


def fetch_and_extract(source: Source, target_dir: str | Path, downloads_dir: str | Path, *,
                      local_path: str | Path | None = None, force: bool = False,
                      retries: int = DEFAULT_RETRIES) -> Path:
    """Download (or take ``local_path``), verify and extract ``source`` into ``target_dir``.

    Nothing is downloaded when a previous extraction of this source completed (its marker is
    ``<target_dir>/.<source.name>.extracted``), unless ``force``.
    """
    if not force and extraction_complete(target_dir, source.name):
        log.info("%s already extracted into %s", source.filename, target_dir)
        return Path(target_dir)
    archive = obtain(source, Path(downloads_dir) / source.filename, local_path=local_path, retries=retries)
    return extract_archive(archive, target_dir, marker_name=source.name, force=force)


def source_from_args(name: str, args: argparse.Namespace) -> Source:
    """:func:`resolve_source` with the ``--url``/``--md5``/``--sha256`` options of :func:`add_source_options`."""
    return resolve_source(name, url=args.url, md5=args.md5, sha256=args.sha256)


def add_source_options(parser: argparse.ArgumentParser, *, what: str) -> None:
    """The options every data script shares; ``what`` names the file they refer to in the help."""
    parser.add_argument("--root", type=Path, default=Path("data"),
                        help="data directory (default: data); see infercam.sources.DataLayout")
    parser.add_argument("--url", help=f"download {what} from this address instead of the default")
    parser.add_argument("--md5", help=f"expected md5 of {what} ('{DISABLED_CHECKSUM}' skips the check)")
    parser.add_argument("--sha256", help=f"expected sha256 of {what} ('{DISABLED_CHECKSUM}' skips the check)")
    parser.add_argument("--archive", type=Path, metavar="PATH",
                        help=f"use this already-downloaded copy of {what} instead of downloading")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES,
                        help=f"retries after a network error, with backoff (default: {DEFAULT_RETRIES})")


def run_cli(body: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser,
            argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run ``body(args)``; a :class:`DataSetupError` is printed (no traceback), exit code 1."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        body(args)
    except DataSetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
