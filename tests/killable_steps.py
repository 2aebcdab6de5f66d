"""Every long step on tiny seeded inputs, run in processes that a test kills (test_fault_injection).

    python tests/killable_steps.py        # reads lines of JSON ["<step>", "<inputs>", "<work>", <kill_at>]

imports every step's modules once, then runs each request ``STEPS[step](inputs, work)`` in a
forked child (seconds of imports saved per kill) and answers the child's exit status, one line
each (-9: killed). With ``kill_at`` k > 0 the child's process group dies by SIGKILL at the k-th
file the step commits (``os.replace``: every atomic write here goes through it, torch.save's
too), after cutting that file's temporary to half its bytes, as a machine that dies mid-write
leaves it. The kill is in the test's harness (this file), not in the package.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers, when run as a script
from fake_notebooks import write_fake_notebook  # noqa: E402
from tiny_data import tiny_split  # noqa: E402
from tiny_models import TinyClassifier  # noqa: E402

from infercam.ablations import run_grid  # noqa: E402
from infercam.affinity_net import make_affinity_labels, random_walk_labels, train_affinity_net  # noqa: E402
from infercam.conditional import MethodSettings, compute_maps, maps_dir  # noqa: E402
from infercam.crf import PSA_CRF  # noqa: E402
from infercam.datasets import VOCSegmentation  # noqa: E402
from infercam.models import build_affinity_net, build_segmenter  # noqa: E402
from infercam.saliency import make_saliency_maps  # noqa: E402
from infercam.saliency_net import SaliencyTraining, train_saliency_net  # noqa: E402
from infercam.seeds import run_seeds  # noqa: E402
from infercam.segmentation import SegmentationTraining, segment_dataset, train_segmenter  # noqa: E402
from infercam.training import AffinityTraining, ClassifierTraining, train_classifier  # noqa: E402
from infercam.voc import save_label_png  # noqa: E402

TINY_TRAINING = dict(backbone="resnet18", width=4, epochs=2, batch_size=2, crop=32, resize_long=(24, 48),
                     optimizer="adamw", lr=1e-3, head_lr_multiplier=1, bias_lr_multiplier=1, mixed_precision=False,
                     num_workers=0, seed=1)
# A throwaway run notebook for the batches: made-up metrics from its parameters, no model, no data.
FAKE_RUN = """from infercam.runs import write_metrics
write_metrics(work_dir, metrics_step or "04_combined", {"slug": configuration, "images": 3, "best_threshold": 0.2,
                                                      "miou": miou, "seconds_per_image": 1.0, "table1": {
    "baseline": {"train mIoU (%)": 40.0, "val mIoU (%)": 30.0},
    "ours": {"train mIoU (%)": 40.0 + seed, "val mIoU (%)": 31.0}}}, {})
