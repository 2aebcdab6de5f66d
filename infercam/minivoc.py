"""mini-VOC: an offline stand-in for PASCAL VOC 2012, written in VOC's exact layout.

Each scene is drawn from its own random generator, seeded by (seed, split, index), so a dataset is
the same bytes for the same seed whatever order or process draws it, and an interrupted generation
resumes. A scene is:

1. a background: a class-correlated context (sky for aeroplanes and birds, water under boats,
   grass under cattle, a road under vehicles, rails under trains, a room around furniture) with
   probability ``context_prob``, otherwise textured clutter; always with fractal-noise texture;
2. non-VOC distractor glyphs (clouds, flowers, trees, doors...) behind the objects, and some in
   front of them, where they occlude objects as real clutter does;
3. 1, 2 or 3+ VOC classes in VOC's train proportions (933 / 382 / 149 of 1464), each with one or
   more OpenMoji instances, randomly scaled, placed, rotated, flipped and colour-jittered, later
   instances occluding earlier ones (each keeps at least ``min_visible`` of its pixels);
4. a void band (255) along every instance's boundary, as VOC annotates object edges; then mild
   blur and sensor noise, saved as JPEG.

Layout (``root`` is the ``VOC2012`` folder)::

    JPEGImages/<name>.jpg            Annotations/<name>.xml (VOC format, bndbox 1-based)
    SegmentationClass/<name>.png     train and val, VOC palette, 255 = void
    SegmentationClassAug/<name>.png  train_aug and val, as the SBD-augmented set is distributed
    ImageSets/Segmentation/{train,val,trainval,train_aug}.txt
    minivoc.json                     the generator's settings, to detect a stale dataset
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter
from scipy import ndimage
from tqdm import tqdm  # text bars: no ipywidgets needed, and they render in the static book

from infercam.config import no_bar
from infercam.glyphs import DISTRACTOR_GLYPHS, Glyph, class_glyphs, distractor_glyphs, salient_object_glyphs
from infercam.voc import IGNORE_INDEX, VOC_CLASSES, save_label_png

GENERATOR_VERSION = 1
SPLITS = ("train", "val", "aug")  # "aug" plays SBD's role: extra images that are only in train_aug

# Where each class is usually seen: its context, and where in the scene it stands.
CLASS_CONTEXTS: dict[str, tuple[str, ...]] = {
    "aeroplane": ("sky",), "bird": ("sky", "grass"), "boat": ("water",),
    "bicycle": ("road",), "bus": ("road",), "car": ("road",), "motorbike": ("road",), "train": ("rail",),
    "cow": ("grass",), "horse": ("grass",), "sheep": ("grass",),
    "bottle": ("indoor",), "chair": ("indoor",), "diningtable": ("indoor",), "pottedplant": ("indoor",),
    "sofa": ("indoor",), "tvmonitor": ("indoor",), "cat": ("indoor", "grass"), "dog": ("indoor", "grass"),
    "person": ("road", "grass", "indoor", "water"),
}
CONTEXTS = ("sky", "water", "grass", "road", "rail", "indoor", "clutter")
CONTEXT_DISTRACTORS = {
    "sky": ("sky",), "water": ("water", "sky"), "grass": ("nature", "sky"), "road": ("street", "nature"),
    "rail": ("street", "nature"), "indoor": ("indoor",), "clutter": tuple(DISTRACTOR_GLYPHS),
}
# Classes whose colour varies a lot in the world (cars come in every colour; cows do not).
FREE_HUE_CLASSES = {"bicycle", "boat", "bus", "car", "chair", "motorbike", "sofa", "bottle"}


@dataclass(frozen=True)
class MiniVOCConfig:
    """Everything that decides the bytes of a mini-VOC dataset."""

    seed: int = 0
    image_size: int = 256
    num_train: int = 1000
    num_val: int = 500
    num_aug: int = 2000
    class_count_weights: tuple[float, ...] = (933, 382, 149)  # 1 / 2 / 3+ classes, VOC train
    four_class_share: float = 0.25  # of the 3+ images, how many have four classes
    extra_instance_prob: float = 0.3  # chance that a class gets a second (then third) instance
    max_instances: int = 5
    object_scale: tuple[float, float] = (0.7, 1.1)  # longest side / image side when alone: ~30% foreground
    min_visible: float = 0.4
    max_rotation: float = 15.0
    context_prob: float = 0.7
    distractors: tuple[int, int] = (1, 4)
    front_distractor_prob: float = 0.25
    void_width: int = 3
    jpeg_quality: int = 90
    version: int = field(default=GENERATOR_VERSION)

    def split_size(self, split: str) -> int:
        return {"train": self.num_train, "val": self.num_val, "aug": self.num_aug}[split]


@dataclass
class PlacedObject:
    class_name: str
    glyph: str
    bbox: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax, 0-based inclusive, of the visible pixels
    visible_fraction: float
    truncated: bool


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8
    label: np.ndarray  # (H, W) uint8: 0 background, 1..20 classes, 255 void
    objects: list[PlacedObject]
    context: str


def image_name(split: str, index: int) -> str:
    return f"{split}_{index:06d}"


# ---------------------------------------------------------------------------------------------
# Backgrounds


def fractal_noise(rng: np.random.Generator, size: int, octaves: int = 4, base: int = 3) -> np.ndarray:
    """Smooth multi-scale noise in [0, 1], shape (size, size)."""
    total = np.zeros((size, size), dtype=np.float32)
    amplitude, weight = 1.0, 0.0
    for octave in range(octaves):
        cells = base * 2 ** octave
        grid = Image.fromarray(rng.random((cells, cells), dtype=np.float32), mode="F")
        total += amplitude * np.asarray(grid.resize((size, size), Image.BICUBIC))
        weight += amplitude
        amplitude *= 0.5
    total /= weight
    return (total - total.min()) / max(float(total.max() - total.min()), 1e-6)


def _random_colour(rng, low=30, high=230) -> np.ndarray:
    return rng.uniform(low, high, size=3).astype(np.float32)


def _textured(rng, size: int, colour_a, colour_b, octaves: int = 4) -> np.ndarray:
    noise = fractal_noise(rng, size, octaves=octaves)[..., None]
    return np.asarray(colour_a, np.float32) * (1 - noise) + np.asarray(colour_b, np.float32) * noise


def _vertical_gradient(size: int, top, bottom) -> np.ndarray:
    t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    return np.broadcast_to(np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t,
                           (size, size, 3)).copy()


def _clutter_shapes(rng, canvas: np.ndarray, count: int) -> np.ndarray:
    """Random translucent ellipses, boxes and strokes: texture edges that belong to no class."""
    size = canvas.shape[0]
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(count):
        x0, y0 = rng.uniform(-0.1, 1.0, 2) * size
        w, h = rng.uniform(0.05, 0.4, 2) * size
        fill = tuple(int(c) for c in _random_colour(rng)) + (int(rng.uniform(60, 200)),)
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=fill)
        elif kind == 1:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=fill)
        else:
            draw.line([x0, y0, x0 + w, y0 + h * rng.choice([-1, 1])], fill=fill, width=int(rng.integers(1, 6)))
    rgba = np.asarray(layer, np.float32)
    alpha = rgba[..., 3:] / 255.0
    return canvas * (1 - alpha) + rgba[..., :3] * alpha


def draw_background(rng: np.random.Generator, context: str, size: int) -> tuple[np.ndarray, int]:
    """The scene behind the objects, float32 (size, size, 3), and the horizon row (ground starts)."""
    sky = _vertical_gradient(size, rng.uniform([40, 90, 170], [90, 150, 230]), rng.uniform([150, 190, 220], [210, 230, 250]))
    sky += (fractal_noise(rng, size)[..., None] - 0.5) * 25
    horizon = int(size * rng.uniform(0.35, 0.65))
    ground_rows = slice(horizon, size)
    if context == "sky":
        horizon = int(size * rng.uniform(0.8, 1.0))
        canvas = sky
        canvas[horizon:] = _textured(rng, size, [60, 110, 50], [120, 150, 80])[horizon:]
    elif context == "water":
        canvas = sky
        water = _textured(rng, size, [20, 70, 120], [70, 140, 180])
        rows = np.arange(size, dtype=np.float32)[:, None]
        waves = np.sin(rows * rng.uniform(0.4, 0.9) + fractal_noise(rng, size) * 6)[..., None]
        canvas[ground_rows] = (water + waves * 18)[ground_rows]
    elif context == "grass":
        canvas = sky
        canvas[ground_rows] = _textured(rng, size, rng.uniform([30, 80, 20], [70, 120, 40]),
                                        rng.uniform([100, 150, 50], [150, 200, 90]), octaves=6)[ground_rows]
    elif context == "road":
        canvas = _textured(rng, size, _random_colour(rng, 80, 200), _random_colour(rng, 80, 200))
        canvas = _clutter_shapes(rng, canvas, 6)  # buildings and signs behind the road
        grey = rng.uniform(60, 120)
        canvas[ground_rows] = _textured(rng, size, [grey] * 3, [grey + 40] * 3, octaves=6)[ground_rows]
        lane = horizon + (size - horizon) // 2
        for x in range(0, size, max(8, size // 8)):
            canvas[lane - 1: lane + 2, x: x + size // 16] = 235
    elif context == "rail":
        canvas = sky
        canvas[ground_rows] = _textured(rng, size, [90, 80, 70], [160, 150, 130], octaves=6)[ground_rows]
        for y in range(horizon + 4, size, max(6, size // 20)):  # sleepers
            canvas[y: y + 3, :] = [110, 75, 40]
        for y in (horizon + (size - horizon) // 3, horizon + 2 * (size - horizon) // 3):  # rails
            canvas[y: y + 2, :] = [70, 70, 75]
    elif context == "indoor":
        wall = _textured(rng, size, _random_colour(rng, 120, 240), _random_colour(rng, 120, 240))
        if rng.random() < 0.5:  # wallpaper stripes
            period = int(rng.integers(8, 24))
            wall[:, (np.arange(size) // period) % 2 == 0] *= 0.9
        horizon = int(size * rng.uniform(0.55, 0.8))
        floor = _textured(rng, size, [110, 70, 35], [170, 120, 70])
        for y in range(horizon, size, max(5, size // 24)):  # planks
            floor[y] *= 0.75
        canvas = wall
        canvas[horizon:] = floor[horizon:]
    elif context == "clutter":
        canvas = _textured(rng, size, _random_colour(rng), _random_colour(rng))
        canvas = _clutter_shapes(rng, canvas, int(rng.integers(6, 16)))
        horizon = int(size * 0.5)
    else:
        raise ValueError(f"unknown context {context!r}; known: {CONTEXTS}")
    return np.clip(canvas, 0, 255), horizon


# ---------------------------------------------------------------------------------------------
# Glyph placement


def _transform_glyph(rng, glyph: Glyph, longest_side: int, max_rotation: float, hue_range: float) -> np.ndarray:
    """Scale, flip, rotate and colour-jitter a glyph; returns RGBA float32 in [0, 255]."""
    image = Image.fromarray(glyph.rgba)
    scale = longest_side / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    image = image.rotate(float(rng.uniform(-max_rotation, max_rotation)), resample=Image.BICUBIC, expand=True)
    rgb, alpha = image.convert("RGB"), image.getchannel("A")
    if hue_range > 0:
        hsv = np.asarray(rgb.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(rng.uniform(-hue_range, hue_range) * 255)) % 256
        rgb = Image.fromarray(hsv, mode="HSV").convert("RGB")
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        rgb = enhancer(rgb).enhance(float(rng.uniform(0.75, 1.25)))
    return np.dstack([np.asarray(rgb, np.float32), np.asarray(alpha, np.float32)])


def _paste(canvas: np.ndarray, owner: np.ndarray, rgba: np.ndarray, x: int, y: int, owner_id: int) -> None:
    """Alpha-blend ``rgba`` with its top-left corner at (x, y), clipped to the canvas; pixels at
    least half covered now belong to ``owner_id`` (0 for distractors: they hide what is behind)."""
    x0, y0, x1, y1 = _clip(x, y, rgba.shape[1], rgba.shape[0], canvas.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    patch = rgba[y0 - y: y1 - y, x0 - x: x1 - x]
    alpha = patch[..., 3:] / 255.0
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1 - alpha) + patch[..., :3] * alpha
    owner[y0:y1, x0:x1][alpha[..., 0] >= 0.5] = owner_id


def _clip(x: int, y: int, w: int, h: int, size: int) -> tuple[int, int, int, int]:
    """The part of a w x h patch at (x, y) that lies inside the canvas: x0, y0, x1, y1."""
    return max(x, 0), max(y, 0), min(x + w, size), min(y + h, size)


def _area_in_frame(rgba: np.ndarray, x: int, y: int, size: int) -> int:
    """Pixels the glyph would own inside the canvas if nothing covered it (as ``_paste`` counts)."""
    x0, y0, x1, y1 = _clip(x, y, rgba.shape[1], rgba.shape[0], size)
    if x0 >= x1 or y0 >= y1:
        return 0
    return int((rgba[y0 - y: y1 - y, x0 - x: x1 - x, 3] / 255.0 >= 0.5).sum())


def _paste_distractor(rng, canvas, owner, glyph: Glyph, scale: tuple[float, float], horizon: int) -> None:
    """A non-VOC glyph anywhere in the scene; it is background and hides what it covers."""
    size = canvas.shape[0]
    rgba = _transform_glyph(rng, glyph, int(size * rng.uniform(*scale)), 20.0, 0.05)
    _paste(canvas, owner, rgba, *_stand_position(rng, "clutter", horizon, size, *rgba.shape[1::-1]), owner_id=0)


def _stand_position(rng, context: str, horizon: int, size: int, w: int, h: int) -> tuple[int, int]:
    """Top-left corner: things with a ground stand on it; the rest go anywhere, partly out of frame."""
    x = int(rng.uniform(-0.15 * w, size - 0.85 * w))
    if context in {"water", "grass", "road", "rail", "indoor"}:
        bottom = rng.uniform(horizon + 0.1 * (size - horizon), size + 0.1 * h)
        return x, int(bottom - h)
    return x, int(rng.uniform(-0.15 * h, size - 0.85 * h))


def _pick(rng, glyphs: tuple[Glyph, ...]) -> Glyph:
    return glyphs[int(rng.integers(len(glyphs)))]


def _sample_classes(rng, config: MiniVOCConfig) -> list[str]:
    weights = np.asarray(config.class_count_weights, dtype=np.float64)
    bucket = int(rng.choice(len(weights), p=weights / weights.sum()))
    count = bucket + 1
    if count == 3 and rng.random() < config.four_class_share:
        count = 4
    return [VOC_CLASSES[i] for i in rng.choice(len(VOC_CLASSES), size=count, replace=False)]


def _void_band(owner: np.ndarray, instance_ids, width: int) -> np.ndarray:
    """Pixels within about ``width`` px of any instance's boundary."""
    radius = max(1, width // 2)
    band = np.zeros(owner.shape, dtype=bool)
    for instance_id in instance_ids:
        mask = owner == instance_id
        if mask.any():
            band |= ndimage.binary_dilation(mask, iterations=radius) & ~ndimage.binary_erosion(mask, iterations=radius)
    return band


def compose_scene(rng: np.random.Generator, config: MiniVOCConfig) -> Scene:
    """Draw one scene (image, label map, objects) from ``rng``."""
    size = config.image_size
    classes = _sample_classes(rng, config)
    instances = list(classes)
    while len(instances) < config.max_instances and rng.random() < config.extra_instance_prob:
        instances.append(str(rng.choice(classes)))
    home = CLASS_CONTEXTS[classes[0]]
    context = str(rng.choice(home)) if rng.random() < config.context_prob else str(rng.choice(CONTEXTS))

    for _attempt in range(20):
        canvas, horizon = draw_background(rng, context, size)
        owner = np.zeros((size, size), dtype=np.int32)
        groups = CONTEXT_DISTRACTORS[context]
        distractors = [_pick(rng, distractor_glyphs(str(rng.choice(groups))))
                       for _ in range(int(rng.integers(config.distractors[0], config.distractors[1] + 1)))]
        in_front = [d for d in distractors if rng.random() < config.front_distractor_prob]
        for glyph in (d for d in distractors if not any(d is f for f in in_front)):
            _paste_distractor(rng, canvas, owner, glyph, (0.12, 0.45), horizon)

        # Objects shrink as a scene holds more of them, so that the foreground stays VOC-like.
        shrink = len(instances) ** -0.35
        full_masks: dict[int, int] = {}
        placed: list[tuple[int, str, str]] = []
        for instance_id, class_name in enumerate(instances, start=1):
            glyph = _pick(rng, class_glyphs(class_name))
            hue = 0.5 if class_name in FREE_HUE_CLASSES else 0.03
            rgba = _transform_glyph(rng, glyph, int(size * shrink * rng.uniform(*config.object_scale)),
                                    config.max_rotation, hue)
            x, y = _stand_position(rng, context, horizon, size, rgba.shape[1], rgba.shape[0])
            full_masks[instance_id] = _area_in_frame(rgba, x, y, size)
            _paste(canvas, owner, rgba, x, y, owner_id=instance_id)
            placed.append((instance_id, class_name, glyph.code))
        for glyph in in_front:
            _paste_distractor(rng, canvas, owner, glyph, (0.1, 0.3), horizon)

        visible = {i: int((owner == i).sum()) / max(full_masks[i], 1) for i, _, _ in placed}
        if all(v >= config.min_visible and full_masks[i] > 0 for i, v in visible.items()):
            break
    else:  # pathological draws: keep the last one, dropping the instances that are lost
        placed = [p for p in placed if visible[p[0]] > 0]

    label = np.zeros((size, size), dtype=np.uint8)
    objects = []
    for instance_id, class_name, code in placed:
        mask = owner == instance_id
        label[mask] = VOC_CLASSES.index(class_name) + 1
        ys, xs = np.nonzero(mask)
        bbox = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
        truncated = bbox[0] == 0 or bbox[1] == 0 or bbox[2] == size - 1 or bbox[3] == size - 1
        objects.append(PlacedObject(class_name, code, bbox, visible[instance_id], truncated))
    label[_void_band(owner, [p[0] for p in placed], config.void_width)] = IGNORE_INDEX

    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.9))))
    pixels = np.asarray(image, np.float32) + rng.normal(0, rng.uniform(0, 5), (size, size, 3)).astype(np.float32)
    return Scene(np.clip(pixels, 0, 255).astype(np.uint8), label, objects, context)


