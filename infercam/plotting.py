"""Pictures the notebooks show: label maps in VOC colours, sample grids, glyph catalogues."""
from __future__ import annotations

from pathlib import Path

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


def show_split_unite(image: np.ndarray, class_ids, baseline: np.ndarray, patches, patch_maps, united: np.ndarray):
    """The paper's Fig. 3 for one image: the baseline CAM with the patches drawn on the image, each
    patch's own map, and the united map (maps are the maximum over the image's classes)."""
    from matplotlib.patches import Rectangle

    columns = 2 + len(patches) + 1
    fig, axes = plt.subplots(1, columns, figsize=(2.4 * columns, 2.8), squeeze=False)
    axes = axes[0]
    axes[0].imshow(image)
    colours = plt.get_cmap("tab10")
    for index, patch in enumerate(patches):
        axes[0].add_patch(Rectangle((patch.left - 0.5, patch.top - 0.5), patch.width, patch.height, fill=False,
                                    lw=2, ec=colours(index % 10), ls=("-" if index % 2 == 0 else "--")))
    axes[0].set_title(", ".join(CLASS_NAMES[c + 1] for c in class_ids) + f": {len(patches)} patches", fontsize=8)
    axes[1].imshow(cam_heatmap(image, baseline.max(axis=0)))
    axes[1].set_title("baseline CAM", fontsize=8)
    for index, (patch, maps) in enumerate(patch_maps):
        ax = axes[2 + index]
        ax.imshow(cam_heatmap(image[patch.rows, patch.columns], maps.max(axis=0)))
        names = ", ".join(CLASS_NAMES[c + 1] for c in patch.class_ids)
        ax.set_title(f"patch {index + 1} ({names})", fontsize=8, color=colours(index % 10))
    return _with_result_panel(fig, axes, image, united, "united")


def show_iterative_passes(image: np.ndarray, passes, final: np.ndarray, erase_threshold: float = 0.7):
    """The paper's Fig. 4 for one image: for each pass, the image the classifier saw (earlier passes'
    high activation painted with the mean colour) under that pass's map, with the region it newly
    erases outlined; then the accumulated map."""
    fill = np.round(image.reshape(-1, 3).mean(axis=0)).astype(image.dtype)
    seen, erased = image.copy(), np.zeros(image.shape[:2], dtype=bool)
    fig, axes = plt.subplots(1, len(passes) + 1, figsize=(2.6 * (len(passes) + 1), 2.9), squeeze=False)
    axes = axes[0]
    for index, (ax, step) in enumerate(zip(axes, passes)):
        ax.imshow(cam_heatmap(seen, step.maps.max(axis=0)))
        ax.contour(step.new_erased, levels=[0.5], colors="white", linewidths=1.2)
        ax.set_title(f"pass {index}: {step.new_fraction:.1%} new ≥ {erase_threshold}", fontsize=8)
        erased |= step.new_erased
        seen = np.where(erased[..., None], fill, image)
    return _with_result_panel(fig, axes, image, final, "accumulated")


def _with_result_panel(fig, axes, image: np.ndarray, maps: np.ndarray, title: str):
    """A row of method panels ends with the method's result over the whole image."""
    axes[-1].imshow(cam_heatmap(image, maps.max(axis=0)))
    axes[-1].set_title(title, fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def show_method_comparison(dataset, names, methods: dict, titles: dict | None = None):
    """The paper's Fig. 8: per image, the ground truth, then for each method its CAM (max over the
    image's classes) and its label map at its background score. ``methods``: title -> (folder of
    saved maps, background score); ``titles``: optional name -> row title."""
    from infercam.cam import load_cams
    from infercam.metrics import cam_prediction

    columns = 1 + 2 * len(methods)
    fig, axes = plt.subplots(len(names), columns, figsize=(2.5 * columns, 2.6 * len(names)), squeeze=False)
    for row, name in zip(axes, names):
        image = dataset.load_image(name)
        panels = [(label_to_rgb(dataset.load_label(name)), (titles or {}).get(name, f"{name}: ground truth"))]
        for method, (folder, threshold) in methods.items():
            maps, class_ids = load_cams(Path(folder) / f"{name}.npz")
            panels += [(cam_heatmap(image, maps.max(axis=0)), f"{method} CAM"),
                       (label_to_rgb(cam_prediction(maps, class_ids, threshold)), f"{method} label, t = {threshold:.2f}")]
        for ax, (panel, title) in zip(row, panels):
            ax.imshow(panel, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return fig


def add_class_legend(fig, labels, columns: int = 5):
    """A legend under the figure naming the colour of every class that appears in ``labels`` (label
    maps in VOC indices; void and background included when present)."""
    from matplotlib.patches import Patch

    present = sorted({int(v) for label in labels for v in np.unique(label)})
    palette = voc_palette()
    handles = [Patch(facecolor=palette[v] / 255, edgecolor="0.5",
                     label="void" if v == IGNORE_INDEX else CLASS_NAMES[v]) for v in present]
    rows = int(np.ceil(len(handles) / columns))
    bottom = _room_below(fig, 0.25 + 0.22 * rows)
    fig.legend(handles=handles, loc="lower center", ncol=min(columns, len(handles)), frameon=False,
               bbox_to_anchor=(0.5, bottom), bbox_transform=fig.transFigure, fontsize=9)
    return fig


def add_cam_colorbar(fig, label: str = "activation (max-normalised)"):
    """A horizontal colour bar under the figure for the jet-coloured maps of :func:`cam_heatmap`."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bottom = _room_below(fig, 0.7)
    axis = fig.add_axes([0.3, bottom + 0.45 / fig.get_figheight(), 0.4, 0.12 / fig.get_figheight()])
    fig.colorbar(ScalarMappable(Normalize(0, 1), plt.get_cmap("jet")), cax=axis, orientation="horizontal", label=label)
    return fig


def _room_below(fig, inches: float) -> float:
    """Make the figure ``inches`` taller at the bottom, for a legend or colour bar under the panels
    (stacked under any added before); the new strip's bottom, as a fraction of the new height."""
    used = getattr(fig, "_infercam_strips", 0.0)
    old_height = fig.get_figheight()
    new_height = old_height + inches
    for axis in fig.axes:  # keep every panel where it was, in inches from the top
        box = axis.get_position()
        axis.set_position([box.x0, (box.y0 * old_height + inches) / new_height, box.width, box.height * old_height / new_height])
    for legend in fig.legends:
        anchor = legend.get_bbox_to_anchor().transformed(fig.transFigure.inverted())
        legend.set_bbox_to_anchor((0.5, (anchor.y0 * old_height + inches) / new_height), transform=fig.transFigure)
    fig.set_figheight(new_height)
    fig._infercam_strips = used + inches
    return 0.0
