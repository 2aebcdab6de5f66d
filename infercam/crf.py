"""The fully connected CRF (Krähenbühl & Koltun 2011) with psa's settings, the one function every
step that refines maps with a CRF calls (affinity labels, pseudo labels, segmentation output).

``dense_crf(image, probabilities)``: unary = -log(probability) (clipped at 1e-5, as psa: the scores
need not sum to 1), a Gaussian kernel (sxy 3, compat 3) and a bilateral kernel (sxy 80, srgb 13,
compat 10), 10 mean-field iterations; returns the (n, H, W) marginals.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from infercam.cam import claim_folder
from infercam.config import no_bar, resolve_path
from infercam.voc import save_label_png


@dataclass(frozen=True)
class CRFSettings:
    """psa's ``crf_inference`` defaults; deeplab-pytorch's post-processing uses other ones
    (:data:`DEEPLAB_CRF`)."""

    iterations: int = 10
    gaussian_sxy: float = 3
    gaussian_compat: float = 3
    bilateral_sxy: float = 80
    bilateral_srgb: float = 13
    bilateral_compat: float = 10


#: psa's settings, used for affinity labels and pseudo labels.
PSA_CRF = CRFSettings()
# deeplab-pytorch's voc12 post-processing: pos_w 3, pos_xy 1, bi_w 4, bi_xy 67, bi_rgb 3, 10 iterations
DEEPLAB_CRF = CRFSettings(iterations=10, gaussian_sxy=1, gaussian_compat=3, bilateral_sxy=67, bilateral_srgb=3,
                          bilateral_compat=4)


def dense_crf(image: np.ndarray, probabilities: np.ndarray, settings: CRFSettings = PSA_CRF) -> np.ndarray:
    """Marginals (n, H, W) float32 of the dense CRF over an (H, W, 3) uint8 RGB image, from
    per-class scores (n, H, W) in [0, 1]."""
    import pydensecrf.densecrf as dcrf  # pydensecrf2, imported late: only the CRF steps need it
    from pydensecrf.utils import unary_from_softmax

    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.ndim != 3 or probabilities.shape[1:] != image.shape[:2]:
        raise ValueError(f"probabilities must be (n, H, W) for the {image.shape[:2]} image, got {probabilities.shape}")
    labels, height, width = probabilities.shape
    crf = dcrf.DenseCRF2D(width, height, labels)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probabilities)))
    crf.addPairwiseGaussian(sxy=settings.gaussian_sxy, compat=settings.gaussian_compat)
    crf.addPairwiseBilateral(sxy=settings.bilateral_sxy, srgb=settings.bilateral_srgb,
                             rgbim=np.ascontiguousarray(image, dtype=np.uint8), compat=settings.bilateral_compat)
    return np.asarray(crf.inference(settings.iterations), dtype=np.float32).reshape(labels, height, width)


def save_label_maps(dataset, names: list[str], scores_of, out_dir: str | os.PathLike,
                    crf_dir: str | os.PathLike | None, crf: CRFSettings, record: dict, desc: str,
                    progress: bool = True) -> Path:
    """Label PNGs (VOC palette) of ``names`` into ``out_dir``: the argmax of
    ``scores_of(name, image) -> (scores (K, H, W), VOC labels of the K channels)``; with ``crf_dir``,
    the same scores refined by the dense CRF there too (normalised to sum to 1 per pixel first).
    Each folder is claimed with ``record`` (and its CRF settings), so maps of other settings are
    never mixed in; images already in every folder are skipped, so an interrupted run continues."""
    outputs = {None: resolve_path(out_dir)}
    if crf_dir is not None:
        outputs[crf] = resolve_path(crf_dir)
    for settings, folder in outputs.items():
        claim_folder(folder, {**record, "crf": dataclasses.asdict(settings) if settings else None})
    todo = [name for name in names if any(not (folder / f"{name}.png").exists() for folder in outputs.values())]
    for name in tqdm(todo, desc=desc, disable=no_bar(progress)):
        image = dataset.load_image(name)
        scores, labels = scores_of(name, image)
        for settings, folder in outputs.items():
            refined = scores if settings is None else dense_crf(
                image, scores / np.maximum(scores.sum(axis=0, keepdims=True), 1e-5), settings)
            save_label_png(np.asarray(labels, dtype=np.uint8)[refined.argmax(axis=0)], folder / f"{name}.png")
    return outputs[None]
