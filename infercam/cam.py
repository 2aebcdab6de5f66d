"""Class activation maps with psa's inference protocol, and their storage on disk.

``multiscale_cam(model, image, class_ids) -> maps``: the image at scales (1.0, 0.5, 1.5, 2.0), each
with its horizontal flip in the same batch; the classifier's per-location class scores (its
``cam`` method: the 1x1 classification conv applied before pooling), ReLU, bilinear upsampling to
the image size, only the image's ground-truth classes, the flips undone, summed, and each class
divided by its spatial maximum (+1e-5). Any classifier with a ``cam(x) -> (N, 20, h, w)`` method
works.

Saved CAMs: one ``<name>.npz`` per image holding ``cams`` (K, H, W) float16 and ``class_ids`` (K,)
0-based VOC indices. float16 keeps about three significant digits, ten times finer than the 0.01
steps of the background-score sweep, at half the disk of float32.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from infercam.config import autocast, no_bar, resolve_path

PSA_SCALES = (1.0, 0.5, 1.5, 2.0)
TIMING_FILE = "timing.json"  # beside the maps: what computing them cost
SETTINGS_FILE = "settings.json"  # beside the maps: the method and protocol that made them
# A method's field added after maps were first saved: left out of their settings while at its default
# (which gives the maps of before), so that older folders stay valid.
SETTING_ADDED_LATER = "setting_added_later"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) RGB -> float32 normalised with ImageNet's mean and std, on its device."""
    mean = torch.tensor(IMAGENET_MEAN, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=batch.device).view(1, 3, 1, 1)
    return (batch.float() / 255.0 - mean) / std


