"""SBD labels -> ``SegmentationClassAug`` and the 10582-image ``train_aug`` list.

``train_aug`` = (SBD train ∪ SBD val ∪ VOC train) − VOC val, sorted; 10582 names with the real lists.

``VOC2012/SegmentationClassAug/<name>.png`` is written for every ``train_aug`` and every VOC ``val``
image, as a VOC palette PNG (class index per pixel, 255 = void). Where VOC has its own
``SegmentationClass/<name>.png`` (all of VOC train and val), that file is used as is: it is the
official annotation and carries the 255 void borders around objects that the evaluation ignores.
Everywhere else the label is SBD's ``cls/<name>.mat`` (``GTcls.Segmentation``), which holds only
0..20 and has no void label. (Some mirrored SegmentationClassAug.zip files use SBD's labels even
where VOC has one; this build prefers the official annotation.)

The build resumes: PNGs already present are kept (each one is written to a temporary name and
renamed, so a present PNG is complete), and ``train_aug.txt`` is written last, atomically.
"""
from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from tqdm import tqdm

from infercam.download import DataSetupError, copy_atomic, write_text_atomic
from infercam.voc import NUM_CLASSES, save_label_png

log = logging.getLogger(__name__)

# Sizes of the real lists, to tell the real data from small fakes when checking the result.
VOC_TRAIN_COUNT = 1464
VOC_VAL_COUNT = 1449
SBD_TRAIN_COUNT = 8498
SBD_VAL_COUNT = 2857
TRAIN_AUG_COUNT = 10582


class TrainAugCountWarning(UserWarning):
    """train_aug built from the real VOC lists does not have the expected 10582 names."""


def _unwrap_single(value: Any) -> Any:
    """Strip the (1, 1) object arrays scipy wraps MATLAB values in when not ``squeeze_me``."""
    while isinstance(value, np.ndarray) and value.dtype == object:
        if value.size != 1:
            raise ValueError(f"expected a single value, found an array of {value.size}")
        value = value.reshape(-1)[0]
    return value


def _struct_field(struct: Any, name: str) -> Any:
    """Field ``name`` of a MATLAB struct as loaded with any ``struct_as_record``/``squeeze_me`` setting.

    ``struct_as_record=False`` gives an object with attributes; ``True`` gives a structured numpy
    array; without ``squeeze_me`` either comes wrapped in (1, 1) object arrays.
    """
    struct = _unwrap_single(struct)
    if not isinstance(struct, (np.ndarray, np.void)):
        if not hasattr(struct, name):
            raise KeyError(name)
        return _unwrap_single(getattr(struct, name))
    record = np.asarray(struct)
    if record.dtype.names is None or name not in record.dtype.names:
        raise KeyError(name)
    return _unwrap_single(record[name])


def label_from_sbd_mat(mat: Mapping[str, Any], source: str = "SBD .mat") -> np.ndarray:
    """Class-index map (H, W) uint8 from a loaded SBD ``cls`` file (``GTcls.Segmentation``, 0..20)."""
    if "GTcls" not in mat:
        raise DataSetupError(f"{source} has no GTcls struct (keys: {sorted(k for k in mat if not k.startswith('__'))})")
    try:
        label = np.asarray(_struct_field(mat["GTcls"], "Segmentation"))
    except (KeyError, ValueError) as error:
        raise DataSetupError(f"{source}: GTcls has no usable Segmentation field ({error})") from error
    if label.ndim != 2 or label.size == 0:
        raise DataSetupError(f"{source}: GTcls.Segmentation has shape {label.shape}, expected (H, W)")
    if label.min() < 0 or label.max() > NUM_CLASSES:
        raise DataSetupError(f"{source}: label values {label.min()}..{label.max()} outside 0..{NUM_CLASSES}")
    return label.astype(np.uint8)


def load_sbd_label(path: str | Path) -> np.ndarray:
    """Read an SBD ``cls/<name>.mat`` file as a class-index map (H, W) uint8."""
    mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    return label_from_sbd_mat(mat, source=str(path))


