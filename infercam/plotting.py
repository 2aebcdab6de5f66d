"""Pictures the notebooks show: label maps in VOC colours, sample grids, glyph catalogues."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from infercam.voc import CLASS_NAMES, IGNORE_INDEX, voc_palette


def label_to_rgb(label: np.ndarray) -> np.ndarray:
    """A label map in the VOC palette (void drawn in VOC's cream colour)."""
    return voc_palette()[label]


def overlay(image: np.ndarray, label: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The image with its non-background label pixels tinted by class colour."""
    tinted = image.astype(np.float32)
    mask = (label > 0)[..., None]
    tinted = np.where(mask, (1 - alpha) * tinted + alpha * label_to_rgb(label), tinted)
    return tinted.astype(np.uint8)


def show_samples(dataset, indices, columns: int = 4):
    """Image and label side by side for each index, titled by name and classes."""
    rows = int(np.ceil(len(indices) / columns))
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(2.2 * 2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for slot, index in enumerate(indices):
        item = dataset[index]
        ax_image, ax_label = axes[slot // columns, 2 * (slot % columns)], axes[slot // columns, 2 * (slot % columns) + 1]
        ax_image.imshow(item["image"])
        ax_image.set_title(item["name"], fontsize=8)
        ax_label.imshow(label_to_rgb(item["label"]), interpolation="nearest")
        present = [CLASS_NAMES[v] for v in np.unique(item["label"]) if 0 < v < IGNORE_INDEX]
        ax_label.set_title(", ".join(present), fontsize=8)
    fig.tight_layout()
    return fig


def show_glyphs(glyphs_by_name: dict[str, tuple], columns: int = 10):
    """Every glyph, titled with the name it stands for."""
    flat = [(name, glyph) for name, glyphs in glyphs_by_name.items() for glyph in glyphs]
    rows = int(np.ceil(len(flat) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, glyph) in zip(axes.flat, flat):
        ax.imshow(glyph.rgba)
        ax.set_title(f"{name}\nU+{glyph.code}", fontsize=7)
    fig.tight_layout()
    return fig


def cam_heatmap(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image under a jet-coloured activation map in [0, 1]."""
    colours = plt.get_cmap("jet")(np.clip(cam, 0, 1))[..., :3] * 255
    return ((1 - alpha) * image + alpha * colours).astype(np.uint8)


def show_cam_panels(dataset, names, cam_loader, threshold: float | None = None):
    """The paper's Fig. 2 columns for each image: the image, its CAM (max over its classes), the
    mask CAM > 0, and the ground truth; with ``threshold``, a fifth column shows the CAM's label
    map at that background score. ``cam_loader(name) -> (cams, class_ids)``."""
    from infercam.metrics import cam_prediction

    titles = ["image", "CAM (max over its classes)", "CAM > 0", "ground truth"]
    if threshold is not None:
        titles.append(f"CAM label at t = {threshold:.2f}")
    fig, axes = plt.subplots(len(names), len(titles), figsize=(2.6 * len(titles), 2.6 * len(names)), squeeze=False)
    for row, name in zip(axes, names):
        image, truth = dataset.load_image(name), dataset.load_label(name)
        cams, class_ids = cam_loader(name)
        peak = cams.max(axis=0) if len(class_ids) else np.zeros(truth.shape, dtype=np.float32)
        foreground = (truth > 0) & (truth != IGNORE_INDEX)
        recall = (foreground & (peak > 0)).sum() / max(foreground.sum(), 1)
        panels = [image, cam_heatmap(image, peak), np.where((peak > 0)[..., None], image, image // 4), label_to_rgb(truth)]
        if threshold is not None:
            panels.append(label_to_rgb(cam_prediction(cams, class_ids, threshold)))
        for ax, panel in zip(row, panels):
            ax.imshow(panel, interpolation="nearest")
            ax.axis("off")
        row[0].set_title(f"{name}: {', '.join(CLASS_NAMES[c + 1] for c in class_ids)}", fontsize=8)
        row[2].set_title(f"CAM > 0 (recall {recall:.0%})", fontsize=8)
    for ax, title in zip(axes[0][1:], titles[1:]):
        if ax.get_title() == "":
            ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig
