"""The rehearsal of the paper profile (`make rehearsal`, run whole by .ci/run): its profile cannot drift
from paper.yaml, and its fake downloads install with the real data scripts from a loopback server."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from infercam.config import load_profile
from infercam.datasets import VOCSegmentation
from infercam.minivoc import reads_minivoc
from infercam.rehearsal import (CLASS_COUNTS, DATASET_FILES, REHEARSAL_MARKER, _start_afresh, fake_images, mirror_environment,
                                rehearsal_data_root, serve_directory, write_fake_datasets)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers, whatever the import mode
from fake_servers import load_script  # noqa: E402

# What the rehearsal may change: sizes (and cam_batch_size, throughput only), and the paths of its own
# data and runs.
SIZES = {"epochs", "batch_size", "crop", "resize_long", "num_workers", "finetune_epochs", "seg_epochs",
         "seg_batch_size", "seg_crop", "seg_resize_long", "num_timing_images", "cam_batch_size"}
PATHS = {"profile", "data_root", "work_dir", "classifier_weights", "affinity_weights", "seg_initial_weights",
         "saliency_dir"}


def test_the_rehearsal_changes_only_sizes_and_paths_of_the_paper_profile():
    # catches a rehearsal that drifts from the paper's networks, protocol or layout
    paper, rehearsal = load_profile("paper"), load_profile("rehearsal")
    changed = {key for key in paper.keys() | rehearsal.keys() if paper.get(key, "unset") != rehearsal.get(key, "unset")}
    assert changed <= SIZES | PATHS, f"the rehearsal changes {sorted(changed - SIZES - PATHS)}, which are not sizes"
    assert rehearsal["backbone"] == "resnet38d" and rehearsal["cam_flip"] is True  # inherited, not restated


def test_a_profile_extends_its_base_and_replaces_what_it_sets(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text("extends: paper\nprofile: child\nepochs: 2\n")
    grandchild = tmp_path / "grandchild.yaml"
    grandchild.write_text(f"extends: {child}\nseed: 7\n")
    loaded = load_profile(grandchild)
    assert loaded == {**load_profile("paper"), "profile": "child", "epochs": 2, "seed": 7}
    assert "extends" not in loaded  # not a notebook parameter


def test_profiles_extending_each_other_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text(f"extends: {tmp_path / 'b.yaml'}\n")
    (tmp_path / "b.yaml").write_text(f"extends: {tmp_path / 'a.yaml'}\n")
    with pytest.raises(ValueError, match="circle"):
        load_profile(tmp_path / "a.yaml")


def test_the_rehearsals_paths_are_where_the_data_scripts_put_the_files():
    profile = load_profile("rehearsal")
    assert rehearsal_data_root(profile).name == "data"
    with pytest.raises(ValueError, match="affinity_weights"):  # catches a weights path the scripts never fill
        rehearsal_data_root({**profile, "affinity_weights": "elsewhere/res38_aff.pth"})


def test_the_rehearsal_empties_only_folders_it_made(tmp_path):
    # catches a rehearsal deleting a user's data (e.g. a profile pointing at data/)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not made by a rehearsal"):
        _start_afresh(theirs)
    assert (theirs / "keep.txt").exists()
    ours = tmp_path / "ours"
    _start_afresh(ours)
    (ours / "old.txt").write_text("x")
    _start_afresh(ours)
    assert sorted(p.name for p in ours.iterdir()) == [REHEARSAL_MARKER]


def test_the_fakes_install_with_the_real_data_scripts_from_a_loopback_server(tmp_path, monkeypatch):
    # catches fakes that are not in the real formats, and overrides the scripts do not honour
    mirror, root = tmp_path / "mirror", tmp_path / "data"
    write_fake_datasets(tmp_path / "staging", mirror)
    with serve_directory(mirror) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        for name, value in mirror_environment(mirror, base_url, DATASET_FILES).items():  # weights: too big here
            monkeypatch.setenv(name, value)
        for script in ("get_voc", "get_sbd", "get_saliency"):
            assert load_script(script).main(["--root", str(root), "--retries", "0"]) == 0, script
    voc = root / "VOCdevkit" / "VOC2012"
    images = fake_images()
    by_split = {split: [i for i in images if i.split == split] for split in ("train", "val", "sbd")}
    train_aug = VOCSegmentation(voc, "train_aug")
    # train_aug = SBD ∪ VOC train − VOC val: SBD's copy of a val image stays out
    assert sorted(train_aug.names) == sorted(i.name for i in by_split["train"] + by_split["sbd"])
    for split in ("train", "val", "train_aug"):
        counts = VOCSegmentation(voc, split).cls_labels.sum(axis=1)
        assert set(CLASS_COUNTS) <= set(counts.astype(int)), f"{split} lacks a 1-, 2- or 3-class image"
    assert all((voc / "SaliencyMaps" / f"{i.name}.png").is_file() for i in images)
    label = train_aug.load_label(by_split["sbd"][0].name)
    assert label.shape == (64, 64) and np.any((label > 0) & (label < 255))


def test_only_the_mini_voc_profiles_generate_their_data():
    # catches 00_minivoc asking mini-VOC settings of a profile that reads VOC (it raised KeyError for the rehearsal)
    assert reads_minivoc("smoke") and reads_minivoc("cpu")
    assert not reads_minivoc("paper") and not reads_minivoc("rehearsal")
