"""Pictures the notebooks show: label maps in VOC colours, sample grids, glyph catalogues, and the
paper's method figures (CAM panels, split & unite, iterative passes, method comparisons).

Every figure is :data:`infercam.page.FIGURE_WIDTH` inches wide at most, so that the book shows it
at its own size; more panels make more rows (at most three or four image panels a row; six of
the glyph catalogue's small icons), not a wider figure. Titles are at least 9 pt. Label maps come
with a legend of their classes (:func:`add_class_legend`), CAM heatmaps with a colour bar
(:func:`add_cam_colorbar`).
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from infercam.page import FIGURE_WIDTH
from infercam.voc import CLASS_NAMES, IGNORE_INDEX, voc_palette

TITLE_SIZE = 10  # points: legible when the book shows the figure at its own size
TITLE_ROOM = 0.42  # inches above a panel for a title of up to two lines


def label_to_rgb(label: np.ndarray) -> np.ndarray:
    """A label map in the VOC palette (void drawn in VOC's cream colour)."""
    return voc_palette()[label]


def overlay(image: np.ndarray, label: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The image with its non-background label pixels tinted by class colour."""
    tinted = image.astype(np.float32)
    mask = (label > 0)[..., None]
    tinted = np.where(mask, (1 - alpha) * tinted + alpha * label_to_rgb(label), tinted)
    return tinted.astype(np.uint8)


def _aspect(shape) -> float:
    """Height over width of a panel showing an image of ``shape``, kept within reason."""
    return float(np.clip(shape[0] / shape[1], 0.5, 1.5))


def _grid(rows: int, columns: int, aspect: float = 1.0, title_room: float = TITLE_ROOM):
    """A figure of ``rows`` x ``columns`` panels, axes off, as wide as the book's column."""
    panel = FIGURE_WIDTH / columns
    fig, axes = plt.subplots(rows, columns, figsize=(FIGURE_WIDTH, rows * (panel * aspect + title_room)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def _title(ax, text: str, **kwargs) -> None:
    """A panel title at :data:`TITLE_SIZE`, wrapped to the panel's width (about 11 characters an
    inch at 10 pt)."""
    spec = ax.get_subplotspec()
    width = ax.figure.get_figwidth() * len(spec.colspan) / spec.get_gridspec().ncols
    ax.set_title(textwrap.fill(text, max(10, int(width * 11))), fontsize=TITLE_SIZE, **kwargs)


def _classes(class_ids) -> str:
    """Foreground class indices (0 = aeroplane) as their names."""
    return ", ".join(CLASS_NAMES[c + 1] for c in class_ids)


def show_samples(dataset, indices, columns: int = 3):
    """Each sample's image above its label map, titled by name and classes, ``columns`` samples a
    row; a legend names the classes' colours."""
    rows = int(np.ceil(len(indices) / columns))
    items = [dataset[index] for index in indices]
    aspect = _aspect(items[0]["image"].shape) if items else 1.0
    fig, axes = _grid(2 * rows, columns, aspect)
    for slot, item in enumerate(items):
        ax_image, ax_label = axes[2 * (slot // columns), slot % columns], axes[2 * (slot // columns) + 1, slot % columns]
        ax_image.imshow(item["image"])
        _title(ax_image, item["name"])
        ax_label.imshow(label_to_rgb(item["label"]), interpolation="nearest")
        present = [CLASS_NAMES[v] for v in np.unique(item["label"]) if 0 < v < IGNORE_INDEX]
        _title(ax_label, ", ".join(present))
    fig.tight_layout()
    return add_class_legend(fig, [item["label"] for item in items])


def show_glyphs(glyphs_by_name: dict[str, tuple], columns: int = 6):
    """Every glyph, titled with the name it stands for and its Unicode code point."""
    flat = [(name, glyph) for name, glyphs in glyphs_by_name.items() for glyph in glyphs]
    fig, axes = _grid(int(np.ceil(len(flat) / columns)), columns, aspect=0.8, title_room=0.45)
    for ax, (name, glyph) in zip(axes.flat, flat):
        ax.imshow(glyph.rgba)
        ax.set_title(f"{name}\nU+{glyph.code}", fontsize=9)
    fig.tight_layout()
    return fig


def cam_heatmap(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image under a jet-coloured activation map in [0, 1]."""
    colours = plt.get_cmap("jet")(np.clip(cam, 0, 1))[..., :3] * 255
    return ((1 - alpha) * image + alpha * colours).astype(np.uint8)


def show_cam_panels(dataset, names, cam_loader, threshold: float | None = None, columns: int | None = None):
    """The paper's Fig. 2 panels for each image: the image, its CAM (max over its classes), the
    mask CAM > 0, and the ground truth; with ``threshold``, a fifth panel shows the CAM's label
    map at that background score. ``cam_loader(name) -> (cams, class_ids)``. Each image's panels
    fill ``columns`` a row (default: 2 for four panels, 3 for five)."""
    from infercam.metrics import cam_prediction

    count = 4 if threshold is None else 5
    columns = columns or (2 if count == 4 else 3)
    per_image = int(np.ceil(count / columns))
    first = dataset.load_image(names[0]) if len(names) else np.zeros((1, 1, 3))
    fig, axes = _grid(per_image * len(names), columns, _aspect(first.shape))
    labels = []
    for slot, name in enumerate(names):
        image, truth = dataset.load_image(name), dataset.load_label(name)
        cams, class_ids = cam_loader(name)
        peak = cams.max(axis=0) if len(class_ids) else np.zeros(truth.shape, dtype=np.float32)
        foreground = (truth > 0) & (truth != IGNORE_INDEX)
        recall = (foreground & (peak > 0)).sum() / max(foreground.sum(), 1)
        panels = [(image, f"{name}: {_classes(class_ids)}"), (cam_heatmap(image, peak), "CAM (max over its classes)"),
                  (np.where((peak > 0)[..., None], image, image // 4), f"CAM > 0 (recall {recall:.0%})"),
                  (label_to_rgb(truth), "ground truth")]
        labels.append(truth)
        if threshold is not None:
            predicted = cam_prediction(cams, class_ids, threshold)
            panels.append((label_to_rgb(predicted), f"CAM label at t = {threshold:.2f}"))
            labels.append(predicted)
        block = axes[slot * per_image:(slot + 1) * per_image].flat
        for ax, (panel, title) in zip(block, panels):
            ax.imshow(panel, interpolation="nearest")
            _title(ax, title)
    fig.tight_layout()
    add_class_legend(fig, labels)
    return add_cam_colorbar(fig)


def show_split_unite(image: np.ndarray, class_ids, baseline: np.ndarray, patches, patch_maps, united: np.ndarray):
    """The paper's Fig. 3 for one image. First row: the patches drawn on the image, the baseline
    CAM and the united map; then each patch's own map: four patches two a row, as the quadrants
    lie, more four a row (maps are the maximum over the image's classes)."""
    from matplotlib.patches import Rectangle

    aspect = _aspect(image.shape)
    per_row = 2 if len(patch_maps) <= 4 else 4
    patch_rows = int(np.ceil(len(patch_maps) / per_row))
    span = 4 if per_row == 2 else 3  # of 12 grid columns: two patches as wide as the first row's panels
    top, below = FIGURE_WIDTH / 3 * aspect + TITLE_ROOM, FIGURE_WIDTH * span / 12 * aspect + TITLE_ROOM
    fig = plt.figure(figsize=(FIGURE_WIDTH, top + patch_rows * below))
    grid = fig.add_gridspec(1 + patch_rows, 12, height_ratios=[top] + [below] * patch_rows)
    axes = [fig.add_subplot(grid[0, 4 * i:4 * i + 4]) for i in range(3)]
    colours = plt.get_cmap("tab10")
    axes[0].imshow(image)
    for index, patch in enumerate(patches):
        axes[0].add_patch(Rectangle((patch.left - 0.5, patch.top - 0.5), patch.width, patch.height, fill=False,
                                    lw=2, ec=colours(index % 10), ls=("-" if index % 2 == 0 else "--")))
    _title(axes[0], f"{_classes(class_ids)}: {len(patches)} patches")
    axes[1].imshow(cam_heatmap(image, baseline.max(axis=0)))
    _title(axes[1], "baseline CAM")
    axes[2].imshow(cam_heatmap(image, united.max(axis=0)))
    _title(axes[2], "united")
    for index, (patch, maps) in enumerate(patch_maps):
        left = (12 - per_row * span) // 2 + span * (index % per_row)
        ax = fig.add_subplot(grid[1 + index // per_row, left:left + span])
        ax.imshow(cam_heatmap(image[patch.rows, patch.columns], maps.max(axis=0)))
        _title(ax, f"patch {index + 1} ({_classes(patch.class_ids)})", color=colours(index % 10))
    for ax in fig.axes:
        ax.axis("off")
    fig.tight_layout()
    return add_cam_colorbar(fig)


def show_iterative_passes(image: np.ndarray, passes, final: np.ndarray, erase_threshold: float = 0.7,
                          columns: int = 3):
    """The paper's Fig. 4 for one image: for each pass, the image the classifier saw (earlier passes'
    high activation painted with the mean colour) under that pass's map, with the region it newly
    erases outlined; then the accumulated map. ``columns`` panels a row."""
    fill = np.round(image.reshape(-1, 3).mean(axis=0)).astype(image.dtype)
    seen, erased = image.copy(), np.zeros(image.shape[:2], dtype=bool)
    count = len(passes) + 1
    fig, axes = _grid(int(np.ceil(count / columns)), columns, _aspect(image.shape))
    axes = axes.flat
    for index, (ax, step) in enumerate(zip(axes, passes)):
        ax.imshow(cam_heatmap(seen, step.maps.max(axis=0)))
        ax.contour(step.new_erased, levels=[0.5], colors="white", linewidths=1.2)
        _title(ax, f"pass {index}: {step.new_fraction:.1%} new ≥ {erase_threshold}")
        erased |= step.new_erased
        seen = np.where(erased[..., None], fill, image)
    axes[count - 1].imshow(cam_heatmap(image, final.max(axis=0)))
    _title(axes[count - 1], "accumulated")
    fig.tight_layout()
    return add_cam_colorbar(fig)


def show_method_comparison(dataset, names, methods: dict, titles: dict | None = None):
    """The paper's Fig. 8: per image, one row for each method with its CAM (max over the image's
    classes) and its label map at its background score, after the image and its ground truth in
    the first column. ``methods``: title -> (folder of saved maps, background score); ``titles``:
    optional name -> title of the image's first panel."""
    from infercam.cam import load_cams
    from infercam.metrics import cam_prediction

    per_image = max(len(methods), 2)
    first = dataset.load_image(names[0]) if len(names) else np.zeros((1, 1, 3))
    fig, axes = _grid(per_image * len(names), 3, _aspect(first.shape))
    labels = []
    for slot, name in enumerate(names):
        image, truth = dataset.load_image(name), dataset.load_label(name)
        block = axes[slot * per_image:(slot + 1) * per_image]
        labels.append(truth)
        firsts = [(image, (titles or {}).get(name, name)), (label_to_rgb(truth), "ground truth")]
        for ax, (panel, title) in zip(block[:, 0], firsts):
            ax.imshow(panel, interpolation="nearest")
            _title(ax, title)
        for row, (method, (folder, threshold)) in zip(block, methods.items()):
            maps, class_ids = load_cams(Path(folder) / f"{name}.npz")
            predicted = cam_prediction(maps, class_ids, threshold)
            labels.append(predicted)
            row[1].imshow(cam_heatmap(image, maps.max(axis=0)))
            _title(row[1], f"{method} CAM")
            row[2].imshow(label_to_rgb(predicted), interpolation="nearest")
            _title(row[2], f"{method} label, t = {threshold:.2f}")
    fig.tight_layout()
    add_class_legend(fig, labels)
    return add_cam_colorbar(fig)


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
