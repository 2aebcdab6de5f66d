"""What the steps cost on this machine (paper section 4.5): seconds per image of the CAM methods and
the network forwards they make, of AffinityNet's forward, the random walk and the dense CRF, and
the training times the notebooks recorded in their metrics files, extrapolated to VOC's image counts.

Used by ``benchmarks/conditional_inference.py``, ``benchmarks/random_walk.py`` and
``notebooks/09_computation_time.ipynb``. Times are wall-clock (``time.perf_counter``), the GPU
synchronised at both ends of each reading, so that queued kernels count where they ran.
"""
from __future__ import annotations

import os
import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from infercam.config import no_bar
from infercam.affinity import walk_scores
from infercam.affinity_net import image_affinities
from infercam.bootstrap import ImageConfusions, paired_bootstrap
from infercam.cam import infer_in_batches
from infercam.conditional import MethodSettings
from infercam.crf import PSA_CRF, CRFSettings, dense_crf
from infercam.metrics import ThresholdSweep
from infercam.runs import metrics_path, read_metrics
from infercam.sbd import TRAIN_AUG_COUNT, VOC_TRAIN_COUNT, VOC_VAL_COUNT

# The image counts the paper's section 4.5 speaks of (its 13 and 40 minutes are for VOC train), and val's,
# whose maps 01-04 evaluate.
VOC_IMAGES = {"VOC train": VOC_TRAIN_COUNT, "VOC val": VOC_VAL_COUNT, "VOC train_aug": TRAIN_AUG_COUNT}


