"""The paper profile rehearsed on fakes: every real download written in its real format, served from
127.0.0.1 and fetched with the real ``make data-paper``, as a user behind a mirror would.

    python -m infercam.rehearsal --profile rehearsal    # what `make rehearsal` runs before the notebooks

The fakes (in ``<data root>/mirror/``, named as the real files are):

* ``VOCtrainval_11-May-2012.tar``: ``VOCdevkit/VOC2012`` with JPEGImages and Annotations of every
  image, SegmentationClass/SegmentationObject and ImageSets/Segmentation/{train,val,trainval}.txt
  for VOC's own splits. Scenes are mini-VOC's (:func:`infercam.minivoc.compose_scene`), named like
  VOC images; each split holds a 1-, a 2- and a 3-class image, so every branch of the methods runs.
* ``benchmark.tgz``: SBD's ``benchmark_RELEASE/dataset`` (cls/*.mat, img/*.jpg, train.txt, val.txt)
  with images only SBD labels (they join train_aug), one VOC train and one VOC val image (which
  train_aug must leave out); ``train_noval.txt``.
* ``saliency_maps.zip``: a grey PNG per image, as OAA's maps are distributed.
* ``res38_cls.pth``, ``res38_aff.pth``: random values under psa's names and shapes
  (:mod:`infercam.models.resnet38d`, no ``num_batches_tracked``, as psa's files);
  ``resnet101-63fe2227.pth``: a random torchvision ResNet-101 state dict.

Every file's address and md5/sha256 reach the data scripts through their environment overrides
(:mod:`infercam.sources`), never through a code path of their own.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from infercam.config import PROJECT_ROOT, load_profile, resolve_path
from infercam.download import compute_checksums
from infercam.minivoc import MiniVOCConfig, annotation_xml, compose_scene
from infercam.sources import SOURCES, DataLayout
from infercam.voc import save_label_png

IMAGE_SIZE = 64
CLASS_COUNTS = (1, 2, 3)  # every split holds one image of each: the 1-, 2- and 3+-class branches
# VOC-style names (saliency archives are matched by them): VOC's train, VOC's val, and SBD's extras
SPLIT_YEARS = {"train": 2007, "val": 2008, "sbd": 2009}
REHEARSAL_MARKER = ".infercam-rehearsal"  # in the folders a rehearsal may empty
# registry name (infercam.sources) -> the fake's file name in the mirror
DATASET_FILES = {"voc2012": SOURCES["voc2012"].filename, "sbd": SOURCES["sbd"].filename,
                 "sbd_train_noval": SOURCES["sbd_train_noval"].filename, "saliency": "saliency_maps.zip"}
WEIGHT_FILES = {name: SOURCES[name].filename for name in ("psa_res38_cls", "psa_res38_aff", "resnet101_imagenet")}


@dataclass(frozen=True)
class FakeImage:
    name: str
    split: str  # "train", "val" (VOC's lists) or "sbd" (only SBD labels it: train_aug)
    classes: int


def fake_images() -> list[FakeImage]:
    return [FakeImage(f"{year}_{index:06d}", split, classes)
            for split, year in SPLIT_YEARS.items() for index, classes in enumerate(CLASS_COUNTS, start=1)]


def _scene(image: FakeImage, seed: int):
    weights = tuple(float(count == image.classes) for count in CLASS_COUNTS)
    config = replace(MiniVOCConfig(seed=seed, image_size=IMAGE_SIZE), class_count_weights=weights, four_class_share=0.0)
    return compose_scene(np.random.default_rng([seed, *map(ord, image.name)]), config)


def _jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def _lines(names) -> str:
    return "".join(f"{name}\n" for name in names)


def write_fake_datasets(staging: Path, mirror: Path, seed: int = 0) -> None:
    """The VOC tar, SBD's benchmark.tgz and train_noval.txt, and a saliency zip, into ``mirror``."""
    images = fake_images()
    voc, sbd = staging / "VOCdevkit" / "VOC2012", staging / "benchmark_RELEASE" / "dataset"
    saliency = io.BytesIO()
    with zipfile.ZipFile(saliency, "w") as saliency_zip:
        for image in images:
            scene = _scene(image, seed)
            jpeg = _jpeg(scene.image)
            _write(voc / "JPEGImages" / f"{image.name}.jpg", jpeg)
            annotation = voc / "Annotations" / f"{image.name}.xml"
            annotation.parent.mkdir(parents=True, exist_ok=True)
            annotation_xml(image.name, scene).write(annotation, encoding="utf-8")
            if image.split != "sbd":
                for folder, label in (("SegmentationClass", scene.label),
                                      ("SegmentationObject", np.where(scene.label == 255, 255, scene.label > 0))):
                    (voc / folder).mkdir(parents=True, exist_ok=True)
                    save_label_png(label, voc / folder / f"{image.name}.png")
            # SBD labels have no void band: its boundaries are object pixels
            cls = np.where(scene.label == 255, 0, scene.label).astype(np.uint8)
            (sbd / "cls").mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(sbd / "cls" / f"{image.name}.mat",
                             {"GTcls": {"Segmentation": cls, "CategoriesPresent": np.unique(cls[cls > 0])}})
            _write(sbd / "img" / f"{image.name}.jpg", jpeg)
            grey = io.BytesIO()
            Image.fromarray(np.where(scene.label > 0, 255, 0).astype(np.uint8), mode="L").save(grey, format="PNG")
            saliency_zip.writestr(f"saliency_maps/{image.name}.png", grey.getvalue())
    names = {split: [i.name for i in images if i.split == split] for split in SPLIT_YEARS}
    lists = voc / "ImageSets" / "Segmentation"
    _write(lists / "train.txt", _lines(names["train"]))
    _write(lists / "val.txt", _lines(names["val"]))
    _write(lists / "trainval.txt", _lines(names["train"] + names["val"]))
    # SBD's lists overlap VOC's as the real ones do: train_aug = SBD ∪ VOC train − VOC val
    _write(sbd / "train.txt", _lines(names["sbd"][:2] + names["train"][:1]))
    _write(sbd / "val.txt", _lines(names["sbd"][2:] + names["val"][:1]))

    mirror.mkdir(parents=True, exist_ok=True)
    with tarfile.open(mirror / DATASET_FILES["voc2012"], "w") as tar:
        tar.add(staging / "VOCdevkit", arcname="VOCdevkit")
    with tarfile.open(mirror / DATASET_FILES["sbd"], "w:gz") as tar:
        tar.add(staging / "benchmark_RELEASE", arcname="benchmark_RELEASE")
    _write(mirror / DATASET_FILES["sbd_train_noval"], _lines(names["sbd"][:2]))
    _write(mirror / DATASET_FILES["saliency"], saliency.getvalue())


