"""The GPU path checked in one command: run it once on a machine with CUDA, a few minutes.

    python benchmarks/gpu_check.py                  # every check on the GPU (device cuda)
    python benchmarks/gpu_check.py --checks resume cams_cpu_vs_gpu
    python benchmarks/gpu_check.py --dry-run        # the same code on the CPU, tiny inputs (tests/test_gpu_check.py)

Checks (``--checks``; all by default), each printed and written to ``--out`` (JSON):

* ``smoke_book``: every notebook of the smoke profile on ``device: cuda`` (its own work_dir under
  ``--scratch``), with the precision and the non-deterministic operations its metrics recorded.
* ``resume``: a small classifier trained straight, again straight, and interrupted after its first
  epoch then resumed, on the GPU: are the three sets of weights identical (deterministic settings)?
* ``cams_cpu_vs_gpu``: the same classifier's CAMs (float32, psa's 4 scales x flip) of the same
  images on the CPU and on the GPU: the largest difference.
* ``walk_repeat``: the random walk of the same scores and affinities (VOC's 500 x 375 grid) twice on
  the GPU (identical?) and once on the CPU (largest difference): the GPU's sparse products run in
  cuSPARSE, whose determinism torch does not promise for them.
* ``bf16_vs_fp32``: CAM mIoU (best background score) of ``--images`` train images of
  ``--profile`` in bfloat16 autocast and in float32, with the profile's trained classifier (else the
  smoke book's).
* ``peak_memory``: peak GPU memory and seconds of one step of each network at VOC size: classifier
  training (ResNet-38, crop 448, batch 16), CAM inference (ResNet-38, 4 scales x flip, 500 x 375),
  AffinityNet training (ResNet-38, crop 448, batch 8), the random walk (500 x 375), DeepLab v2
  training (ResNet-101, crop 321, batch 10); random weights and inputs (memory and speed do not
  depend on them), in the precision ``mixed_precision="auto"`` picks.

Without CUDA it stops and says so; ``--dry-run`` runs every check but the smoke book on the CPU
with tiny networks and images (the CPU stands in for the GPU, so differences are 0 and memory is
not measured): it shows that the script works, not what a GPU does.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infercam import training  # noqa: E402
from infercam.config import load_profile, resolve_device, resolve_mixed_precision, resolve_path, seed_everything  # noqa: E402

CHECKS = ("smoke_book", "resume", "cams_cpu_vs_gpu", "walk_repeat", "bf16_vs_fp32", "peak_memory")
PSA_SCALES = (1.0, 0.5, 1.5, 2.0)


class Sizes:
    """What the checks run at: VOC's sizes and psa's / deeplab-pytorch's networks on a GPU, tiny ones
    in a dry run."""

    def __init__(self, dry_run: bool):
        self.backbone, self.width = ("resnet18", 4) if dry_run else ("resnet38d", 64)
        self.seg_backbone = "resnet18" if dry_run else "resnet101"
        self.image = (60, 80) if dry_run else (375, 500)  # (height, width)
        self.classifier = (2, 64) if dry_run else (16, 448)  # (batch, crop)
        self.affinity = (2, 64) if dry_run else (8, 448)
        self.segmentation = (2, 64) if dry_run else (10, 321)
        self.cam_images = 2 if dry_run else 4  # ResNet-38 on the CPU: seconds per image
        self.tiny_voc = dict(image_size=48, num_train=4, num_val=2, num_aug=4) if dry_run else \
            dict(image_size=96, num_train=32, num_val=8, num_aug=32)


def tiny_classifier_settings(**changes):
    base = dict(backbone="resnet18", width=8, output_stride=16, epochs=2, batch_size=4, crop=48, resize_long=(40, 64),
                optimizer="sgd", lr=1e-3, head_lr_multiplier=1, bias_lr_multiplier=1, mixed_precision=False,
                num_workers=0, seed=1)
    return training.ClassifierTraining(**{**base, **changes})


def tiny_voc(scratch: Path, sizes: Sizes, split: str):
    """A split of a small generated mini-VOC (made once per scratch folder)."""
    from infercam.datasets import VOCSegmentation
    from infercam.minivoc import MiniVOCConfig, generate_minivoc

    root = scratch / "tiny" / "VOC2012"
    if not (root / "ImageSets" / "Segmentation" / f"{split}.txt").is_file():
        generate_minivoc(root, MiniVOCConfig(seed=3, **sizes.tiny_voc), progress=False)
    return VOCSegmentation(root, split)


def check_smoke_book(scratch: Path, device, sizes: Sizes) -> dict:
    """The smoke profile's notebooks on the GPU, in a work_dir of their own."""
    from infercam.notebooks import run_notebooks
    from infercam.runs import read_metrics

    subprocess.run([sys.executable, str(ROOT / "data_scripts" / "make_minivoc.py"), "--profile", "smoke"], cwd=ROOT,
                   check=True)
    profile = {**load_profile("smoke"), "device": str(device), "work_dir": str(scratch / "runs" / "smoke-cuda")}
    profile_path = scratch / "smoke-cuda.yaml"
    profile_path.write_text(yaml.safe_dump(profile))
    started = time.perf_counter()
    executed = run_notebooks(profile_path, None, scratch / "executed" / "smoke-cuda")
    contexts = {path.stem: read_metrics(profile["work_dir"], path.stem)["context"] for path in executed}
    return {"notebooks": len(executed), "seconds": time.perf_counter() - started,
            "precision": {step: context.get("precision") for step, context in contexts.items()},
            "nondeterministic_ops": sorted({op for context in contexts.values()
                                            for op in context.get("nondeterministic_ops", [])}),
            "classifier": str(Path(profile["work_dir"]) / "classifier" / "classifier.pth")}


