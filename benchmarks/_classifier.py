"""The classifier the benchmarks time: the one ``notebooks/09_computation_time.ipynb`` times for the
profile (its backbone at its CAM output stride: the profile's values over the notebook's defaults),
trained by ``01_baseline_cam`` when the profile's run has it, else the same architecture with its
starting weights (the speed does not depend on the weights; the mIoU does, so say which)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMING_NOTEBOOK = ROOT / "notebooks" / "09_computation_time.ipynb"


def benchmark_classifier(settings: dict, device):
    """(model on ``device`` in eval mode at the profile's CAM output stride, where its weights came from)."""
    from infercam.models import build_classifier
    from infercam.notebooks import notebook_defaults
    from infercam.training import load_baseline_classifier

    parameters = {**notebook_defaults(TIMING_NOTEBOOK), **settings}
    backbone, stride = parameters["backbone"], parameters["cam_output_stride"]
    trained = ROOT / parameters["work_dir"] / "classifier" / "classifier.pth"
    if parameters["classifier_weights"] or trained.is_file():
        model = load_baseline_classifier(ROOT / parameters["work_dir"], parameters["profile"],
                                         parameters["classifier_weights"], backbone, stride, device)
        return model, parameters["classifier_weights"] or str(trained)
    model = build_classifier(backbone, output_stride=stride)
    return model.to(device).eval(), f"untrained {backbone} (its starting weights: times only, no meaningful mIoU)"