def write_fake_weights(mirror: Path, seed: int = 0) -> None:
    """psa's two ResNet-38 files and torchvision's ImageNet ResNet-101, with random values."""
    import torch
    import torchvision

    from infercam.models import ResNet38Affinity, ResNet38Classifier

    torch.manual_seed(seed)
    mirror.mkdir(parents=True, exist_ok=True)
    for network, source in ((ResNet38Classifier(), "psa_res38_cls"), (ResNet38Affinity(), "psa_res38_aff")):
        state = {key: value for key, value in network.state_dict().items() if not key.endswith("num_batches_tracked")}
        torch.save(state, mirror / WEIGHT_FILES[source])
    torch.save(torchvision.models.resnet101(weights=None).state_dict(), mirror / WEIGHT_FILES["resnet101_imagenet"])


@contextmanager
def serve_directory(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port); yields the base address."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def mirror_environment(mirror: Path, base_url: str, files: dict[str, str] | None = None) -> dict[str, str]:
    """The data scripts' URL and checksum overrides (INFERCAM_<NAME>_URL/_MD5/_SHA256) for the fakes
    ``files`` (default: all of them) in the mirror."""
    environment = {}
    for name, filename in (files or {**DATASET_FILES, **WEIGHT_FILES}).items():
        checksums = compute_checksums(mirror / filename)
        prefix = SOURCES[name].env_prefix
        environment.update({f"{prefix}_URL": f"{base_url}/{filename}", f"{prefix}_MD5": checksums["md5"],
                            f"{prefix}_SHA256": checksums["sha256"]})
    return environment


def rehearsal_data_root(profile: dict) -> Path:
    """The ``--root`` of the data scripts for a profile: its data_root is ``<root>/VOCdevkit/VOC2012``,
    and its weights and saliency maps must lie where the scripts put them."""
    layout = DataLayout(resolve_path(profile["data_root"]).parents[1])
    expected = {"data_root": layout.voc_dir, "saliency_dir": layout.saliency_dir,
                "classifier_weights": layout.weights_dir / SOURCES["psa_res38_cls"].filename,
                "affinity_weights": layout.weights_dir / SOURCES["psa_res38_aff"].filename,
                "seg_initial_weights": layout.weights_dir / SOURCES["resnet101_imagenet"].filename}
    wrong = {key: str(path) for key, path in expected.items() if resolve_path(profile[key]) != path}
    if wrong:
        raise ValueError(f"profile {profile['profile']!r}: the data scripts put these files elsewhere; "
                         f"set {wrong} (relative to the repository root is fine)")
    return layout.root


def _start_afresh(folder: Path) -> None:
    """Empty ``folder`` if a rehearsal made it (its marker file), create it marked; refuse others."""
    marker = folder / REHEARSAL_MARKER
    if folder.exists() and not marker.exists():
        raise ValueError(f"{folder} exists and was not made by a rehearsal: the rehearsal starts from an empty "
                         f"folder and deletes nothing else; choose other paths in the profile or remove it yourself")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    marker.touch()


def rehearse_data(profile_name: str, seed: int = 0) -> Path:
    """Start from nothing: write the fakes, serve them, run ``make data-paper`` into the profile's data."""
    profile = load_profile(profile_name)
    data_root = rehearsal_data_root(profile)
    for folder in (data_root, resolve_path(profile["work_dir"])):
        _start_afresh(folder)
    mirror = data_root / "mirror"
    write_fake_datasets(data_root / "staging", mirror, seed)
    shutil.rmtree(data_root / "staging")
    write_fake_weights(mirror, seed)
    with serve_directory(mirror) as base_url:
        environment = {**os.environ, **mirror_environment(mirror, base_url)}
        print(f"serving the fakes of {mirror} at {base_url}", flush=True)
        subprocess.run(["make", "data-paper", f"DATA_ROOT={data_root}"], cwd=PROJECT_ROOT, env=environment,
                       check=True)
    return data_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infercam.rehearsal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="rehearsal", help="a profile extending paper (default: rehearsal)")
    parser.add_argument("--seed", type=int, default=0, help="of the fake images and weights")
    args = parser.parse_args(argv)
    try:
        data_root = rehearse_data(args.profile, args.seed)
    except (ValueError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"the rehearsal's data is in {data_root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