def synchronize(device) -> None:
    """Wait for the GPU's queued work (nothing to wait for on a CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine_load() -> dict:
    """The 1-minute load average against the CPU cores: timings taken while other processes compete
    for the cores (load above the core count) are slower than the method's own cost, and with
    several threads per process much slower (threads wait on each other's descheduled peers)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every system
        load = None
    return {"load average (1 min)": load, "CPU cores": os.cpu_count(), "torch threads": torch.get_num_threads()}


class Stopwatch:
    """The reading of :func:`timed`."""

    seconds: float = 0.0


@contextmanager
def timed(device="cpu"):
    """``with timed(device) as watch: ...``, then ``watch.seconds``: the block's wall-clock seconds."""
    watch = Stopwatch()
    synchronize(device)
    started = time.perf_counter()
    try:
        yield watch
    finally:
        synchronize(device)
        watch.seconds = time.perf_counter() - started


class CountingClassifier:
    """Wraps a classifier: counts its forwards, the pixels they see and the seconds they take."""

    def __init__(self, model, device):
        self.model, self.device = model, torch.device(device)
        self.output_stride = getattr(model, "output_stride", None)
        self.forwards, self.pixels, self.seconds = 0, 0, 0.0

    def _timed(self, function, x):
        with timed(self.device) as watch:
            out = function(x)
        self.seconds += watch.seconds
        self.forwards += 1
        self.pixels += x.shape[0] * x.shape[2] * x.shape[3]
        return out

    def cam(self, x):
        return self._timed(self.model.cam, x)

    def __call__(self, x):
        return self._timed(self.model, x)

    def eval(self):
        return self


@dataclass
class MethodTiming:
    """One method on a list of images: seconds per image, and what its forwards cost."""

    settings: MethodSettings
    seconds: list[float]  # per image (a batch's time shared equally among its images)
    forwards: int
    pixels: int
    network_seconds: float

    def row(self) -> dict:
        images, total = len(self.seconds), sum(self.seconds)
        return {"s / image": total / images, "forwards / image": self.forwards / images,
                "megapixels / image": self.pixels / images / 1e6, "network share of time": self.network_seconds / total}


class _TimedMethod:
    """A method (built with the CAM protocol) timed call by call on its own counting classifier."""

    def __init__(self, settings: MethodSettings, model, protocol: dict, batch_size: int = 1, keep_maps: bool = False):
        self.settings, self.method = settings, settings.build(**protocol)
        self.counted = CountingClassifier(model, protocol.get("device", "cpu"))
        self.step = 1 if settings.split_unite else batch_size  # split & unite takes one image at a time
        self.keep_maps, self.seconds, self.maps = keep_maps, [], []

    def run(self, images: list[np.ndarray], class_ids: list, baselines: list[np.ndarray] | None) -> None:
        """Time the method on these images, ``self.step`` at a time (split & unite splits by ``baselines``)."""
        for start in range(0, len(images), self.step):
            chunk = slice(start, start + self.step)
            with timed(self.counted.device) as watch:
                if self.step > 1:
                    out = infer_in_batches(self.method, self.counted, images[chunk], class_ids[chunk])
                elif self.settings.split_unite:
                    out = [self.method(self.counted, images[start], class_ids[start], baselines[start])]
                else:
                    out = [self.method(self.counted, images[start], class_ids[start])]
            self.seconds += [watch.seconds / len(out)] * len(out)
            if self.keep_maps:
                self.maps += out

    def timing(self) -> MethodTiming:
        counted = self.counted
        return MethodTiming(self.settings, self.seconds, counted.forwards, counted.pixels, counted.seconds)


def time_cam_methods(model, images: list[np.ndarray], class_ids: list, methods: dict[str, MethodSettings],
                     protocol: dict, batch_sizes: dict[str, int] | None = None, reference: str = "baseline",
                     keep_maps=(), progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list]]:
    """Every method of ``methods`` (label -> settings; ``reference`` is the baseline CAM's label) on
    the same images in one run, after one untimed warm-up (first-call allocations are not a
    method's). The methods take turns on each group of images (as many as the largest of
    ``batch_sizes``: label -> images per forward), so that a change in the machine's load over the
    run weighs on every method alike; split & unite splits by the reference's maps (not counted in
    its time). Returns the table of :func:`compare_with_baseline`, the seconds per image (one
    column a method) and the maps of the methods named in ``keep_maps``."""
    batch_sizes = batch_sizes or {}
    if methods[reference].kind != "baseline":
        raise ValueError(f"the reference {reference!r} must be the baseline CAM, not {methods[reference].kind}")
    methods[reference].build(**protocol)(model, images[0], class_ids[0])  # warm-up
    order = [reference] + [label for label in methods if label != reference]
    runs = {label: _TimedMethod(methods[label], model, protocol, batch_sizes.get(label, 1),
                                keep_maps=label == reference or label in keep_maps) for label in order}
    group = max([1, *batch_sizes.values()])
    for start in tqdm(range(0, len(images), group), desc="CAM methods, taking turns", disable=no_bar(progress), leave=False):
        chunk = slice(start, start + group)
        for label in order:
            runs[label].run(images[chunk], class_ids[chunk], runs[reference].maps[chunk])
    timings = {label: run.timing() for label, run in runs.items()}
    table = compare_with_baseline(pd.DataFrame({label: t.row() for label, t in timings.items()}).T,
                                  {label: t.settings for label, t in timings.items()}, reference)
    per_image = pd.DataFrame({label: t.seconds for label, t in timings.items()})
    return table, per_image, {label: runs[label].maps for label in keep_maps}


def with_mious(table: pd.DataFrame, maps: dict[str, list[np.ndarray]], class_ids: list,
               truths: list[np.ndarray], against: dict[str, str] | None = None) -> pd.DataFrame:
    """``table`` with each method's CAM mIoU (%) at its best background score on the images it
    timed (``maps``: label -> the maps :func:`time_cam_methods` kept; ``truths``: the label maps),
    so that a faster setting's cost and what it does to the maps are read from one run.
    ``against`` (label -> the label it stands in for, e.g. the fast setting -> the faithful one):
    also the difference of mIoU to that row, with the 95% interval of a paired bootstrap over the
    images (:func:`infercam.bootstrap.paired_bootstrap`), columns "Δ mIoU", "Δ low", "Δ high"."""
    table = table.copy()
    confusions = {}
    for label, method_maps in maps.items():
        sweep = ThresholdSweep()
        for cams, ids, truth in zip(method_maps, class_ids, truths):
            sweep.add(cams, ids, truth)
        best = sweep.best()
        table.loc[label, "mIoU (%)"], table.loc[label, "best t"] = 100 * best["miou"], best["threshold"]
        images = tuple(str(index) for index in range(len(method_maps)))
        confusions[label] = ImageConfusions(images, sweep.image_confusions(best["threshold"]))
    for label, reference in (against or {}).items():
        difference = paired_bootstrap({label: confusions[label], reference: confusions[reference]}, reference).loc[label]
        table.loc[label, ["Δ mIoU", "Δ low", "Δ high"]] = difference[["Δ", "Δ low", "Δ high"]].to_numpy()
    return table


