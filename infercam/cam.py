"""Class activation maps with psa's inference protocol, and their storage on disk.

``multiscale_cam(model, image, class_ids) -> maps``: the image at scales (1.0, 0.5, 1.5, 2.0), each
with its horizontal flip in the same batch; the classifier's per-location class scores (its
``cam`` method: the 1x1 classification conv applied before pooling), ReLU, bilinear upsampling to
the image size, only the image's ground-truth classes, the flips undone, summed, and each class
divided by its spatial maximum (+1e-5). Any classifier with a ``cam(x) -> (N, 20, h, w)`` method
works.

Saved CAMs: one ``<name>.npz`` per image holding ``cams`` (K, H, W) float16 and ``class_ids`` (K,)
0-based VOC indices. float16 keeps about three significant digits, ten times finer than the 0.01
steps of the background-score sweep, at half the disk of float32.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

PSA_SCALES = (1.0, 0.5, 1.5, 2.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, normalised with ImageNet's mean and std."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (tensor - mean) / std


@torch.no_grad()
def multiscale_cam(model, image: np.ndarray, class_ids, scales=PSA_SCALES, flip: bool = True,
                   device: torch.device | str = "cpu") -> np.ndarray:
    """Max-normalised CAMs (K, H, W) float32 of ``class_ids`` (0-based VOC indices) for one image."""
    class_ids = list(class_ids)
    height, width = image.shape[:2]
    if not class_ids:
        return np.zeros((0, height, width), dtype=np.float32)
    x = to_tensor(image).unsqueeze(0).to(device)
    total = torch.zeros((len(class_ids), height, width), device=device)
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        scaled = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        batch = torch.cat([scaled, scaled.flip(-1)]) if flip else scaled
        maps = F.relu(model.cam(batch))[:, class_ids]
        maps = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)
        total += maps[0] + maps[1].flip(-1) if flip else maps[0]
    total /= total.amax(dim=(1, 2), keepdim=True) + 1e-5
    return total.cpu().numpy()


def save_cams(path: str | os.PathLike, cams: np.ndarray, class_ids) -> None:
    """Write one image's CAMs atomically (an interrupted run never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as handle:
        np.savez_compressed(handle, cams=np.asarray(cams, dtype=np.float16),
                            class_ids=np.asarray(list(class_ids), dtype=np.int64))
    os.replace(tmp, path)


def load_cams(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(cams (K, H, W) float32, class_ids (K,)) of one image."""
    try:
        with np.load(path) as data:
            return data["cams"].astype(np.float32), data["class_ids"]
    except (OSError, ValueError, KeyError) as error:
        raise OSError(f"corrupt CAM file {path}: {error}; delete it and re-run the CAM step") from error


def infer_cams(model, dataset, out_dir: str | os.PathLike, scales=PSA_SCALES, flip: bool = True,
               device: torch.device | str = "cpu", progress: bool = True) -> Path:
    """CAMs of every image of ``dataset`` into ``out_dir/<name>.npz``; images already saved are
    skipped, so an interrupted run continues where it stopped."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    todo = [i for i, name in enumerate(dataset.names) if not (out_dir / f"{name}.npz").exists()]
    for index in tqdm(todo, desc=f"CAMs of {dataset.split}", disable=not progress):
        name = dataset.names[index]
        image = dataset.load_image(name)
        class_ids = np.flatnonzero(dataset.cls_labels[index])
        save_cams(out_dir / f"{name}.npz", multiscale_cam(model, image, class_ids, scales, flip, device), class_ids)
    return out_dir