def compose_saliency_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A scene for training the offline saliency detector, (image (size, size, 3) uint8, mask
    (size, size) bool): one to three large non-VOC glyphs near the centre are the salient objects
    (saliency datasets' photographer bias), small ones anywhere behind them are not; never a VOC
    class, so the detector is class-agnostic as real ones are."""
    canvas, horizon = draw_background(rng, str(rng.choice(CONTEXTS)), size)
    owner = np.zeros((size, size), dtype=np.int32)
    glyphs = salient_object_glyphs()
    for _ in range(int(rng.integers(0, 4))):
        _paste_distractor(rng, canvas, owner, _pick(rng, glyphs), (0.08, 0.2), horizon)
    for _ in range(int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))):
        rgba = _transform_glyph(rng, _pick(rng, glyphs), int(size * rng.uniform(0.35, 0.75)), 15.0, 0.1)
        centre = rng.normal(size / 2, 0.12 * size, 2)
        _paste(canvas, owner, rgba, int(centre[0] - rgba.shape[1] / 2), int(centre[1] - rgba.shape[0] / 2), owner_id=1)
    return np.clip(canvas, 0, 255).astype(np.uint8), owner == 1


# ---------------------------------------------------------------------------------------------
# Writing the VOC layout


def annotation_xml(name: str, scene: Scene) -> ET.ElementTree:
    """A VOC-format annotation (1-based pixel coordinates, as the devkit writes them)."""
    height, width = scene.label.shape
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2012"
    ET.SubElement(root, "filename").text = f"{name}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "mini-VOC (infercam, OpenMoji glyphs, CC BY-SA 4.0)"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "1"
    for obj in scene.objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = obj.class_name
        ET.SubElement(node, "pose").text = "Unspecified"
        ET.SubElement(node, "truncated").text = str(int(obj.truncated))
        ET.SubElement(node, "occluded").text = str(int(obj.visible_fraction < 0.85))
        ET.SubElement(node, "difficult").text = "0"
        box = ET.SubElement(node, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), obj.bbox):
            ET.SubElement(box, tag).text = str(value + 1)
    ET.indent(root)
    return ET.ElementTree(root)


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".tmp-{path.name}")  # keeps the suffix that picks the format
    write(tmp)
    os.replace(tmp, path)


def _scene_files(root: Path, name: str, split: str) -> list[Path]:
    files = [root / "JPEGImages" / f"{name}.jpg", root / "Annotations" / f"{name}.xml",
             root / "SegmentationClassAug" / f"{name}.png"]
    if split != "aug":
        files.append(root / "SegmentationClass" / f"{name}.png")
    return files


def write_scene(root: Path, name: str, split: str, scene: Scene, jpeg_quality: int) -> None:
    image_path, xml_path, *label_paths = _scene_files(root, name, split)
    # The JPEG goes last: its presence marks the scene as complete when resuming.
    for path in label_paths:
        _atomic_write(path, lambda tmp: save_label_png(scene.label, tmp))
    _atomic_write(xml_path, lambda tmp: annotation_xml(name, scene).write(tmp, encoding="utf-8", xml_declaration=False))
    _atomic_write(image_path, lambda tmp: Image.fromarray(scene.image).save(tmp, format="JPEG", quality=jpeg_quality))


def scene_rng(config: MiniVOCConfig, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, SPLITS.index(split), index])


def _generate_one(args) -> None:
    root, config, split, index = args
    name = image_name(split, index)
    if all(path.exists() for path in _scene_files(root, name, split)):
        return
    write_scene(root, name, split, compose_scene(scene_rng(config, split, index), config), config.jpeg_quality)


def _config_to_json(config: MiniVOCConfig) -> dict:
    return json.loads(json.dumps(asdict(config)))


def generate_minivoc(root: str | os.PathLike, config: MiniVOCConfig, workers: int = 1, progress: bool = True) -> Path:
    """Write mini-VOC into ``root`` (the VOC2012 folder); resumes an interrupted run.

    Raises if ``root`` holds a mini-VOC made with other settings, rather than mixing the two.
    """
    root = Path(root)
    meta_path = root / "minivoc.json"
    if meta_path.exists():
        existing = json.loads(meta_path.read_text())
        if existing != _config_to_json(config):
            changed = sorted(k for k in set(existing) | set(asdict(config)) if existing.get(k) != _config_to_json(config).get(k))
            raise RuntimeError(f"{root} holds a mini-VOC generated with other settings (differs in {changed}); "
                               f"delete {root} or choose another data_root")
    for folder in ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(_config_to_json(config), indent=2, sort_keys=True))

    jobs = [(root, config, split, index) for split in SPLITS for index in range(config.split_size(split))]
    bar = tqdm(total=len(jobs), desc=f"mini-VOC -> {root}", unit="img", disable=no_bar(progress))
    if workers > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(_generate_one, jobs, chunksize=16):
                bar.update()
    else:
        for job in jobs:
            _generate_one(job)
            bar.update()
    bar.close()

    names = {split: [image_name(split, i) for i in range(config.split_size(split))] for split in SPLITS}
    lists = {"train": names["train"], "val": names["val"], "trainval": names["train"] + names["val"],
             "train_aug": names["train"] + names["aug"]}
    for list_name, entries in lists.items():
        _atomic_write(root / "ImageSets" / "Segmentation" / f"{list_name}.txt",
                      lambda tmp, entries=entries: tmp.write_text("".join(f"{n}\n" for n in entries)))
    return root


def is_complete(root: str | os.PathLike, config: MiniVOCConfig) -> bool:
    """True when ``root`` holds every file of this config's mini-VOC."""
    root = Path(root)
    meta_path = root / "minivoc.json"
    if not meta_path.exists() or json.loads(meta_path.read_text()) != _config_to_json(config):
        return False
    if not (root / "ImageSets" / "Segmentation" / "train_aug.txt").exists():
        return False
    return all(path.exists() for split in SPLITS for index in range(config.split_size(split))
               for path in _scene_files(root, image_name(split, index), split))


def _minivoc_settings() -> dict:
    import yaml

    from infercam.config import PROFILES_DIR

    with open(PROFILES_DIR / "minivoc.yaml") as handle:
        return yaml.safe_load(handle)


def reads_minivoc(profile: str) -> bool:
    """Whether a profile's data is generated mini-VOC (it has settings in profiles/minivoc.yaml);
    the others (paper, rehearsal) read VOC that data_scripts/ fetched."""
    return profile in _minivoc_settings()


def minivoc_config(profile: str, seed: int = 0) -> MiniVOCConfig:
    """The mini-VOC settings of a profile, from profiles/minivoc.yaml."""
    from infercam.config import PROFILES_DIR

    table = _minivoc_settings()
    if profile not in table:
        raise KeyError(f"profile {profile!r} has no mini-VOC settings in {PROFILES_DIR / 'minivoc.yaml'} "
                       f"(profiles with mini-VOC: {sorted(table)}); the paper profile uses real VOC")
    settings = {key: tuple(value) if isinstance(value, list) else value for key, value in table[profile].items()}
    return MiniVOCConfig(seed=seed, **settings)


def ensure_minivoc(data_root: str | os.PathLike, profile: str, seed: int = 0, workers: int | None = None) -> Path:
    """Generate the profile's mini-VOC into ``data_root`` unless it is already there and complete."""
    from infercam.config import resolve_path

    root, config = resolve_path(data_root), minivoc_config(profile, seed)
    if not is_complete(root, config):
        generate_minivoc(root, config, workers=workers or min(2, os.cpu_count() or 1))
    return root
