"""Bad input gets a message that names the problem and the fix, or is handled as a VOC user expects:
profile values of the wrong type, unknown profiles, greyscale/CMYK images and odd sizes, foreign
label values, missing annotations, empty split lists, an unwritable work_dir, maps of another
classifier and files cut short on disk."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from infercam.ablations import DEFAULT_GRID, run_grid
from infercam.runs import finished_with_parameters, record_parameters
from infercam.affinity_net import make_affinity_labels, random_walk_labels
from infercam.cam import MapsSettingsError, SETTINGS_FILE, load_cams, method_settings
from infercam.conditional import MethodSettings, compute_maps, maps_dir
from infercam.config import (PROFILES_DIR, ProfileValueError, WorkDirError, check_parameter_types, check_writable,
                             load_profile)
from infercam.datasets import DataRootError, VOCSegmentation
from infercam.models import build_affinity_net, build_segmenter
from infercam.notebooks import list_notebooks, notebook_defaults, run_notebooks
from infercam.runs import read_metrics, write_metrics
from infercam.saliency import load_saliency, save_saliency
from infercam.seeds import run_seeds
from infercam.segmentation import segment_dataset
from infercam.sharding import Step
from infercam.voc import load_label_png, save_label_png

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers, whatever the import mode
from tiny_data import tiny_split  # noqa: E402
from tiny_models import TinyClassifier  # noqa: E402


@pytest.fixture
def voc(tmp_path) -> VOCSegmentation:
    return tiny_split(tmp_path, "train", seed=7, num_train=3, num_val=1)


# --- profiles -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("cam_scales: 1.0", r"cam_scales is 1.0 \(float\).*takes a list.*cam_scales: \[1.0\]"),
    ("lr: 1e-3", r"lr is '1e-3' \(str\).*takes a number"),  # YAML 1.1 reads 1e-3 without a dot as a string
    ("epochs: true", r"epochs is True \(bool\).*takes a whole number"),
    ("cam_flip: 1", r"cam_flip is 1 \(int\).*takes true or false"),
])
def test_a_profile_value_of_the_wrong_type_is_refused_before_any_notebook_runs(tmp_path, text, message):
    # catches a wrong type that reaches a notebook and fails deep in a step (or silently changes its meaning)
    profile = tmp_path / "bad.yaml"
    profile.write_text(f"extends: smoke\nwork_dir: {tmp_path / 'work'}\n{text}\n")
    with pytest.raises(ProfileValueError, match=message):
        run_notebooks(profile, output_dir=tmp_path / "executed")
    assert not (tmp_path / "executed" / "timings.json").exists()  # refused before the first notebook


def test_every_committed_profile_has_values_of_its_notebooks_types():
    # catches a type check too strict for the project's own profiles (mixed_precision: true for "auto")
    notebooks = [*list_notebooks(), Path("notebooks/ablation/cam_method.ipynb")]
    for profile in sorted(PROFILES_DIR.glob("*.yaml")):
        values = load_profile(profile.stem)
        for notebook in notebooks:
            defaults = notebook_defaults(notebook)
            check_parameter_types({k: v for k, v in values.items() if k in defaults}, defaults, notebook.name)
    check_parameter_types({"mixed_precision": True}, {"mixed_precision": "auto"}, "x")


def test_an_unknown_profile_lists_the_known_ones():
    with pytest.raises(FileNotFoundError, match=r"no profile 'smok'.*known profiles: \[.*'smoke'"):
        load_profile("smok")


# --- images and labels --------------------------------------------------------------------------

def _replace_image(voc: VOCSegmentation, name: str, image: Image.Image, label: np.ndarray | None = None) -> None:
    image.save(voc.root / "JPEGImages" / f"{name}.jpg", format="JPEG", quality=95)
    if label is not None:
        save_label_png(label, voc.root / "SegmentationClass" / f"{name}.png")


def test_greyscale_and_cmyk_images_are_read_as_rgb(voc):
    # catches an image of one or four channels reaching the networks (VOC's loaders convert to RGB)
    grey, cmyk = voc.names[:2]
    rgb = np.array(Image.open(voc.root / "JPEGImages" / f"{grey}.jpg"))
    _replace_image(voc, grey, Image.fromarray(rgb).convert("L"))
    _replace_image(voc, cmyk, Image.fromarray(rgb).convert("CMYK"))
    for name in (grey, cmyk):
        image = voc.load_image(name)
        assert image.shape == rgb.shape and image.dtype == np.uint8, name
    loaded = voc.load_image(grey)
    assert (loaded[..., 0] == loaded[..., 1]).all() and (loaded[..., 1] == loaded[..., 2]).all()


@pytest.mark.parametrize("size", [(37, 1), (1, 29), (37, 45)])
def test_images_one_pixel_wide_or_not_a_multiple_of_8_go_through_every_per_image_step(voc, tmp_path, size):
    # catches a step that assumes sizes of whole stride-8 cells or at least a few pixels (a 1 px image
    # scaled by 0.5 has 0 px unless kept at 1)
    name = voc.names[0]
    height, width = size
    label = np.zeros(size, dtype=np.uint8)
    label[height // 2:, :] = 1 + int(np.flatnonzero(voc.cls_labels[0])[0])
    _replace_image(voc, name, Image.fromarray(np.full((*size, 3), 120, dtype=np.uint8)), label)
    names = [name]
    model = TinyClassifier(seed=1)
    for settings in (MethodSettings(), MethodSettings(split_unite=True, iterative=True)):
        folder = compute_maps(settings, model, voc, tmp_path, scales=(1.0, 0.5), names=names, progress=False)
        maps, class_ids = load_cams(folder / f"{name}.npz")
        assert maps.shape == (len(class_ids), *size) and np.isfinite(maps).all()
    baseline = maps_dir(tmp_path, MethodSettings(), "train")
    labels = make_affinity_labels(voc, baseline, tmp_path / "aff", names=names, progress=False)
    assert load_label_png(labels / f"{name}.png").shape == size
    torch.manual_seed(0)
    walked = random_walk_labels(build_affinity_net("resnet18", width=4).eval(), voc, baseline, tmp_path / "rw",
                                names=names, progress=False)
    assert load_label_png(walked / f"{name}.png").shape == size
    segmented = segment_dataset(build_segmenter("resnet18", width=4).eval(), voc, tmp_path / "seg", {}, names=names,
                                progress=False)
    assert load_label_png(segmented / f"{name}.png").shape == size


def test_label_values_outside_voc_are_refused_naming_the_file(tmp_path):
    # catches an instance map (SegmentationObject) or another dataset's PNG read as class labels
    label = np.zeros((8, 8), dtype=np.uint8)
    label[0, 0], label[1, 1] = 255, 20
    save_label_png(label, tmp_path / "ok.png")
    assert load_label_png(tmp_path / "ok.png").max() == 255  # 0..20 and 255 are VOC's values
    for value in (21, 254):
        label[2, 2] = value
        save_label_png(label, tmp_path / f"bad{value}.png")
        with pytest.raises(ValueError, match=rf"bad{value}.png holds values \[{value}\].*SegmentationClass"):
            load_label_png(tmp_path / f"bad{value}.png")


def test_an_image_without_annotation_and_an_empty_split_name_the_file_and_the_command(voc):
    name = voc.names[1]
    (voc.root / "Annotations" / f"{name}.xml").unlink()
    with pytest.raises(DataRootError, match=rf"Annotations/{name}.xml is missing \(listed in train.txt\). Re-run: make minivoc"):
        voc.class_names(name)
    (voc.root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n")
    with pytest.raises(DataRootError, match=r"train.txt lists no images; regenerate it with: make minivoc"):
        VOCSegmentation(voc.root, "train")


# --- work_dir -----------------------------------------------------------------------------------

def _unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot write: read-only permissions, or, for root (who ignores them), /sys."""
    if os.geteuid() == 0:
        return Path("/sys/infercam-work")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / "work"


