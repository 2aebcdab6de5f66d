"""The per-image steps sharded across processes: one process per GPU, launched by ``torchrun``.

    torchrun --nproc_per_node=8 -m infercam.sharding --profile paper --step cams --split train_aug --method ours
    python -m infercam.sharding --profile rehearsal --step affinity_labels                # one process

Steps (each writes where its notebook reads, with that notebook's parameters and the profile's):
``cams`` (01-04: a method's maps of a split), ``affinity_labels`` (07: from the baseline maps of
train), ``random_walk`` (07: a method's pseudo labels of a split, with the profile's AffinityNet or
07's trained one), ``segmentation`` (08: a trained DeepLab's val predictions, with and without CRF).
Rank r of n takes images r, r+n, r+2n, ... of the step's list (:func:`shard`) that are not saved yet.
Each image's output is its own file written atomically, so ranks never collide and an interrupted
run, launched again, computes only what is missing. Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK
set) each rank takes GPU LOCAL_RANK and the ranks join a process group (NCCL on GPUs, gloo on CPUs)
only to wait for each other at the end.

Training stays on one device (the notebooks train; these steps refuse to start without the finished
network): IRN's and SEAM's users report that multi-GPU training without synchronised BatchNorm loses
points, and psa's classifier and AffinityNet train with per-GPU batches of 8 or fewer, where
unsynchronised statistics are the noisiest.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from infercam.affinity_net import (affinity_checkpoint, affinity_label_dir, affinity_training, load_affinity_weights,
                                   load_finished_affinity_net, make_affinity_labels, pseudo_label_dir,
                                   random_walk_labels)
from infercam.conditional import MethodSettings, compute_maps, maps_dir
from infercam.config import (check_parameter_types, check_writable, load_profile, resolve_device,
                             resolve_mixed_precision, seed_everything)
from infercam.crf import PSA_CRF
from infercam.datasets import VOCSegmentation
from infercam.notebooks import NOTEBOOKS_DIR, notebook_defaults
from infercam.segmentation import (load_finished_segmenter, segment_dataset, segmentation_training, segmenter_folder,
                                   training_label_dir)
from infercam.training import load_baseline_classifier

METHODS = {"baseline": MethodSettings(), "split_unite": MethodSettings(split_unite=True),
           "iterative": MethodSettings(iterative=True), "ours": MethodSettings(split_unite=True, iterative=True)}
STEPS = {"cams": "01_baseline_cam", "affinity_labels": "07_random_walk", "random_walk": "07_random_walk",
         "segmentation": "08_segmentation"}  # the notebook whose parameters each step takes


class TrainFirst(RuntimeError):
    """A step needs a network that only its notebook trains (training stays on one device)."""


def shard(names: list[str], rank: int, world_size: int) -> list[str]:
    """Rank ``rank``'s share of ``names``: every ``world_size``-th name, from the ``rank``-th."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    return names[rank::world_size]


def _launched_rank() -> tuple[int, int, int]:
    """(rank, world size, local rank) that torchrun set in the environment; (0, 1, 0) without it."""
    return tuple(int(os.environ.get(name, default)) for name, default in
                 (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)))


def _first(names: list[str], count: int | None) -> list[str]:
    return names if count is None else names[:count]


class Step:
    """What every step shares: the parameters (notebook defaults, then the profile), the device of
    this rank, and this rank's share of a name list."""

    def __init__(self, step: str, profile: str | os.PathLike, rank: int, world_size: int, local_rank: int):
        defaults, profile_values = notebook_defaults(NOTEBOOKS_DIR / f"{STEPS[step]}.ipynb"), load_profile(profile)
        check_parameter_types(profile_values, defaults, f"{STEPS[step]}.ipynb's parameters cell")
        self.parameters = {**defaults, **profile_values}
        self.rank, self.world_size = rank, world_size
        seed_everything(self.parameters["seed"])
        self.device = resolve_device(self.parameters["device"])
        if self.device.type == "cuda":
            self.device = torch.device("cuda", local_rank)
        self.mixed_precision = resolve_mixed_precision(self.parameters["mixed_precision"], self.device)
        self.work = check_writable(self.parameters["work_dir"])

    def __getitem__(self, key: str):
        return self.parameters[key]

    def dataset(self, split: str) -> VOCSegmentation:
        return VOCSegmentation(self["data_root"], split)

    def share(self, names: list[str]) -> list[str]:
        return shard(names, self.rank, self.world_size)


def sharded_maps(step: Step, split: str, method: str) -> Path:
    """This rank's share of ``method``'s maps of ``split`` with the profile's classifier and CAM protocol."""
    dataset = step.dataset(split)
    model = load_baseline_classifier(step["work_dir"], step["profile"], step["classifier_weights"], step["backbone"],
                                     step["cam_output_stride"], step.device)
    return compute_maps(METHODS[method], model, dataset, step["work_dir"], step["cam_scales"], step["cam_flip"],
                        step.device, step.mixed_precision, names=step.share(dataset.names), progress=step.rank == 0,
                        batch_size=step["cam_batch_size"])