def compare_with_baseline(table: pd.DataFrame, settings: dict[str, MethodSettings], reference: str = "baseline"):
    """Add to a table of :meth:`MethodTiming.row` rows its time and pixels against the reference's;
    split & unite rows also with the baseline maps they split by (the whole cost from the image)."""
    table = table.copy()
    base = table.loc[reference]
    table.insert(1, "× baseline", table["s / image"] / base["s / image"])
    table.insert(2, "× baseline, with its baseline maps",
                 [(seconds + (base["s / image"] if settings[label].split_unite else 0)) / base["s / image"]
                  for label, seconds in table["s / image"].items()])
    table.insert(4, "pixels × baseline", table["megapixels / image"] / base["megapixels / image"])
    return table


def time_walk_and_crf(image: np.ndarray, cams: np.ndarray, affinities: torch.Tensor, first: torch.Tensor,
                      second: torch.Tensor, grid: tuple[int, int], alpha: float = 16, beta: float = 8, logt: int = 8,
                      crf: CRFSettings = PSA_CRF, trace_memory: bool = False) -> dict:
    """Seconds of the random walk of one image's maps (background score, pooling, transition matrix,
    2 ** logt steps, upsampling: :func:`infercam.affinity.walk_scores`) and of the dense CRF on the
    walked scores, as the pseudo-label step runs them. ``trace_memory``: also the walk's peak of
    numpy/scipy allocations (tracemalloc, which slows Python allocations a little)."""
    device = affinities.device
    if trace_memory:
        tracemalloc.start()
    try:
        with timed(device) as walk:
            scores = walk_scores(cams, affinities, first, second, grid, alpha, beta, logt).cpu().numpy()
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20 if trace_memory else None
    finally:
        if trace_memory:
            tracemalloc.stop()
    with timed() as refine:
        dense_crf(image, scores / np.maximum(scores.sum(axis=0, keepdims=True), 1e-5), crf)
    row = {"random walk s": walk.seconds, "CRF s": refine.seconds}
    if trace_memory:
        row["walk peak MiB"] = peak
    return row


def time_pseudo_labels(affinity_net, images: list[np.ndarray], maps: list[np.ndarray], radius: int = 5,
                       alpha: float = 16, beta: float = 8, logt: int = 8, crf: CRFSettings = PSA_CRF,
                       device="cpu", mixed_precision: bool = False, progress: bool = True) -> pd.DataFrame:
    """Per image (rows): seconds of AffinityNet's forward (its pair affinities), of the random walk
    of ``maps`` and of the dense CRF, after one untimed warm-up on the first image."""
    affinity_net.eval()
    rows = []
    for index in tqdm(range(-1, len(images)), desc="AffinityNet, random walk, CRF", disable=no_bar(progress), leave=False):
        image, cams = images[max(index, 0)], maps[max(index, 0)]
        with timed(device) as forward:
            affinities, first, second, grid = image_affinities(affinity_net, image, radius, device, mixed_precision)
        row = {"AffinityNet forward s": forward.seconds,
               **time_walk_and_crf(image, cams, affinities, first, second, grid, alpha, beta, logt, crf)}
        if index >= 0:  # index -1: the warm-up
            rows.append(row)
    return pd.DataFrame(rows)


def extrapolate(seconds_per_image: pd.Series, counts: dict[str, int] = VOC_IMAGES) -> pd.DataFrame:
    """Minutes for each count of images (columns) at each row's seconds per image."""
    return pd.DataFrame({f"min for {name} ({count} images)": seconds_per_image * count / 60
                         for name, count in counts.items()})