def check_resume(scratch: Path, device, sizes: Sizes) -> dict:
    """Straight, straight again, and interrupted after epoch 1 then resumed: identical weights?"""
    dataset = tiny_voc(scratch, sizes, "train_aug")
    out = scratch / "resume"
    straight, _ = training.train_classifier(dataset, tiny_classifier_settings(), out / "a.pth", device, progress=False)
    again, _ = training.train_classifier(dataset, tiny_classifier_settings(), out / "b.pth", device, progress=False)
    real_save = training.save_checkpoint

    def save_then_stop(path, state):  # the machine dies right after the first epoch's checkpoint
        real_save(path, state)
        raise KeyboardInterrupt

    with mock.patch.object(training, "save_checkpoint", save_then_stop):
        try:
            training.train_classifier(dataset, tiny_classifier_settings(), out / "c.pth", device, progress=False)
        except KeyboardInterrupt:
            pass
    resumed, _ = training.load_or_train_classifier(dataset, tiny_classifier_settings(), out / "c.pth", device,
                                                   progress=False)

    def largest_difference(model):
        return max(float((a.double() - b.double()).abs().max()) for a, b in
                   zip(straight.state_dict().values(), model.state_dict().values()) if a.is_floating_point())

    return {"repeat_identical": largest_difference(again) == 0, "repeat_max_difference": largest_difference(again),
            "resume_identical": largest_difference(resumed) == 0, "resume_max_difference": largest_difference(resumed)}


def _classifier(sizes: Sizes, device):
    from infercam.models import build_classifier

    torch.manual_seed(0)
    model = build_classifier(sizes.backbone, width=sizes.width)
    return model.to(device).eval()


def check_cams_cpu_vs_gpu(scratch: Path, device, sizes: Sizes) -> dict:
    """One classifier's float32 CAMs of the same images on the CPU and on ``device``."""
    from infercam.cam import multiscale_cams

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*sizes.image, 3), dtype=np.uint8) for _ in range(sizes.cam_images)]
    class_ids = [[0, 14]] * len(images)
    model = _classifier(sizes, "cpu")
    with torch.no_grad():
        on_cpu = [multiscale_cams(model, [image], [ids], PSA_SCALES, True, "cpu", False)[0]
                  for image, ids in zip(images, class_ids)]
        model.to(device)
        on_device = [multiscale_cams(model, [image], [ids], PSA_SCALES, True, device, False)[0]
                     for image, ids in zip(images, class_ids)]
    differences = [float(np.abs(a - b).max()) for a, b in zip(on_cpu, on_device)]
    return {"images": len(images), "image_size": list(sizes.image), "backbone": sizes.backbone,
            "max_difference": max(differences), "mean_of_image_max_differences": float(np.mean(differences))}


