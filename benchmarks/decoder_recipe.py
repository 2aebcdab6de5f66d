"""How the offline segmentation recipe was chosen: the decoder trained on the ground truth only.

    python benchmarks/decoder_recipe.py                       # the cpu profile's run, its recipe against two others
    python benchmarks/decoder_recipe.py --work-dirs runs/cpu runs/cpu-seeds/seed1 runs/cpu-seeds/seed2 \
        --recipes "" "batch_size=5" "epochs=30"

08 trains its networks offline as a decoder on a fixed backbone (``seg_frozen_backbone``). Each recipe
here changes 08's defaults (and the profile's values) by ``name=value`` settings of
:class:`infercam.segmentation.SegmentationTraining` and trains that decoder on the train images' own
annotations, never on pseudo labels: the recipe is calibrated on what the network can learn from
perfect labels, never on a difference between pseudo labels or uses of saliency. Each run's
classifier (01) is the backbone, under that run's seed, so several work_dirs of ``make seeds`` give
the recipe's spread over seeds. Prints val mIoU without and with the CRF, the training's seconds, and
each recipe's mean against the first one's. The trained decoders go to a temporary folder.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEGMENTATION_NOTEBOOK = ROOT / "notebooks" / "08_segmentation.ipynb"


def parse_recipe(text: str) -> dict:
    """``"batch_size=5 epochs=30"`` -> {"batch_size": 5, "epochs": 30}; ``""``: the defaults."""
    changes = {}
    for item in text.split():
        name, equals, value = item.partition("=")
        if not equals:
            raise ValueError(f"recipe {text!r}: write name=value settings separated by spaces, e.g. 'batch_size=5 lr=0.004'")
        changes[name] = ast.literal_eval(value)
    return changes


def run_seed(work_dir: Path) -> int:
    """The seed the run in ``work_dir`` was made with (its classifier's chapter records it)."""
    recorded = work_dir / "metrics" / "01_baseline_cam.parameters.json"
    if not recorded.is_file():
        sys.exit(f"error: {recorded} is missing: run notebooks/01_baseline_cam.ipynb into {work_dir} first")
    return json.loads(recorded.read_text())["seed"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--work-dirs", nargs="+", help="runs whose classifier is the backbone (default: the profile's)")
    parser.add_argument("--recipes", nargs="+", default=["", "batch_size=5", "epochs=30"],
                        help="name=value changes of the decoder's training, '' for 08's recipe")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    from infercam.config import load_profile, resolve_device, resolve_mixed_precision, resolve_path, seed_everything
    from infercam.datasets import VOCSegmentation
    from infercam.metrics import evaluate_label_maps
    from infercam.notebooks import notebook_defaults
    from infercam.segmentation import segment_dataset, segmentation_training, train_segmenter
    from infercam.training import training_seconds

    parameters = {**notebook_defaults(SEGMENTATION_NOTEBOOK), **load_profile(args.profile)}
    device = resolve_device(args.device)
    mixed_precision = resolve_mixed_precision(parameters["mixed_precision"], device)
    train = VOCSegmentation(resolve_path(parameters["data_root"]), parameters["pseudo_label_split"])
    val = VOCSegmentation(resolve_path(parameters["data_root"]), "val")
    train_names = train.names[:parameters["seg_train_images"]]
    val_names = val.names[:parameters["seg_val_images"]]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for work_dir in [resolve_path(w) for w in (args.work_dirs or [parameters["work_dir"]])]:
            seed = run_seed(work_dir)
            base = segmentation_training({**parameters, "seed": seed, "work_dir": str(work_dir)}, mixed_precision)
            for index, recipe in enumerate(args.recipes):
                settings = dataclasses.replace(base, **parse_recipe(recipe))
                seed_everything(seed)
                folder = Path(scratch) / f"{seed}-{index}"
                model, history = train_segmenter(train, train.label_dir, None, settings, folder / "deeplab.pth", device,
                                                 progress=False, names=train_names)
                # the training loop's time, as 08 reports it: the backbone's features, computed once for all
                # the recipes of a seed, are left out
                seconds = training_seconds(history)
                segment_dataset(model, val, folder / "val", settings.identity(), val_names, parameters["test_scales"],
                                parameters["test_flip"], crf_dir=folder / "val_crf", device=device,
                                mixed_precision=mixed_precision, progress=False)
                rows.append({"recipe": recipe or "08's", "seed": seed, "training s": seconds,
                             **{step: 100 * evaluate_label_maps(val, folder / sub, val_names)["miou"]
                                for step, sub in (("val, no CRF", "val"), ("val, CRF", "val_crf"))}})
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    means = table.groupby("recipe", sort=False)[["val, no CRF", "val, CRF", "training s"]].mean()
    means["min over seeds, CRF"] = table.groupby("recipe", sort=False)["val, CRF"].min()
    means["Δ CRF vs first"] = means["val, CRF"] - means["val, CRF"].iloc[0]
    print(f"\nDecoder on the ground truth of {len(train_names)} {train.split} images, val mIoU (%) on the first "
          f"{len(val_names)} val images, device {device}; per seed:")
    print(table.round(2).to_string(index=False))
    print(f"\nMean over seeds {sorted(int(seed) for seed in table['seed'].unique())}:")
    print(means.round(2).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
