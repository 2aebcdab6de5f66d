"""Saliency maps: stored as grey PNGs (0..255), one per image, whichever detector made them.

The paper profile uses precomputed maps of a deep detector (OAA's, ``SaliencyMaps/``, from
``data_scripts/get_saliency.py``). The offline profiles make their own with
:func:`make_saliency_maps` and a detector: the class-agnostic network of
:mod:`infercam.saliency_net` (the default of the segmentation chapter), or the classical
frequency-tuned detector (Achanta et al., CVPR 2009) here, computed from the image alone: a pixel is
as salient as its (slightly blurred) Lab colour is far from the image's mean Lab colour, with an
optional centre prior as many detectors have. Neither ever sees a label.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from infercam.config import no_bar
from tqdm import tqdm

_SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
_WHITE = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """CIE Lab (H, W, 3) float64 of an sRGB uint8 image (D65 white)."""
    rgb = image.astype(np.float64) / 255
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ _SRGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def frequency_tuned(image: np.ndarray, blur_sigma: float = 1.0, centre_prior: float = 0.5) -> np.ndarray:
    """Saliency (H, W) float32 in [0, 1] of an (H, W, 3) uint8 image: the distance of each pixel's
    Lab colour (Gaussian-blurred by ``blur_sigma`` pixels) to the image's mean Lab colour,
    normalised. ``centre_prior`` in [0, 1] blends in a Gaussian centred on the image (sigma a third
    of each side)."""
    lab = rgb_to_lab(image)
    blurred = np.stack([ndimage.gaussian_filter(lab[..., c], blur_sigma) for c in range(3)], axis=-1)
    saliency = np.linalg.norm(blurred - lab.reshape(-1, 3).mean(axis=0), axis=-1)
    if centre_prior > 0:
        height, width = saliency.shape
        ys, xs = np.mgrid[0:height, 0:width]
        centre = np.exp(-(((ys - (height - 1) / 2) / (height / 3)) ** 2 + ((xs - (width - 1) / 2) / (width / 3)) ** 2) / 2)
        saliency = saliency * ((1 - centre_prior) + centre_prior * centre)
    saliency = (saliency - saliency.min()) / max(saliency.max() - saliency.min(), 1e-12)
    return saliency.astype(np.float32)


def save_saliency(saliency: np.ndarray, path: str | os.PathLike) -> None:
    """A grey PNG, 0..255, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    Image.fromarray(np.round(np.clip(saliency, 0, 1) * 255).astype(np.uint8), mode="L").save(tmp, format="PNG")
    os.replace(tmp, path)


def load_saliency(path: str | os.PathLike) -> np.ndarray:
    """(H, W) float32 in [0, 1] from a grey saliency PNG."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no saliency map {path}: make the maps first (infercam.saliency.make_saliency_maps, "
                                "or data_scripts/get_saliency.py for VOC)")
    try:
        with Image.open(path) as picture:
            return np.asarray(picture.convert("L"), dtype=np.float32) / 255
    except (OSError, SyntaxError) as error:  # PIL's errors for a truncated or garbled PNG
        raise OSError(f"corrupt saliency map {path}: {error}; delete it and make it again (infercam.saliency."
                      "make_saliency_maps skips the maps already there; for VOC, data_scripts/get_saliency.py)") from error


def make_saliency_maps(dataset, out_dir: str | os.PathLike, names: list[str] | None = None,
                       detector: Callable[[np.ndarray], np.ndarray] = frequency_tuned, progress: bool = True) -> Path:
    """``detector(image) -> saliency (H, W) in [0, 1]`` (default: the frequency-tuned one) of
    ``names`` (default: the split) into ``out_dir/<name>.png``; maps already there are kept, so an
    interrupted run continues."""
    out_dir = Path(out_dir)
    todo = [n for n in (dataset.names if names is None else names) if not (out_dir / f"{n}.png").exists()]
    for name in tqdm(todo, desc=f"saliency of {dataset.split}", disable=no_bar(progress and bool(todo))):
        save_saliency(detector(dataset.load_image(name)), out_dir / f"{name}.png")
    return out_dir