def check_walk_repeat(scratch: Path, device, sizes: Sizes) -> dict:
    """The same walk twice on ``device`` and once on the CPU."""
    from infercam.affinity import FEATURE_STRIDE, pair_indices, walk_scores

    generator = torch.Generator().manual_seed(0)
    grid = tuple(-(-side // FEATURE_STRIDE) for side in sizes.image)
    first, second = pair_indices(*grid)
    affinities = torch.rand(len(first), generator=generator)
    cams = torch.rand(2, *sizes.image, generator=generator).numpy()

    def walk(on):
        return walk_scores(cams, affinities.to(on), first, second, grid).cpu()

    once, twice, on_cpu = walk(device), walk(device), walk("cpu")
    return {"grid": list(grid), "repeat_identical": bool(torch.equal(once, twice)),
            "repeat_max_difference": float((once - twice).abs().max()),
            "cpu_max_difference": float((once - on_cpu).abs().max())}


def check_bf16_vs_fp32(scratch: Path, device, sizes: Sizes, profile: str, images: int, classifier: str | None,
                       fallback_classifier: str | None, dry_run: bool) -> dict:
    """CAM mIoU of ``images`` train images in bfloat16 autocast and in float32: with ``classifier``
    (a checkpoint), else the profile's (its trained one or its ``classifier_weights``), else
    ``fallback_classifier`` (the smoke book's)."""
    from infercam.cam import BaselineCAM, infer_method_cams
    from infercam.cam_analysis import evaluate_cams
    from infercam.datasets import VOCSegmentation
    from infercam.models import build_classifier
    from infercam.training import classifier_from_checkpoint, load_baseline_classifier, load_checkpoint

    def from_checkpoint(path):
        model = classifier_from_checkpoint(load_checkpoint(path))
        model.set_output_stride(8)
        return model.to(device).eval(), str(path)

    if dry_run:
        dataset = tiny_voc(scratch, sizes, "train")
        model, source = build_classifier("resnet18", width=4).to(device).eval(), "random weights (dry run)"
    else:
        settings = load_profile(profile)
        if settings.get("profile", profile) != "paper":  # the offline profiles' data is generated (at once if made)
            subprocess.run([sys.executable, str(ROOT / "data_scripts" / "make_minivoc.py"), "--profile", profile],
                           cwd=ROOT, check=True)
        dataset = VOCSegmentation(resolve_path(settings["data_root"]), "train")
        if classifier:
            model, source = from_checkpoint(classifier)
        else:
            try:
                model = load_baseline_classifier(settings["work_dir"], profile, settings.get("classifier_weights", ""),
                                                 settings.get("backbone", "resnet18"), 8, device)
                source = settings.get("classifier_weights") or f"{settings['work_dir']}/classifier/classifier.pth"
            except FileNotFoundError:
                if not fallback_classifier:
                    raise
                model, source = from_checkpoint(fallback_classifier)
    names = dataset.names[:images]
    result = {"data": str(dataset.root), "images": len(names), "classifier": source}
    for label, bfloat16 in (("float32", False), ("bfloat16", True)):
        out = scratch / "bf16_vs_fp32" / label
        started = time.perf_counter()
        infer_method_cams(BaselineCAM(PSA_SCALES, True, device, bfloat16), model, dataset, out, names=names,
                          progress=False)
        seconds = time.perf_counter() - started
        best = evaluate_cams(dataset, out, names=names, progress=False).best
        result[label] = {"miou": float(best["miou"]), "threshold": float(best["threshold"]), "seconds": seconds}
    result["miou_difference_bf16_minus_fp32"] = result["bfloat16"]["miou"] - result["float32"]["miou"]
    return result


def _measure(device, step) -> dict:
    """Peak memory (MiB, GPU only) and seconds of ``step()``, run twice: the second run is timed (the
    first pays cuDNN's set-up)."""
    from infercam.timing import timed

    step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with timed(device) as watch:
        step()
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None
    return {"peak_memory_mib": peak, "seconds": watch.seconds}


def _training_step(model, batch_loss):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)

    def step():
        optimizer.zero_grad(set_to_none=True)
        batch_loss().backward()
        optimizer.step()

    return step


def check_peak_memory(scratch: Path, device, sizes: Sizes) -> dict:
    """One step of each network at VOC size: peak GPU memory and seconds."""
    from infercam.affinity import affinity_loss, walk_scores
    from infercam.affinity_net import image_affinities
    from infercam.cam import response_maps
    from infercam.config import autocast
    from infercam.models import build_affinity_net, build_segmenter

    precision = resolve_mixed_precision("auto", device)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*sizes.image, 3), dtype=np.uint8)
    results = {}

    def images(batch, crop):
        return torch.randn(batch, 3, crop, crop, device=device)

    batch, crop = sizes.classifier
    classifier = _classifier(sizes, device).train()
    x, labels = images(batch, crop), (torch.rand(batch, 20, device=device) < 0.1).float()

    def classifier_loss():
        with autocast(device, precision):
            logits = classifier(x)
        return F.multilabel_soft_margin_loss(logits.float(), labels)

    results[f"classifier training ({sizes.backbone}, crop {crop}, batch {batch})"] = _measure(
        device, _training_step(classifier, classifier_loss))
    classifier.eval()
    with torch.no_grad():
        results[f"CAM inference ({sizes.backbone}, 4 scales x flip, {sizes.image[1]} x {sizes.image[0]})"] = _measure(
            device, lambda: response_maps(classifier, [image], [[0, 14]], PSA_SCALES, True, device, precision))
    del classifier, x

    batch, crop = sizes.affinity
    affinity_net = build_affinity_net(sizes.backbone, sizes.width).to(device).train()
    x = images(batch, crop)

    def affinity_step_loss():
        with autocast(device, precision):
            affinities = affinity_net(x)
        bg_pos, fg_pos, neg = (torch.rand_like(affinities) < share for share in (0.3, 0.3, 0.2))
        return affinity_loss(affinities, bg_pos, fg_pos, neg)[0]

    results[f"AffinityNet training ({sizes.backbone}, crop {crop}, batch {batch})"] = _measure(
        device, _training_step(affinity_net, affinity_step_loss))
    affinity_net.eval()
    cams = rng.random((2, *sizes.image)).astype(np.float32)

    def walk():
        affinities, first, second, grid = image_affinities(affinity_net, image, 5, device, precision)
        return walk_scores(cams, affinities, first, second, grid)

    results[f"random walk ({sizes.backbone} affinities, {sizes.image[1]} x {sizes.image[0]})"] = _measure(device, walk)
    del affinity_net, x

    batch, crop = sizes.segmentation
    segmenter = build_segmenter(sizes.seg_backbone, width=sizes.width).to(device).train()
    x, target = images(batch, crop), torch.from_numpy(rng.integers(0, 21, (batch, crop, crop))).to(device)

    def segmentation_loss():
        with autocast(device, precision):
            logits = segmenter(x)
        logits = F.interpolate(logits.float(), size=(crop, crop), mode="bilinear", align_corners=False)
        return F.cross_entropy(logits, target, ignore_index=255)

    results[f"DeepLab v2 training ({sizes.seg_backbone}, crop {crop}, batch {batch})"] = _measure(
        device, _training_step(segmenter, segmentation_loss))
    del segmenter, x
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"precision": "bfloat16 autocast" if precision else "float32", "steps": results}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", nargs="+", choices=CHECKS, default=list(CHECKS))
    parser.add_argument("--dry-run", action="store_true", help="run on the CPU with tiny inputs (no GPU needed)")
    parser.add_argument("--device", default="cuda", help="the GPU to check (default: cuda, e.g. cuda:1)")
    parser.add_argument("--profile", default="cpu", help="profile of the bf16_vs_fp32 check's data and classifier")
    parser.add_argument("--images", type=int, default=300, help="train images of the bf16_vs_fp32 check")
    parser.add_argument("--classifier", help="checkpoint for bf16_vs_fp32 (default: the profile's, else the smoke book's)")
    parser.add_argument("--scratch", help="folder for its runs (default: a temporary folder)")
    parser.add_argument("--out", default=str(ROOT / "build" / "gpu_check.json"), help="where the results go (JSON)")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check needs CUDA, and torch sees no GPU (torch.cuda.is_available() is False): run it on a "
              "machine with an NVIDIA GPU and a CUDA build of torch, or pass --dry-run to run its checks on the CPU "
              "with tiny inputs", file=sys.stderr)
        return 2
    device = resolve_device("cpu" if args.dry_run else args.device)
    sizes = Sizes(args.dry_run)
    checks = [name for name in CHECKS if name in args.checks and not (args.dry_run and name == "smoke_book")]
    seed_everything(0)
    with tempfile.TemporaryDirectory() as temporary:
        scratch = Path(args.scratch or temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        report = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
                  else "cpu (dry run)", "torch": torch.__version__, "dry_run": args.dry_run, "checks": {}}
        for name in checks:
            print(f"--- {name}", flush=True)
            started = time.perf_counter()
            try:
                if name == "bf16_vs_fp32":
                    smoke = report["checks"].get("smoke_book", {}).get("classifier")
                    result = check_bf16_vs_fp32(scratch, device, sizes, args.profile, args.images, args.classifier,
                                                smoke, args.dry_run)
                else:
                    result = globals()[f"check_{name}"](scratch, device, sizes)
            except Exception as error:  # one failed check must not hide the others' results
                result = {"error": f"{type(error).__name__}: {error}"}
            result["check_seconds"] = time.perf_counter() - started
            report["checks"][name] = result
            print(json.dumps(result, indent=2), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    failed = [name for name, result in report["checks"].items() if "error" in result]
    print(f"wrote {out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
