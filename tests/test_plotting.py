"""The figures fit the book's column: no wider than page.FIGURE_WIDTH, titles at least 9 pt, at most
four image panels a row; label maps come with a class legend, CAM heatmaps with a colour bar."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from infercam import plotting  # noqa: E402
from infercam.cam import save_cams  # noqa: E402
from infercam.iterative import IterativePass  # noqa: E402
from infercam.page import FIGURE_WIDTH  # noqa: E402
from infercam.split_unite import plan_patches, unite  # noqa: E402
from tiny_data import tiny_split  # noqa: E402


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    return tiny_split(tmp_path_factory.mktemp("plotting"), "val", seed=3, image_size=64, num_val=3)


def fake_cams(dataset, name):
    """Smooth maps peaking on each of the image's objects."""
    label = dataset.load_label(name)
    class_ids = np.flatnonzero(dataset.cls_labels[dataset.names.index(name)])
    ys, xs = np.mgrid[:label.shape[0], :label.shape[1]]
    cams = []
    for c in class_ids:
        y, x = np.argwhere(label == c + 1).mean(axis=0) if (label == c + 1).any() else (label.shape[0] / 2, label.shape[1] / 2)
        cams.append(np.exp(-((ys - y) ** 2 + (xs - x) ** 2) / 200.0))
    return np.asarray(cams, dtype=np.float32).reshape(len(class_ids), *label.shape), class_ids


def check(fig, legend: bool = False, colorbar: bool = False, per_row: int = 4):
    width = fig.get_size_inches()[0]
    assert width <= FIGURE_WIDTH + 1e-6
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert titled and all(ax.title.get_fontsize() >= 9 for ax in titled)
    # at most `per_row` image panels side by side: each spans at least that share of its grid's columns
    specs = [ax.get_subplotspec() for ax in fig.axes if ax.images]
    assert specs and all(spec.get_gridspec().ncols / len(spec.colspan) <= per_row for spec in specs)
    assert bool(fig.legends) == legend
    assert any(ax.get_xlabel().startswith("activation") for ax in fig.axes) == colorbar
    fig.canvas.draw()
    plt.close(fig)


def test_show_samples(val):
    check(plotting.show_samples(val, list(range(len(val)))), legend=True)


def test_show_cam_panels(val):
    check(plotting.show_cam_panels(val, val.names[:2], lambda name: fake_cams(val, name), 0.2), legend=True, colorbar=True)
    check(plotting.show_cam_panels(val, val.names[:1], lambda name: fake_cams(val, name)), legend=True, colorbar=True)


def test_show_split_unite_and_passes(val):
    name = val.names[0]
    image = val.load_image(name)
    cams, class_ids = fake_cams(val, name)
    patches = plan_patches(cams, class_ids)
    patch_maps = [(patch, np.stack([cams[list(class_ids).index(c)][patch.rows, patch.columns] for c in patch.class_ids]))
                  for patch in patches]
    united = unite(patch_maps, class_ids, image.shape[:2])
    check(plotting.show_split_unite(image, class_ids, cams, patches, patch_maps, united), colorbar=True)
    passes = [IterativePass(cams, cams.max(axis=0) > 0.7, 0.1), IterativePass(cams / 2, cams.max(axis=0) > 0.9, 0.0)]
    check(plotting.show_iterative_passes(image, passes, cams), colorbar=True)


def test_show_method_comparison(val, tmp_path):
    for name in val.names[:2]:
        save_cams(tmp_path / f"{name}.npz", *fake_cams(val, name))
    fig = plotting.show_method_comparison(val, val.names[:2], {"baseline": (tmp_path, 0.2), "ours": (tmp_path, 0.3)})
    check(fig, legend=True, colorbar=True)


def test_show_glyphs():
    from infercam.glyphs import class_glyphs

    # a catalogue of small icons: six a row
    check(plotting.show_glyphs({name: class_glyphs(name) for name in ("cat", "cow", "person")}), per_row=6)
