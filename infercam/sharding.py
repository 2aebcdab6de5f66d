"""CAMs of any method sharded across processes: one process per GPU, launched by ``torchrun``.

    torchrun --nproc_per_node=8 -m infercam.sharding --profile paper --split train_aug --method ours
    python -m infercam.sharding --profile rehearsal --split train --method baseline     # one process

Rank r of n computes the maps of images r, r+n, r+2n, ... of the split that are not saved yet, into
the folder the notebooks read (:func:`infercam.conditional.maps_dir`). Each image's map is its own
file written atomically, so ranks never collide and an interrupted run, launched again, computes
only what is missing. Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK set) each rank takes GPU
LOCAL_RANK and the ranks join a process group (NCCL on GPUs, gloo on CPUs) only to wait for each
other at the end. The classifier and CAM protocol are the profile's (01_baseline_cam's parameters).

Training stays on one device: IRN's and SEAM's users report that multi-GPU training without
synchronised BatchNorm loses points, and psa's classifier and AffinityNet train with per-GPU batches
of 8 or fewer, where unsynchronised statistics are the noisiest.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from infercam.conditional import MethodSettings, compute_maps
from infercam.config import load_profile, resolve_device, resolve_mixed_precision, seed_everything
from infercam.datasets import VOCSegmentation
from infercam.notebooks import NOTEBOOKS_DIR, notebook_defaults
from infercam.training import load_baseline_classifier

METHODS = {"baseline": MethodSettings(), "split_unite": MethodSettings(split_unite=True),
           "iterative": MethodSettings(iterative=True), "ours": MethodSettings(split_unite=True, iterative=True)}


def shard(names: list[str], rank: int, world_size: int) -> list[str]:
    """Rank ``rank``'s share of ``names``: every ``world_size``-th name, from the ``rank``-th."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    return names[rank::world_size]


def _launched_rank() -> tuple[int, int, int]:
    """(rank, world size, local rank) that torchrun set in the environment; (0, 1, 0) without it."""
    return tuple(int(os.environ.get(name, default)) for name, default in
                 (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)))


def sharded_maps(profile: str | os.PathLike, split: str, method: str, rank: int = 0, world_size: int = 1,
                 local_rank: int = 0) -> Path:
    """This rank's share of ``method``'s maps of ``split`` with the profile's classifier and CAM protocol."""
    parameters = {**notebook_defaults(NOTEBOOKS_DIR / "01_baseline_cam.ipynb"), **load_profile(profile)}
    seed_everything(parameters["seed"])
    device = resolve_device(parameters["device"])
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
    dataset = VOCSegmentation(parameters["data_root"], split)
    model = load_baseline_classifier(parameters["work_dir"], parameters["profile"], parameters["classifier_weights"],
                                     parameters["backbone"], parameters["cam_output_stride"], device)
    return compute_maps(METHODS[method], model, dataset, parameters["work_dir"], parameters["cam_scales"],
                        parameters["cam_flip"], device, resolve_mixed_precision(parameters["mixed_precision"], device),
                        names=shard(dataset.names, rank, world_size), progress=rank == 0,
                        batch_size=parameters["cam_batch_size"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infercam.sharding", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, help="profile name under profiles/ or path to a YAML file")
    parser.add_argument("--split", default="train", help="train, val or train_aug (default: train)")
    parser.add_argument("--method", choices=sorted(METHODS), default="ours", help="default: ours (split & unite + iterative)")
    args = parser.parse_args(argv)
    rank, world_size, local_rank = _launched_rank()
    if world_size > 1:
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        folder = sharded_maps(args.profile, args.split, args.method, rank, world_size, local_rank)
        if world_size > 1:
            dist.barrier()  # the set is complete only when every rank is done
    finally:
        if world_size > 1:
            dist.destroy_process_group()
    if rank == 0:
        print(f"{args.method} maps of {args.split}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