"""
METHODS = {"baseline": MethodSettings(), "split_unite": MethodSettings(split_unite=True, min_size=8),
           "iterative": MethodSettings(iterative=True), "ours": MethodSettings(split_unite=True, iterative=True,
                                                                                min_size=8)}


def prepare_inputs(inputs: Path) -> None:
    """What the steps read: a tiny mini-VOC, a trained tiny classifier, its baseline maps, affinity
    labels, pseudo labels (the ground truth stands in) and saliency maps."""

    dataset = tiny_split(inputs, "train", seed=5, num_train=4, num_val=2, num_aug=1)
    train_classifier(dataset, ClassifierTraining(**{**TINY_TRAINING, "epochs": 1, "output_stride": 8}),
                     inputs / "classifier.pth", progress=False)
    compute_maps(METHODS["baseline"], TinyClassifier(seed=4), dataset, inputs, scales=(1.0,), progress=False)
    make_affinity_labels(dataset, maps_dir(inputs, METHODS["baseline"], "train"), inputs / "affinity_labels",
                         progress=False)
    (inputs / "pseudo").mkdir()
    for name in dataset.names:
        save_label_png(dataset.load_label(name), inputs / "pseudo" / f"{name}.png")
    make_saliency_maps(dataset, inputs / "saliency", progress=False)
    write_fake_notebook(inputs / "notebooks" / "04_combined.ipynb",
                        'work_dir = "unused"\nseed = 0\nconfiguration = ""\nmetrics_step = ""\nmiou = 0.4', FAKE_RUN)
    (inputs / "grid.yaml").write_text(yaml.safe_dump({"description": "fault injection", "configurations": [
        {"name": "low"}, {"name": "high", "parameters": {"miou": 0.5}}]}))


def _train(inputs: Path) -> VOCSegmentation:
    return VOCSegmentation(inputs / "VOC2012", "train")


def _maps(method: str):
    def step(inputs: Path, work: Path) -> None:
        compute_maps(METHODS[method], TinyClassifier(seed=4), _train(inputs), work, scales=(1.0, 0.5), progress=False)
    return step


def affinity_labels(inputs: Path, work: Path) -> None:

    make_affinity_labels(_train(inputs), maps_dir(inputs, METHODS["baseline"], "train"), work / "labels",
                         progress=False)


def random_walk(inputs: Path, work: Path) -> None:


    torch.manual_seed(0)
    model = build_affinity_net("resnet18", width=4).eval()
    random_walk_labels(model, _train(inputs), maps_dir(inputs, METHODS["baseline"], "train"), work / "rw",
                       crf_dir=work / "rw_crf", crf=PSA_CRF, progress=False)


def classifier_training(inputs: Path, work: Path) -> None:

    train_classifier(_train(inputs), ClassifierTraining(**TINY_TRAINING, output_stride=16), work / "classifier.pth",
                     progress=False)


def affinity_training(inputs: Path, work: Path) -> None:

    settings = AffinityTraining(**TINY_TRAINING, initial_weights=str(inputs / "classifier.pth"))
    train_affinity_net(_train(inputs), inputs / "affinity_labels", settings, work / "affinity_net.pth", progress=False)


def saliency_training(inputs: Path, work: Path) -> None:

    settings = SaliencyTraining(**TINY_TRAINING, num_scenes=4, scene_size=48)
    train_saliency_net(settings, work / "saliency_net.pth", progress=False)


def deeplab_training(inputs: Path, work: Path) -> None:

    settings = SegmentationTraining(**TINY_TRAINING, saliency="aamr")
    train_segmenter(_train(inputs), inputs / "pseudo", inputs / "saliency", settings, work / "deeplab.pth",
                    progress=False)


def segmentation(inputs: Path, work: Path) -> None:


    torch.manual_seed(0)
    model = build_segmenter("resnet18", width=4).eval()
    segment_dataset(model, _train(inputs), work / "val", {"seeded": 0}, crf_dir=work / "val_crf", progress=False)


def saliency_maps(inputs: Path, work: Path) -> None:

    make_saliency_maps(_train(inputs), work / "saliency", progress=False)


def ablation_batch(inputs: Path, work: Path) -> None:

    run_grid(inputs / "grid.yaml", {"work_dir": str(work / "runs"), "profile": "fault"}, output_dir=work / "executed",
             notebook=inputs / "notebooks" / "04_combined.ipynb", progress=False)


def seed_batch(inputs: Path, work: Path) -> None:

    profile = work.with_suffix(".yaml")  # beside the work folder: an input, not a result
    profile.write_text(yaml.safe_dump({"profile": "fault", "work_dir": str(work / "runs"), "seed": 0}))
    run_seeds(profile, [0, 1], notebooks=["04_combined"], notebooks_dir=inputs / "notebooks",
              output_dir=work / "executed")


STEPS = {**{f"maps_{method}": _maps(method) for method in METHODS}, "affinity_labels": affinity_labels,
         "random_walk": random_walk, "saliency_maps": saliency_maps, "classifier_training": classifier_training,
         "affinity_training": affinity_training, "saliency_training": saliency_training,
         "deeplab_training": deeplab_training, "segmentation": segmentation,
         "ablation_batch": ablation_batch, "seed_batch": seed_batch}


def die_at_commit(kill_at: int) -> None:
    """Make the ``kill_at``-th ``os.replace`` of this process cut its source to half and SIGKILL
    its process group (0: never)."""
    real_replace, commits = os.replace, [0]

    def replace(source, target, **kwargs):
        commits[0] += 1
        if commits[0] == kill_at:
            os.truncate(source, os.path.getsize(source) // 2)
            os.killpg(0, signal.SIGKILL)
        return real_replace(source, target, **kwargs)

    os.replace = replace


def serve(requests, answers) -> None:
    """Run each request line in a forked child (this process has imported everything but computed
    nothing, so no thread pool is copied half-started); answer its exit status."""
    for line in requests:
        step, inputs, work, kill_at = json.loads(line)
        child = os.fork()
        if child == 0:
            os.setpgid(0, 0)  # its own group: the kill takes the child and what it started, not this server
            os.dup2(2, 1)  # the step's prints stay out of the answers
            try:
                die_at_commit(kill_at)
                STEPS[step](Path(inputs), Path(work))
            except BaseException:  # the test reads the traceback from this server's stderr
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(child, 0)
        print(os.waitstatus_to_exitcode(status), file=answers, flush=True)


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