def training_times(work_dir: str | os.PathLike, classifier_images: int | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The training times recorded in the metrics files of ``01_baseline_cam`` (the classifier),
    ``07_random_walk`` (AffinityNet) and ``08_segmentation`` (one row per variant), and notes on
    what is missing. Columns: seconds, images trained on, epochs (where recorded), and seconds
    per training image over all epochs. ``classifier_images``: the images the classifier trained
    on (01 does not record it: the size of its train_aug)."""
    rows, notes = {}, []

    def step_metrics(step: str) -> dict | None:
        if not metrics_path(work_dir, step).is_file():
            notes.append(f"no metrics of {step} in {work_dir}: run notebooks/{step}.ipynb for its training time")
            return None
        return read_metrics(work_dir, step)["metrics"]

    if (classifier := step_metrics("01_baseline_cam")) is not None:
        seconds = classifier["classifier"].get("training_seconds") or None
        if seconds is None:
            notes.append("the classifier was loaded, not trained (classifier_weights), so its training time is unknown")
        rows["classifier (01)"] = {"seconds": seconds, "images": classifier_images,
                                   "epochs": classifier["classifier"]["settings"].get("epochs")}
    if (affinity := step_metrics("07_random_walk")) is not None:
        seconds = affinity.get("affinity_training_seconds")
        if seconds is None:
            notes.append("AffinityNet was loaded, not trained (affinity_weights), so its training time is unknown")
        rows["AffinityNet (07)"] = {"seconds": seconds, "images": affinity["images"]["affinity_labels"], "epochs": None}
    if (segmentation := step_metrics("08_segmentation")) is not None:
        if "training" not in segmentation:
            notes.append("08_segmentation's metrics record no training times")
        for variant, trained in segmentation.get("training", {}).items():
            rows[f"DeepLab, {variant} (08)"] = {key: trained.get(key) for key in ("seconds", "images", "epochs")}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["seconds", "images", "epochs"], dtype=float)
    table["s / training image (all epochs)"] = table["seconds"] / table["images"]
    return table, notes


def load_text(load: dict) -> str:
    """A reading of :func:`machine_load` in words, e.g. "load average 1.2 over the last minute on 2 CPU
    cores (4 torch threads)"."""
    average = load.get("load average (1 min)")
    said = "load average unknown" if average is None else f"load average {average:.1f} over the last minute"
    return f"{said} on {load.get('CPU cores')} CPU cores ({load.get('torch threads')} torch threads)"


def time_view(cam_table: pd.DataFrame) -> pd.DataFrame:
    """The timing columns of :func:`time_cam_methods`'s table, named short enough for a narrow page:
    seconds per image, times the baseline's (alone, and with the baseline maps split & unite splits
    by), classifier forwards per image, and the share of the time spent in them (%)."""
    view = pd.DataFrame({  # as text: seconds that span 0.005 to 5 would otherwise print as 5.0e-03
        "s / image": cam_table["s / image"].map(lambda v: f"{v:.3f}"),
        "× baseline": cam_table["× baseline"].map(lambda v: f"{v:.2f}"),
        "× baseline, + its maps": cam_table["× baseline, with its baseline maps"].map(lambda v: f"{v:.2f}"),
        "forwards / image": cam_table["forwards / image"].map(lambda v: f"{v:.1f}"),
        "in forwards (%)": (100 * cam_table["network share of time"]).map(lambda v: f"{v:.0f}"),
    })
    return view.rename_axis("method")


def maps_view(cam_table: pd.DataFrame) -> pd.DataFrame:
    """The quality columns of :func:`with_mious`'s table: each method's CAM mIoU (%) at its best
    background score, that score, and for a fast row its difference to the faithful row (fast −
    faithful, points) with the 95% interval; "—" where a row has none."""
    def difference(row) -> str:
        if "Δ mIoU" not in row or pd.isna(row["Δ mIoU"]):
            return "—"
        return f"{row['Δ mIoU']:+.2f} ({row['Δ low']:+.2f} to {row['Δ high']:+.2f})"

    view = pd.DataFrame({"mIoU (%)": cam_table["mIoU (%)"].round(1),
                         "best t": cam_table["best t"].map(lambda t: f"{t:.2f}"),
                         "Δ fast − faithful (95% interval)": [difference(row) for _, row in cam_table.iterrows()]})
    return view.rename_axis("method")