def to_tensor(image: np.ndarray, device="cpu") -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 on ``device``, normalised with ImageNet's mean and
    std (there: the uint8 image is what travels)."""
    return normalise(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device))[0]


@torch.no_grad()
def response_maps(model, images: list[np.ndarray], class_ids: list, scales=PSA_SCALES, flip: bool = True,
                  device: torch.device | str = "cpu", mixed_precision: bool = False, pad: bool = False):
    """The protocol before normalisation, for several images of one size in one batch per scale
    (the images and their flips together). Returns, per image, the (K_i, H, W) sum over scales and
    flips of the ReLU'd, upsampled maps of ``class_ids[i]``. ``pad``: images of different sizes
    too, through :func:`padded_groups` (see :func:`_padded_response_maps`)."""
    if len({image.shape for image in images}) != 1:
        if pad:
            return _padded_response_maps(model, images, class_ids, scales, flip, device, mixed_precision)
        raise ValueError(f"images of one batch must share a size, got {sorted({i.shape for i in images})}")
    device = torch.device(device)
    height, width = images[0].shape[:2]
    # Only the classes some image of the batch has are upsampled (about 2 of 20 on VOC).
    present = sorted({int(c) for ids in class_ids for c in ids})
    if not present:
        return [torch.zeros((0, height, width)) for _ in images]
    x = normalise(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(device))
    total = 0
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        scaled = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        batch = torch.cat([scaled, scaled.flip(-1)]) if flip else scaled
        with autocast(device, mixed_precision):
            raw = model.cam(batch)
        maps = F.interpolate(F.relu(raw.float()[:, present]), size=(height, width), mode="bilinear",
                             align_corners=False)
        total = total + (maps[:len(images)] + maps[len(images):].flip(-1) if flip else maps)
    rows = [[present.index(int(c)) for c in ids] for ids in class_ids]
    return [total[index, row] for index, row in enumerate(rows)]


#: :func:`padded_groups`: the most padding a group may carry, as a share of its inputs' own pixels.
MAX_PADDING = 0.25


def padded_groups(sizes: list[tuple[int, int]], max_padding: float = MAX_PADDING) -> list[list[int]]:
    """Indices of ``sizes`` ((height, width) each) grouped for one forward per group, each input
    padded to its group's largest height and width: largest first, an input joins the first group
    whose padded pixels stay within ``max_padding`` of its inputs' own pixels. Fewer, larger
    forwards for split & unite's patches, for where a small input's forward costs about
    what a large one does: a GPU, and EfficientNet-Lite0 on a CPU, whose forward of a patch is
    mostly a fixed cost (``benchmarks/conditional_inference.py`` measured it faster than patches by
    size on the cpu profile; slower with the from-scratch ResNet-18, whose time followed the pixels)."""
    groups: list[list[int]] = []
    for index in sorted(range(len(sizes)), key=lambda i: (-sizes[i][0] * sizes[i][1], i)):
        for group in groups:
            members = group + [index]
            canvas = max(sizes[i][0] for i in members) * max(sizes[i][1] for i in members)
            if canvas * len(members) <= (1 + max_padding) * sum(sizes[i][0] * sizes[i][1] for i in members):
                group.append(index)
                break
        else:
            groups.append([index])
    return groups


def _padded_response_maps(model, images: list[np.ndarray], class_ids: list, scales, flip: bool, device,
                          mixed_precision: bool) -> list[torch.Tensor]:
    """:func:`response_maps` of images of different sizes: at each scale every scaled input (and its
    flip) is padded at its bottom and right with zeros (the ImageNet mean once normalised; the
    network's own padding is zeros too) to its :func:`padded_groups` group's size, one forward per
    group, and each input's maps are cropped back to its own extent (``ceil(size / output_stride)``
    cells, the size the unpadded input gives) before upsampling. The maps differ from unpadded
    ones only where the padding reaches them through the network's receptive field."""
    stride = getattr(model, "output_stride", None)
    if not stride:
        raise ValueError("padded batches need the classifier's `output_stride` (input pixels per map cell) "
                         "to crop each input's maps; give the model that attribute, or infer patches by size")
    present = sorted({int(c) for ids in class_ids for c in ids})
    if not present:
        return [torch.zeros((0, *image.shape[:2])) for image in images]
    device = torch.device(device)
    totals: list = [0] * len(images)
    for scale in scales:
        inputs = []  # (image index, flipped, scaled input (1, 3, h, w))
        for index, image in enumerate(images):
            height, width = image.shape[:2]
            scaled = F.interpolate(to_tensor(image, device)[None],
                                   size=(max(1, round(height * scale)), max(1, round(width * scale))), mode="bilinear",
                                   align_corners=False)
            inputs += [(index, False, scaled)] + ([(index, True, scaled.flip(-1))] if flip else [])
        for group in padded_groups([tuple(x.shape[2:]) for _, _, x in inputs]):
            height = max(inputs[i][2].shape[2] for i in group)
            width = max(inputs[i][2].shape[3] for i in group)
            batch = torch.cat([F.pad(inputs[i][2], (0, width - inputs[i][2].shape[3], 0, height - inputs[i][2].shape[2]))
                               for i in group])
            with autocast(device, mixed_precision):
                raw = F.relu(model.cam(batch).float()[:, present])
            for row, i in enumerate(group):
                index, flipped, x = inputs[i]
                cells = raw[row:row + 1, :, :-(-x.shape[2] // stride), :-(-x.shape[3] // stride)]
                maps = F.interpolate(cells, size=images[index].shape[:2], mode="bilinear", align_corners=False)[0]
                totals[index] = totals[index] + (maps.flip(-1) if flipped else maps)
    return [total[[present.index(int(c)) for c in ids]] for total, ids in zip(totals, class_ids)]


def max_normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map (K, H, W) divided by its spatial maximum (+1e-5, psa's guard)."""
    return maps / (maps.amax(dim=(1, 2), keepdim=True) + 1e-5)


def multiscale_cams(model, images: list[np.ndarray], class_ids: list, scales=PSA_SCALES, flip: bool = True,
                    device: torch.device | str = "cpu", mixed_precision: bool = False) -> list[np.ndarray]:
    """Max-normalised CAMs of several images of one size, in one batch per scale: a list of
    (K_i, H, W) float32 arrays for the ``class_ids[i]``."""
    return BaselineCAM(scales, flip, device, mixed_precision).batch(model, images, class_ids)


def multiscale_cam(model, image: np.ndarray, class_ids, scales=PSA_SCALES, flip: bool = True,
                   device: torch.device | str = "cpu", mixed_precision: bool = False) -> np.ndarray:
    """Max-normalised CAMs (K, H, W) float32 of ``class_ids`` (0-based VOC indices) for one image."""
    return multiscale_cams(model, [image], [list(class_ids)], scales, flip, device, mixed_precision)[0]


@dataclass
class BaselineCAM:
    """psa's protocol as a method object: ``(model, image, class_ids) -> maps (K, H, W)``, the call
    shape every CAM method here shares."""

    scales: tuple[float, ...] = PSA_SCALES
    flip: bool = True
    device: str | torch.device = "cpu"
    mixed_precision: bool = False
    normalise: bool = True  # False: the raw sum over scales and flips, on the classifier's own scale
    # images of different sizes padded into common batches (response_maps' `pad`); left out of the
    # maps' settings at False, so that folders made before it existed stay valid
    pad_batches: bool = field(default=False, metadata={SETTING_ADDED_LATER: True})

    def __call__(self, model, image: np.ndarray, class_ids) -> np.ndarray:
        return self.batch(model, [image], [class_ids])[0]

    def batch(self, model, images: list[np.ndarray], class_ids: list) -> list[np.ndarray]:
        """Maps of several images of one size (of any sizes with ``pad_batches``), in one forward per scale."""
        responses = response_maps(model, images, [list(ids) for ids in class_ids], self.scales, self.flip,
                                  self.device, self.mixed_precision, self.pad_batches)
        return [(max_normalise(maps) if self.normalise else maps).cpu().numpy() for maps in responses]


def infer_in_batches(method, model, images: list[np.ndarray], class_ids: list) -> list[np.ndarray]:
    """``method``'s maps of each image: one ``method.batch`` call per group of images of one size
    (all the images in one call when the method pads them: ``pad_batches``) when the method has
    ``batch``, else one call per image."""
    if not hasattr(method, "batch"):
        return [method(model, image, ids) for image, ids in zip(images, class_ids)]
    groups: dict[tuple, list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(None if getattr(method, "pad_batches", False) else image.shape, []).append(index)
    results = [None] * len(images)
    for indices in groups.values():
        for index, maps in zip(indices, method.batch(model, [images[i] for i in indices], [class_ids[i] for i in indices])):
            results[index] = maps
    return results


def save_cams(path: str | os.PathLike, cams: np.ndarray, class_ids) -> None:
    """Write one image's CAMs atomically (an interrupted run never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as handle:
        np.savez_compressed(handle, cams=np.asarray(cams, dtype=np.float16),
                            class_ids=np.asarray(list(class_ids), dtype=np.int64))
    os.replace(tmp, path)


def load_cams(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(cams (K, H, W) float32, class_ids (K,)) of one image."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no CAM file {path}: run the step that makes these maps first")
    try:
        with np.load(path) as data:
            return data["cams"].astype(np.float32), data["class_ids"]
    except (OSError, ValueError, KeyError) as error:
        raise OSError(f"corrupt CAM file {path}: {error}; delete it and re-run the CAM step") from error


def infer_cams(model, dataset, out_dir: str | os.PathLike, scales=PSA_SCALES, flip: bool = True,
               device: torch.device | str = "cpu", batch_size: int = 1, mixed_precision: bool = False,
               progress: bool = True) -> Path:
    """Baseline CAMs of every image of ``dataset`` into ``out_dir/<name>.npz`` (see
    :func:`infer_method_cams`), ``batch_size`` images of one size per forward."""
    return infer_method_cams(BaselineCAM(scales, flip, device, mixed_precision), model, dataset, out_dir,
                             progress=progress, batch_size=batch_size)



class MapsSettingsError(RuntimeError):
    """A folder of maps was made with other settings than the ones asked for."""


def weights_fingerprint(model) -> str:
    """sha256 of a network's parameters and buffers (names, shapes, types and values): which
    classifier made a folder of maps, whatever file it came from."""
    return state_fingerprint(model.state_dict())


def state_fingerprint(state: dict) -> str:
    """:func:`weights_fingerprint` of a state dict (name -> tensor), e.g. read from a checkpoint."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def record_identity(folder: str | os.PathLike) -> str | None:
    """The sha256 of the record (settings.json) that ``folder``'s maps or labels were claimed with
    (:func:`claim_folder`: which method, classifier or AffinityNet made them, and how), or None for a
    folder without one. Unlike the folder's path, it changes when they are made again by another
    network, and not when the project is moved."""
    record = resolve_path(folder) / SETTINGS_FILE
    return hashlib.sha256(record.read_bytes()).hexdigest() if record.is_file() else None


def maps_identity(cam_dir: str | os.PathLike) -> str:
    """What the maps in ``cam_dir`` are, for the record of what is made from them:
    :func:`record_identity`, or the folder's path for maps made elsewhere (nothing else says what they are)."""
    return record_identity(cam_dir) or str(resolve_path(cam_dir))


def labels_identity(label_dir: str | os.PathLike) -> str:
    """What the label maps in ``label_dir`` are, for the settings of a network trained on them:
    :func:`record_identity` (pseudo or affinity labels: which maps, walked by which AffinityNet, how), or
    ``"annotations"`` for a folder without a record (the dataset's own labels). A network trained on
    labels made since is then never taken for one trained on these."""
    return record_identity(label_dir) or "annotations"


def method_settings(method, model=None) -> dict:
    """What decides a method's maps, as JSON: the method's class and fields (nested methods too;
    not the device, which changes nothing but speed), the classifier's output stride and its
    weights' fingerprint (:func:`weights_fingerprint`; None without a model)."""

    def describe(value):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {"method": type(value).__name__,
                    **{f.name: describe(getattr(value, f.name)) for f in dataclasses.fields(value)
                       if f.name != "device" and not (f.metadata.get(SETTING_ADDED_LATER) and getattr(value, f.name) == f.default)}}
        if isinstance(value, (tuple, list)):
            return [describe(v) for v in value]
        return value.item() if isinstance(value, np.generic) else value

    described = describe(method)
    if not isinstance(described, dict):  # a plain function: its name is all there is to say
        described = {"method": getattr(method, "__qualname__", type(method).__name__)}
    return json.loads(json.dumps({**described, "output_stride": getattr(model, "output_stride", None),
                                  "classifier": None if model is None else weights_fingerprint(model)}))


def claim_folder(out_dir: Path, settings: dict) -> None:
    """Make ``out_dir`` the home of maps made with ``settings`` (written to its settings.json), or
    refuse if it holds maps of other settings: resuming would silently mix two methods."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SETTINGS_FILE
    if path.is_file():
        saved = _read_settings(path)
        # Folders made before the classifier's fingerprint was recorded: nothing to compare it with.
        if "classifier" in settings:
            saved.setdefault("classifier", settings["classifier"])
        if saved != settings:
            differing = sorted(k for k in saved.keys() | settings.keys() if saved.get(k) != settings.get(k))
            if "classifier" in differing:
                raise MapsSettingsError(
                    f"the maps in {out_dir} were made by another classifier (weights fingerprint saved "
                    f"{str(saved['classifier'])[:12]}, this one {str(settings['classifier'])[:12]}): it was retrained "
                    f"or replaced since. Delete {out_dir} to recompute the maps with this classifier")
            raise MapsSettingsError(
                f"the maps in {out_dir} were made with other settings (differing: {', '.join(differing)}; "
                f"saved {[saved.get(k) for k in differing]}, asked {[settings.get(k) for k in differing]}): "
                "delete that folder to recompute them, or use another work_dir")
        return
    if any(out_dir.glob("*.npz")):
        raise MapsSettingsError(f"{out_dir} holds maps but no {SETTINGS_FILE}, so nothing says how they were made: "
                                "delete that folder to recompute them")
    tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")  # one per process: sharded ranks claim at once
    tmp.write_text(json.dumps(settings, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _read_settings(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except ValueError as error:  # cut short on disk (a full disk, a copy that stopped)
        raise MapsSettingsError(f"{path} is corrupt ({error}), so nothing says how the maps beside it were made: "
                                f"delete {path.parent} to recompute them") from error


class _Timer:
    images = 0


@contextmanager
def _timed(out_dir: Path):
    """Add the images computed and the seconds spent to ``out_dir/timing.json``, also when the run
    is interrupted, so a resumed step still knows what the whole computation cost."""
    timer, started = _Timer(), time.perf_counter()
    try:
        yield timer
    finally:
        if timer.images:
            path = out_dir / TIMING_FILE
            # sharded ranks add to the same file: the lock keeps one rank's sum from overwriting another's
            with open(out_dir / f".{TIMING_FILE}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                spent = read_timing(out_dir)
                tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")
                tmp.write_text(json.dumps({"images": spent["images"] + timer.images,
                                           "seconds": spent["seconds"] + time.perf_counter() - started}))
                os.replace(tmp, path)


def read_timing(out_dir: str | os.PathLike) -> dict:
    """``{"images", "seconds", "seconds_per_image"}`` spent computing the maps in ``out_dir``."""
    path = Path(out_dir) / TIMING_FILE
    spent = json.loads(path.read_text()) if path.exists() else {"images": 0, "seconds": 0.0}
    spent["seconds_per_image"] = spent["seconds"] / spent["images"] if spent["images"] else None
    return spent


def _same_size_batches(dataset, names: list[str], batch_size: int):
    """(names, images) batches of up to ``batch_size`` consecutive images that share a size."""
    names_batch, images_batch = [], []
    for name in names:
        image = dataset.load_image(name)
        if images_batch and (len(images_batch) == batch_size or image.shape != images_batch[0].shape):
            yield names_batch, images_batch
            names_batch, images_batch = [], []
        names_batch.append(name)
        images_batch.append(image)
    if images_batch:
        yield names_batch, images_batch


def infer_method_cams(method, model, dataset, out_dir: str | os.PathLike, baseline_dir: str | os.PathLike | None = None,
                      names: list[str] | None = None, progress: bool = True, batch_size: int = 1) -> Path:
    """Maps of any CAM method into ``out_dir/<name>.npz`` (the format of :func:`save_cams`); images
    already saved are skipped, so an interrupted run continues where it stopped.
    ``method(model, image, class_ids)`` or, with ``baseline_dir`` (saved baseline CAMs, e.g. for
    split & unite's split points), ``method(model, image, class_ids, baseline)``. ``batch_size``:
    up to that many consecutive images of one size go to ``method.batch`` together (methods
    without ``batch``, and those needing a baseline, take one image at a time). ``names``: a subset
    of the split (default all)."""
    out_dir = Path(out_dir)
    claim_folder(out_dir, method_settings(method, model))
    model.eval()
    labels = dict(zip(dataset.names, dataset.cls_labels))
    todo = [name for name in (dataset.names if names is None else names) if not (out_dir / f"{name}.npz").exists()]
    per_forward = batch_size if baseline_dir is None else 1
    with tqdm(total=len(todo), desc=f"{type(method).__name__} maps of {dataset.split}",
              disable=no_bar(progress and bool(todo))) as bar, _timed(out_dir) as timer:
        for batch_names, images in _same_size_batches(dataset, todo, per_forward):
            class_ids = [np.flatnonzero(labels[name]) for name in batch_names]
            if baseline_dir is None:
                maps = infer_in_batches(method, model, images, class_ids)
            else:
                maps = [method(model, images[0], class_ids[0], _saved_baseline(baseline_dir, batch_names[0], class_ids[0]))]
            for name, name_maps, ids in zip(batch_names, maps, class_ids):
                save_cams(out_dir / f"{name}.npz", name_maps, ids)
            bar.update(len(batch_names))
            timer.images += len(batch_names)
    return out_dir


def _saved_baseline(baseline_dir, name: str, class_ids: np.ndarray) -> np.ndarray:
    baseline, saved_ids = load_cams(Path(baseline_dir) / f"{name}.npz")
    if saved_ids.tolist() != class_ids.tolist():
        raise ValueError(f"{baseline_dir}/{name}.npz holds classes {saved_ids.tolist()}, the labels say "
                         f"{class_ids.tolist()}: the baseline CAMs are from another dataset; re-run that step")
    return baseline