def test_an_unwritable_work_dir_fails_before_any_notebook_runs(tmp_path):
    # catches a run that computes for an hour and then cannot save its first result
    work = _unwritable(tmp_path)
    with pytest.raises(WorkDirError, match=rf"work_dir {work} cannot be written .*set work_dir in the profile"):
        check_writable(work)
    profile = tmp_path / "ro.yaml"
    profile.write_text(yaml.safe_dump({"extends": "smoke", "work_dir": str(work)}))
    with pytest.raises(WorkDirError):
        run_notebooks(profile, output_dir=tmp_path / "executed")
    assert not (tmp_path / "executed" / "timings.json").exists()
    with pytest.raises(WorkDirError):  # the sharded steps and the batches check it too
        Step("cams", profile, 0, 1, 0)
    with pytest.raises(WorkDirError):
        run_grid(DEFAULT_GRID, {"work_dir": str(work), "profile": "ro"}, output_dir=tmp_path / "executed")
    with pytest.raises(WorkDirError):
        run_seeds(profile, [0, 1], output_dir=tmp_path / "executed")
    assert check_writable(tmp_path / "fresh" / "work").is_dir()


def test_the_sharded_steps_check_the_profile_s_types_too(tmp_path):
    profile = tmp_path / "bad.yaml"
    profile.write_text(f"extends: smoke\nwork_dir: {tmp_path / 'work'}\ncam_scales: 1.0\n")
    with pytest.raises(ProfileValueError, match="cam_scales is 1.0"):
        Step("cams", profile, 0, 1, 0)