def read_name_list(path: str | Path) -> list[str]:
    """Image names in a VOC/SBD list file (first column; blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataSetupError(f"list file {path} is missing")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def train_aug_names(voc_train: Iterable[str], voc_val: Iterable[str], sbd_train: Iterable[str],
                    sbd_val: Iterable[str]) -> list[str]:
    """(SBD train ∪ SBD val ∪ VOC train) − VOC val, sorted."""
    return sorted((set(sbd_train) | set(sbd_val) | set(voc_train)) - set(voc_val))


def train_aug_count_problem(train_aug_count: int, voc_train_count: int, voc_val_count: int,
                            sbd_train_count: int, sbd_val_count: int) -> str | None:
    """A message if the real VOC lists gave a train_aug of the wrong size; None otherwise.

    Only judged when the VOC lists have their real sizes: smaller (fake or mini) lists are fine.
    """
    if (voc_train_count, voc_val_count) != (VOC_TRAIN_COUNT, VOC_VAL_COUNT) or train_aug_count == TRAIN_AUG_COUNT:
        return None
    return (f"train_aug has {train_aug_count} names, expected {TRAIN_AUG_COUNT}: the VOC lists are the real "
            f"ones (train {voc_train_count}, val {voc_val_count}) but the SBD lists have train "
            f"{sbd_train_count} (expected {SBD_TRAIN_COUNT}) and val {sbd_val_count} (expected "
            f"{SBD_VAL_COUNT}); the SBD download or extraction may be incomplete")


@dataclass
class AugBuildResult:
    """What :func:`build_segmentation_class_aug` wrote."""

    train_aug_list: Path
    label_dir: Path
    train_aug_count: int
    written_from_voc: int = 0
    written_from_sbd: int = 0
    already_present: int = 0
    warnings: list[str] = field(default_factory=list)


def _save_label_atomic(label: np.ndarray, path: Path) -> None:
    # The temporary name keeps the .png suffix because PIL picks the format from it.
    temporary = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    save_label_png(label, temporary)
    os.replace(temporary, path)


def build_segmentation_class_aug(voc_dir: str | Path, sbd_dataset_dir: str | Path, *,
                                 progress: bool | None = None) -> AugBuildResult:
    """Write ``SegmentationClassAug/*.png`` and ``ImageSets/Segmentation/train_aug.txt`` into ``voc_dir``.

    ``sbd_dataset_dir`` is SBD's ``benchmark_RELEASE/dataset`` (with ``cls/``, ``train.txt``,
    ``val.txt``). See the module docstring for which label wins where both datasets have one.
    """
    voc_dir, sbd_dataset_dir = Path(voc_dir), Path(sbd_dataset_dir)
    lists_dir = voc_dir / "ImageSets" / "Segmentation"
    voc_train, voc_val = read_name_list(lists_dir / "train.txt"), read_name_list(lists_dir / "val.txt")
    sbd_train = read_name_list(sbd_dataset_dir / "train.txt")
    sbd_val = read_name_list(sbd_dataset_dir / "val.txt")
    names = train_aug_names(voc_train, voc_val, sbd_train, sbd_val)

    label_dir = voc_dir / "SegmentationClassAug"
    label_dir.mkdir(parents=True, exist_ok=True)
    for leftover in label_dir.glob(".*.tmp*"):  # from a run interrupted mid-write
        leftover.unlink()
    result = AugBuildResult(lists_dir / "train_aug.txt", label_dir, len(names))

    for name in tqdm(sorted(set(names) | set(voc_val)), unit="label", desc="SegmentationClassAug",
                     disable=None if progress is None else not progress):
        target = label_dir / f"{name}.png"
        if target.exists():
            result.already_present += 1
            continue
        voc_label = voc_dir / "SegmentationClass" / f"{name}.png"
        sbd_label = sbd_dataset_dir / "cls" / f"{name}.mat"
        if voc_label.exists():
            copy_atomic(voc_label, target)
            result.written_from_voc += 1
        elif sbd_label.exists():
            _save_label_atomic(load_sbd_label(sbd_label), target)
            result.written_from_sbd += 1
        else:
            raise DataSetupError(f"no label for {name}: neither {voc_label} nor {sbd_label} exists; "
                                 f"the VOC or SBD extraction is incomplete (re-run with --force)")

    missing_images = [name for name in names if not (voc_dir / "JPEGImages" / f"{name}.jpg").exists()]
    if missing_images:
        result.warnings.append(f"{len(missing_images)} train_aug images are missing from "
                               f"{voc_dir / 'JPEGImages'} (e.g. {missing_images[:3]})")
    problem = train_aug_count_problem(len(names), len(voc_train), len(voc_val), len(sbd_train), len(sbd_val))
    if problem:
        warnings.warn(problem, TrainAugCountWarning, stacklevel=2)
        result.warnings.append(problem)

    write_text_atomic(result.train_aug_list, "".join(f"{name}\n" for name in names))
    return result
