"""Sharded per-image steps (infercam.sharding): 2 gloo processes under torchrun give the single process's
maps, affinity labels and random-walk pseudo labels, and a run that lost a rank's work completes the set
when launched again."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from infercam.affinity_net import (affinity_checkpoint, affinity_label_dir, affinity_training, pseudo_label_dir,
                                   train_affinity_net)
from infercam.cam import labels_identity, read_timing
from infercam.conditional import maps_dir
from infercam.models import build_affinity_net, build_classifier, build_segmenter
from infercam.segmentation import segmentation_training, segmenter_folder
from infercam.sharding import METHODS, Step, TrainFirst, run_step, shard
from infercam.training import CheckpointError
from infercam.voc import load_label_png

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers, whatever the import mode
from tiny_data import tiny_split  # noqa: E402

TORCHRUN = Path(sys.executable).parent / "torchrun"


def test_the_shards_cover_every_name_once():
    names = [f"image{i}" for i in range(7)]
    shards = [shard(names, rank, 3) for rank in range(3)]
    assert sorted(sum(shards, [])) == names and shards[1] == ["image1", "image4"]
    with pytest.raises(ValueError, match="rank 3"):
        shard(names, 3, 3)


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory) -> tuple[Path, Path]:
    """A profile extending the smoke one: a tiny mini-VOC, random ResNet-18s as classifier_weights and
    affinity_weights."""
    root = tmp_path_factory.mktemp("sharding")
    voc = tiny_split(root, "train", seed=3, num_train=5, num_val=3).root
    torch.manual_seed(0)
    weights = root / "classifier.pth"
    torch.save(build_classifier("resnet18", output_stride=8).state_dict(), weights)
    affinity_weights = root / "affinity.pth"
    torch.save(build_affinity_net("resnet18", width=8).state_dict(), affinity_weights)
    profiles = {}
    for name in ("single", "sharded"):
        profiles[name] = root / f"{name}.yaml"
        profiles[name].write_text(f"extends: smoke\nprofile: {name}\ndata_root: {voc}\nwork_dir: {root / name}\n"
                                  f"classifier_weights: {weights}\naffinity_weights: {affinity_weights}\n"
                                  "backbone: resnet18\ncam_batch_size: 1\n")
    return profiles, root


def _maps(work_dir: Path) -> dict[str, np.lib.npyio.NpzFile]:
    folder = maps_dir(work_dir, METHODS["ours"], "train")
    return {path.name: dict(np.load(path)) for path in sorted(folder.glob("*.npz"))}


def _run(*command: str) -> None:
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, f"{' '.join(command)} failed:\n{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}"


def _assert_same_maps(single: np.ndarray, sharded: np.ndarray, name: str) -> None:
    # One process batches other images together than each rank does (cam_batch_size), and batched
    # convolutions may sum in another order: the float16 maps then differ by an ulp (seen: 3e-5 in one
    # of 2,304 values). A skipped, repeated or mixed-up image differs by far more than 1e-3.
    np.testing.assert_allclose(single, sharded, rtol=0, atol=1e-3, err_msg=name)


def test_two_gloo_ranks_make_the_single_process_maps_and_resume_after_losing_one(tiny_profile):
    # catches ranks that skip or repeat images, collide on shared files, or differ from one process
    profiles, root = tiny_profile
    arguments = ["-m", "infercam.sharding", "--split", "train", "--method", "ours"]
    _run(sys.executable, *arguments, "--profile", str(profiles["single"]))
    sharded = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", *arguments, "--profile", str(profiles["sharded"])]
    _run(*sharded)
    single, split = _maps(root / "single"), _maps(root / "sharded")
    assert len(single) == 5 and single.keys() == split.keys()
    folder = maps_dir(root / "sharded", METHODS["ours"], "train")
    assert read_timing(folder)["images"] == 5  # no image computed twice, no rank's count lost
    for name in single:
        _assert_same_maps(single[name]["cams"], split[name]["cams"], name)
        np.testing.assert_array_equal(single[name]["class_ids"], split[name]["class_ids"], err_msg=name)

    # rank 1 killed mid-run: its images' maps (both methods) never written, a half-written temporary left
    lost = sorted(folder.glob("*.npz"))[1::2]
    for path in lost:
        path.unlink()
        (maps_dir(root / "sharded", METHODS["baseline"], "train") / path.name).unlink()
    (folder / f".tmp-{lost[0].name}").write_bytes(b"half a file")
    _run(*sharded)
    resumed = _maps(root / "sharded")
    assert resumed.keys() == single.keys() and read_timing(folder)["images"] == 5 + len(lost)
    for name in single:
        _assert_same_maps(single[name]["cams"], resumed[name]["cams"], name)


def _labels(folder: Path) -> dict[str, np.ndarray]:
    return {path.name: load_label_png(path) for path in sorted(folder.glob("*.png"))}


def test_two_gloo_ranks_make_the_single_process_affinity_and_pseudo_labels(tiny_profile):
    # catches a step whose ranks skip or repeat images, collide, or read other settings than one process
    profiles, root = tiny_profile
    _run(sys.executable, "-m", "infercam.sharding", "--profile", str(profiles["single"]), "--method", "baseline")
    baseline = maps_dir(root / "single", METHODS["baseline"], "train")
    shutil.copytree(baseline, maps_dir(root / "sharded", METHODS["baseline"], "train"), dirs_exist_ok=True)
    for step in ("affinity_labels", "random_walk"):
        arguments = ["-m", "infercam.sharding", "--step", step, "--method", "baseline"]
        _run(sys.executable, *arguments, "--profile", str(profiles["single"]))
        _run(str(TORCHRUN), "--standalone", "--nproc_per_node=2", *arguments, "--profile", str(profiles["sharded"]))

    def folders(work_dir: Path) -> dict[str, Path]:
        return {"affinity labels": work_dir / "affinity" / "labels",
                **{step: pseudo_label_dir(work_dir, "baseline", step) for step in ("rw", "rw_crf")}}

    for (kind, single_folder), sharded_folder in zip(folders(root / "single").items(), folders(root / "sharded").values()):
        single, sharded = _labels(single_folder), _labels(sharded_folder)
        assert len(single) == 5 and single.keys() == sharded.keys(), kind
        for name in single:
            np.testing.assert_array_equal(single[name], sharded[name], err_msg=f"{kind}: {name}")


def test_a_step_whose_network_is_untrained_or_split_is_not_its_notebooks_says_what_to_do(tiny_profile):
    # catches a sharded step that would segment with an untrained DeepLab or silently ignore --split
    profiles, _ = tiny_profile
    arguments = {"profile": str(profiles["single"]), "step": "segmentation", "method": None, "variant": "aamr"}
    with pytest.raises(TrainFirst, match="run notebooks/08_segmentation.ipynb"):
        run_step(argparse.Namespace(split=None, **arguments))
    with pytest.raises(ValueError, match="works on val only"):
        run_step(argparse.Namespace(split="train", **arguments))


def test_two_gloo_ranks_make_the_single_process_segmentation(tiny_profile):
    # catches sharded val predictions that differ from one process's, or miss the trained DeepLab 08 would use
    profiles, root = tiny_profile
    folders = {}
    for name in ("single", "sharded"):
        step = Step("segmentation", profiles[name], 0, 1, 0)
        settings = segmentation_training(step.parameters, step.mixed_precision, "none")
        labels = pseudo_label_dir(step["work_dir"], "baseline", step["pseudo_label_step"], step["pseudo_label_split"])
        settings = dataclasses.replace(settings, labels=labels_identity(labels))  # as 08 saves it
        torch.manual_seed(0)  # the same stand-in for the network that 08 trained, with the profile's recipe
        model = build_segmenter("resnet18", width=8, frozen_backbone=settings.frozen_backbone).state_dict()
        folders[name] = segmenter_folder(step["work_dir"], "baseline", step["pseudo_label_step"], settings)
        folders[name].mkdir(parents=True)
        torch.save({"settings": settings.to_dict(), "model": model, "history": []}, folders[name] / "deeplab.pth")
    arguments = ["-m", "infercam.sharding", "--step", "segmentation", "--method", "baseline", "--variant", "none"]
    _run(sys.executable, *arguments, "--profile", str(profiles["single"]))
    _run(str(TORCHRUN), "--standalone", "--nproc_per_node=2", *arguments, "--profile", str(profiles["sharded"]))
    for kind in ("val", "val_crf"):
        single, sharded = _labels(folders["single"] / kind), _labels(folders["sharded"] / kind)
        assert len(single) == 3 and single.keys() == sharded.keys(), kind
        for name in single:
            np.testing.assert_array_equal(single[name], sharded[name], err_msg=f"{kind}: {name}")


def test_the_sharded_walk_takes_07s_affinity_net_and_refuses_one_trained_on_other_labels(tiny_profile, tmp_path):
    # catches a sharded walk that looks for 07's AffinityNet, or the labels it learned from, elsewhere than 07
    # keeps them, and one that walks with a network trained on affinity labels made since
    profiles, root = tiny_profile
    work, profile = tmp_path / "trained", tmp_path / "trained.yaml"
    profile.write_text(profiles["single"].read_text().replace(str(root / "single"), str(work))
                       .replace(f"affinity_weights: {root / 'affinity.pth'}", 'affinity_weights: ""')
                       + "aff_batch_size: 2\n")  # five images make batches

    def step(name: str) -> argparse.Namespace:
        return argparse.Namespace(profile=str(profile), step=name, method="baseline", split=None, variant=None)

    run_step(step("cams"))
    label_dir = run_step(step("affinity_labels"))
    with pytest.raises(TrainFirst, match="run notebooks/07_random_walk.ipynb"):
        run_step(step("random_walk"))

    walk = Step("random_walk", profile, 0, 1, 0)
    (work / "classifier").mkdir()  # 07 fine-tunes AffinityNet from 01's classifier
    torch.save(build_classifier("resnet18", width=walk["width"]).state_dict(), work / "classifier" / "classifier.pth")
    train_affinity_net(walk.dataset("train"), label_dir, affinity_training(walk.parameters, walk.mixed_precision),
                       affinity_checkpoint(work), names=sorted(p.stem for p in label_dir.glob("*.png")), progress=False)
    assert label_dir == affinity_label_dir(work)
    walked = run_step(step("random_walk"))
    assert len(list(walked.glob("*.png"))) == 5

    record = label_dir / "settings.json"  # the affinity labels made again with another alpha_low
    made_since = json.loads(record.read_text())
    made_since["alpha_low"] += 1
    record.write_text(json.dumps(made_since))
    with pytest.raises(CheckpointError, match="labels"):
        run_step(step("random_walk"))