# --- maps of another classifier, files cut short on disk --------------------------------------------

def test_maps_of_another_classifier_are_refused_not_reused(voc, tmp_path):
    # catches maps reused after the classifier was retrained or replaced (the folder's other settings agree)
    first = compute_maps(MethodSettings(), TinyClassifier(seed=1), voc, tmp_path, scales=(1.0,), names=voc.names[:1],
                         progress=False)
    compute_maps(MethodSettings(), TinyClassifier(seed=1), voc, tmp_path, scales=(1.0,), progress=False)  # same one: resumes
    assert len(list(first.glob("*.npz"))) == len(voc.names)
    with pytest.raises(MapsSettingsError, match=r"made by another classifier .*Delete .* to recompute the maps"):
        compute_maps(MethodSettings(), TinyClassifier(seed=2), voc, tmp_path, scales=(1.0,), progress=False)
    # a folder saved before fingerprints were recorded is continued, not refused
    saved = json.loads((first / SETTINGS_FILE).read_text())
    del saved["classifier"]
    (first / SETTINGS_FILE).write_text(json.dumps(saved))
    compute_maps(MethodSettings(), TinyClassifier(seed=2), voc, tmp_path, scales=(1.0,), progress=False)


def test_the_fingerprint_follows_the_weights_not_the_object():
    model = TinyClassifier(seed=1)
    fingerprint = method_settings(None, model)["classifier"]
    assert method_settings(None, TinyClassifier(seed=1))["classifier"] == fingerprint
    with torch.no_grad():
        model.classifier.weight[0, 0] += 1e-6
    assert method_settings(None, model)["classifier"] != fingerprint


def _cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def test_files_cut_short_on_disk_are_named_or_recomputed(voc, tmp_path):
    # catches a damaged result read as good, or an error that does not say which file and what to do
    folder = compute_maps(MethodSettings(), TinyClassifier(seed=1), voc, tmp_path, scales=(1.0,), progress=False)
    _cut_in_half(folder / SETTINGS_FILE)
    with pytest.raises(MapsSettingsError, match=rf"{SETTINGS_FILE} is corrupt .*delete {folder}"):
        compute_maps(MethodSettings(), TinyClassifier(seed=1), voc, tmp_path, scales=(1.0,), progress=False)
    save_label_png(voc.load_label(voc.names[0]), tmp_path / "label.png")
    _cut_in_half(tmp_path / "label.png")
    with pytest.raises(OSError, match=r"corrupt label map .*label.png.*delete it and re-run"):
        load_label_png(tmp_path / "label.png")
    save_saliency(np.full((6, 7), 0.5), tmp_path / "saliency.png")
    _cut_in_half(tmp_path / "saliency.png")
    with pytest.raises(OSError, match=r"corrupt saliency map .*saliency.png.*delete it and make it again"):
        load_saliency(tmp_path / "saliency.png")
    write_metrics(tmp_path, "01_baseline_cam", {"miou": 0.5}, {})
    _cut_in_half(tmp_path / "metrics" / "01_baseline_cam.json")
    with pytest.raises(ValueError, match=r"corrupt metrics file .*01_baseline_cam.json.*delete it and run"):
        read_metrics(tmp_path, "01_baseline_cam")
    # a batch's record of a finished run, cut short: the run counts as unfinished and runs again
    write_metrics(tmp_path, "ablation/grid/row", {"miou": 0.5}, {})
    record_parameters(tmp_path, "ablation/grid/row", {"seed": 0})
    assert finished_with_parameters(tmp_path, "ablation/grid/row", {"seed": 0})
    _cut_in_half(tmp_path / "metrics" / "ablation" / "grid" / "row.parameters.json")
    assert not finished_with_parameters(tmp_path, "ablation/grid/row", {"seed": 0})
