"""The classifier the benchmarks time: the profile's trained checkpoint when there is one, else the
same architecture with random weights (speed does not depend on the weights)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The classifier of notebooks/01_baseline_cam.ipynb in the offline profiles, when no checkpoint exists.
DEFAULT_ARCHITECTURE = {"backbone": "resnet18", "width": 16}


def benchmark_classifier(settings: dict, device):
    """(model at output stride 8 on ``device`` in eval mode, where its weights came from)."""
    from infercam.models import build_classifier
    from infercam.training import classifier_from_checkpoint, load_checkpoint

    checkpoint = ROOT / settings["work_dir"] / "classifier" / "classifier.pth"
    if checkpoint.exists():
        model, source = classifier_from_checkpoint(load_checkpoint(checkpoint)), str(checkpoint)
    else:
        model, source = build_classifier(**DEFAULT_ARCHITECTURE), "random weights"
    model.set_output_stride(8)
    return model.to(device).eval(), source
