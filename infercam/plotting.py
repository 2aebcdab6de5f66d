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