def sharded_affinity_labels(step: Step) -> Path:
    """This rank's share of 07's affinity labels: its first train images, from the baseline maps."""
    train = step.dataset("train")
    return make_affinity_labels(train, maps_dir(step["work_dir"], METHODS["baseline"], "train"),
                                affinity_label_dir(step.work),
                                names=step.share(_first(train.names, step["num_label_images"])),
                                alpha_low=step["alpha_low"], alpha_high=step["alpha_high"], scale=step["label_scale"],
                                progress=step.rank == 0)


def _affinity_net(step: Step) -> torch.nn.Module:
    """07's AffinityNet: the profile's weights, or the network 07 trained."""
    if step["affinity_weights"]:
        return load_affinity_weights(step["affinity_weights"], step["backbone"], step["width"]).to(step.device).eval()
    settings = affinity_training(step.parameters, step.mixed_precision)
    checkpoint = affinity_checkpoint(step.work)
    finished = load_finished_affinity_net(settings, checkpoint, affinity_label_dir(step.work), step.device)
    if finished is None:
        raise TrainFirst(f"no trained AffinityNet at {checkpoint}: run notebooks/07_random_walk.ipynb with this profile "
                         "first (it trains on one device), or set affinity_weights in the profile")
    return finished[0].eval()


def sharded_random_walk(step: Step, split: str, method: str) -> Path:
    """This rank's share of 07's pseudo labels (walked, and walked + CRF) of ``method``'s maps of
    ``split``: train's first num_eval_images, every image of another split (08's training images)."""
    dataset = step.dataset(split)
    names = _first(dataset.names, step["num_eval_images"]) if split == "train" else dataset.names
    return random_walk_labels(_affinity_net(step), dataset, maps_dir(step["work_dir"], METHODS[method], split),
                              pseudo_label_dir(step["work_dir"], method, "rw", split), names=step.share(names),
                              alpha=step["rw_alpha"], beta=step["rw_beta"], logt=step["rw_logt"],
                              crf_dir=pseudo_label_dir(step["work_dir"], method, "rw_crf", split), crf=PSA_CRF,
                              device=step.device, mixed_precision=step.mixed_precision, progress=step.rank == 0)


def sharded_segmentation(step: Step, method: str, variant: str) -> Path:
    """This rank's share of 08's val predictions (and their CRF) by the DeepLab that 08 trained on
    ``method``'s pseudo labels with the saliency use ``variant``."""
    settings = segmentation_training(step.parameters, step.mixed_precision, variant)
    out = segmenter_folder(step["work_dir"], method, step["pseudo_label_step"], settings)
    labels = training_label_dir(step["work_dir"], step.dataset(step["pseudo_label_split"]), method, step["pseudo_label_step"])
    finished = load_finished_segmenter(settings, out / "deeplab.pth", labels, step.device)
    if finished is None:
        raise TrainFirst(f"no trained DeepLab at {out / 'deeplab.pth'}: run notebooks/08_segmentation.ipynb with this "
                         "profile first (it trains on one device)")
    val = step.dataset("val")
    return segment_dataset(finished[0], val, out / "val", settings.identity(),
                           step.share(_first(val.names, step["seg_val_images"])), step["test_scales"],
                           step["test_flip"], crf_dir=out / "val_crf", device=step.device,
                           mixed_precision=step.mixed_precision, progress=step.rank == 0)


def run_step(args: argparse.Namespace, rank: int = 0, world_size: int = 1, local_rank: int = 0) -> Path:
    """This rank's share of ``args.step``; the folder it writes."""
    step = Step(args.step, args.profile, rank, world_size, local_rank)
    method = args.method or ("ours" if args.step == "cams" else step["pseudo_label_method"])
    if args.step == "cams":
        return sharded_maps(step, args.split or "train", method)
    if args.step == "random_walk":
        return sharded_random_walk(step, args.split or "train", method)
    fixed_split = {"affinity_labels": "train", "segmentation": "val"}[args.step]
    if args.split not in (None, fixed_split):
        raise ValueError(f"--step {args.step} works on {fixed_split} only (as its notebook does), not "
                         f"--split {args.split}: leave --split out")
    if args.step == "affinity_labels":
        return sharded_affinity_labels(step)
    return sharded_segmentation(step, method, args.variant)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infercam.sharding", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, help="profile name under profiles/ or path to a YAML file")
    parser.add_argument("--step", choices=list(STEPS), default="cams", help="default: cams")
    parser.add_argument("--split", help="cams and random_walk: train, val or train_aug (default: train)")
    parser.add_argument("--method", choices=sorted(METHODS),
                        help="whose maps: default ours for cams, the profile's pseudo_label_method otherwise")
    parser.add_argument("--variant", choices=["none", "background_cue", "aamr"], default="aamr",
                        help="segmentation: the DeepLab trained with this use of saliency (default: aamr)")
    args = parser.parse_args(argv)
    rank, world_size, local_rank = _launched_rank()
    if world_size > 1:
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        folder = run_step(args, rank, world_size, local_rank)
        if world_size > 1:
            dist.barrier()  # the set is complete only when every rank is done
    finally:
        if world_size > 1:
            dist.destroy_process_group()
    if rank == 0:
        print(f"{args.step}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
