"""What class-conditional inference costs against the baseline CAM, on the same images in one run:
time per image and its ratio to the baseline's, network forwards per image, pixels through the
network, where the time goes (the network's forwards vs everything else), and each method's CAM
mIoU on those images, so that the fast setting's saving and its cost in mIoU come from one run.

    python benchmarks/conditional_inference.py                 # cpu profile, 20 val images
    python benchmarks/conditional_inference.py --split train --images 60
    python benchmarks/conditional_inference.py --profile smoke --images 8 --device cpu

The methods are those of the ablation grid's Table 2 rows (infercam.conditional.MethodSettings with
the paper's rules), each also with ``conditional_inference="fast"`` (split & unite's patches at the
protocol's largest scale, iterative inference's passes after the first at its smallest), with the
difference of the fast row's mIoU to its faithful row and that difference's 95% interval (paired
bootstrap over the images), and split & unite and the fast combined module also with
``patch_batches="padded"`` (patches of different sizes padded into common forwards: fewer forwards,
more pixels, slightly different maps). The classifier is the one ``09_computation_time`` times: the
profile's backbone at its CAM output stride, trained by ``01_baseline_cam`` where that has run. Split &
unite splits by the baseline maps: its time is given without them (they are the baseline step's
output, reused) and with them (the whole cost of starting from the image). The paper: 40 against
13 minutes on VOC train, 3.1 times. The protocol is the notebooks' (scales 1.0, 0.5, no flips;
``--flip`` adds them).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _classifier import benchmark_classifier  # noqa: E402  (beside this script)

FAST = {"conditional_inference": "fast"}
PADDED = {"patch_batches": "padded"}  # fewer, larger forwards: for where a forward is mostly a fixed cost
METHODS = {"baseline": {}, "split & unite": {"split_unite": True}, "split & unite, fast": {"split_unite": True, **FAST},
           "split & unite, padded": {"split_unite": True, **PADDED},
           "iterative": {"iterative": True}, "iterative, fast": {"iterative": True, **FAST},
           "combined": {"split_unite": True, "iterative": True},
           "combined, fast": {"split_unite": True, "iterative": True, **FAST},
           "combined, fast, padded": {"split_unite": True, "iterative": True, **FAST, **PADDED}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--split", default="val", help="whose first --images images (val or train)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--scales", default="1.0,0.5", help="comma-separated (the cpu profile: 1.0,0.5; psa: 1.0,0.5,1.5,2.0)")
    parser.add_argument("--flip", action="store_true", help="each scale also flipped (psa; the notebooks' cam_flip)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch's CPU threads (default: torch's choice); on a machine busier than its cores, 1 "
                             "thread avoids waiting on descheduled peers (the CAM protocol ran about 10x faster here at load 10-11 on 2 cores)")
    parser.add_argument("--batch-size", type=int, default=4, help="images of one size iterated together (row 'iterative, batched')")
    args = parser.parse_args(argv)

    import numpy as np

    from infercam import paper
    from infercam.conditional import MethodSettings
    from infercam.config import load_profile, resolve_device
    from infercam.datasets import VOCSegmentation
    from infercam.bootstrap import verdict
    from infercam.timing import machine_load, time_cam_methods, with_mious

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = load_profile(args.profile)
    device = resolve_device(args.device)
    model, source = benchmark_classifier(settings, device)
    scales = [float(s) for s in args.scales.split(",")]
    dataset = VOCSegmentation(ROOT / settings["data_root"], args.split)
    names = dataset.names[:args.images]
    images = [dataset.load_image(name) for name in names]
    class_ids = [np.flatnonzero(dataset.cls_labels[dataset.names.index(name)]) for name in names]
    protocol = dict(scales=scales, flip=args.flip, device=device, mixed_precision="auto")
    batched = f"iterative, batched ({args.batch_size} images)"
    methods = {label: MethodSettings(**changes) for label, changes in {**METHODS, batched: METHODS["iterative"]}.items()}
    table, _, maps = time_cam_methods(model, images, class_ids, methods, protocol, batch_sizes={batched: args.batch_size},
                                      keep_maps=list(methods), progress=False)
    modules = ("split & unite", "iterative", "combined")
    table = with_mious(table, maps, class_ids, [dataset.load_label(name) for name in names],
                       against={**{f"{module}, fast": module for module in modules}, "combined, fast, padded": "combined"})
    print(f"class-conditional inference, profile {args.profile}, {len(names)} {args.split} images, scales {scales}"
          f"{' x flip' if args.flip else ''}, device {device}, weights: {source}; machine: {machine_load()}")
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    for module in modules:
        faithful, fast = table.loc[module], table.loc[f"{module}, fast"]
        print(f"{module}: fast {fast['× baseline']:.2f}x the baseline's time against faithful {faithful['× baseline']:.2f}x; "
              f"mIoU fast {fast['mIoU (%)']:.2f} against faithful {faithful['mIoU (%)']:.2f}: "
              f"{verdict(fast['Δ mIoU'], fast['Δ low'], fast['Δ high'], len(names))}")
    for label, protocol_part in (("split & unite", "the whole protocol"), ("split & unite, fast", "its largest scale")):
        patches = table.loc[label]
        print(f"floor: the paper's patches at {protocol_part} take {patches['× baseline']:.2f}x the baseline's time "
              f"({patches['pixels × baseline']:.2f}x its pixels, {patches['forwards / image']:.1f} forwards per image): "
              "a combined module that infers them so costs at least that")
    minutes, fast = paper.CAM_MINUTES, table.loc["combined, fast"]
    print(f"paper: {minutes['ours']} against {minutes['baseline']} minutes on VOC train "
          f"({minutes['ours'] / minutes['baseline']:.1f} times). The goal, the combined module at most 1.5x the "
          f"baseline's time within 0.3 mIoU points of the faithful one: fast {fast['× baseline']:.2f}x, "
          f"{fast['Δ mIoU']:+.2f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
