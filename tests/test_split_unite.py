"""Split & unite geometry and merge on constructed maps (paper section 3.2, Fig. 3)."""
from __future__ import annotations

import numpy as np
import pytest

from infercam.cam import BaselineCAM
from infercam.split_unite import Patch, SplitUnite, centre_of_mass, plan_patches, rectangle_boxes, unite
from tiny_models import ColourClasses, RedChannel, TinyClassifier


def blob(height, width, top, left, bottom, right):
    cam = np.zeros((height, width), np.float32)
    cam[top:bottom, left:right] = 1.0
    return cam


def coverage_counts(patches, shape):
    counts = np.zeros(shape, int)
    for patch in patches:
        counts[patch.rows, patch.columns] += 1
    return counts


def test_centre_of_mass():
    assert centre_of_mass(blob(10, 20, 2, 4, 4, 8)) == pytest.approx((2.5, 5.5))
    assert centre_of_mass(np.zeros((10, 20))) == pytest.approx((4.5, 9.5))  # nothing: the image centre


def test_one_class_quadrants_tile_the_image_about_the_centre():
    cams = blob(100, 80, 20, 10, 40, 30)[None]  # centre (29.5, 19.5)
    patches = plan_patches(cams, [3])
    assert [(p.top, p.left, p.bottom, p.right) for p in patches] == [
        (0, 0, 30, 20), (0, 20, 30, 80), (30, 0, 100, 20), (30, 20, 100, 80)]
    assert all(p.class_ids == (3,) for p in patches)
    assert (coverage_counts(patches, (100, 80)) == 1).all()  # a partition: no overlap without a buffer
    # each quadrant holds a quarter of the object
    assert [cams[0][p.rows, p.columns].sum() for p in patches] == [100, 100, 100, 100]


def test_buffer_overlaps_neighbours_and_stays_inside():
    patches = plan_patches(blob(100, 80, 20, 10, 40, 30)[None], [3], buffer=10)
    assert [(p.top, p.left, p.bottom, p.right) for p in patches] == [
        (0, 0, 40, 30), (0, 10, 40, 80), (20, 0, 100, 30), (20, 10, 100, 80)]


def test_centres_near_the_border_keep_patches_at_least_min_size():
    corner = blob(100, 80, 0, 0, 3, 3)[None]  # centre (1, 1): a 1-pixel quadrant without the rule
    patches = plan_patches(corner, [5], min_size=16)
    assert min(min(p.height, p.width) for p in patches) == 16
    assert (coverage_counts(patches, (100, 80)) == 1).all()
    far = blob(100, 80, 97, 77, 100, 80)[None]  # the opposite corner: never wraps around
    assert all(0 <= p.top < p.bottom <= 100 and 0 <= p.left < p.right <= 80 for p in plan_patches(far, [5]))
    assert plan_patches(corner, [5], min_size=60) == []  # too small an image to split


def test_two_classes_keep_the_spanned_rectangle_in_every_patch():
    cams = np.stack([blob(100, 80, 10, 10, 20, 20), blob(100, 80, 60, 50, 70, 60)])  # centres (14.5, 14.5), (64.5, 54.5)
    patches = plan_patches(cams, [1, 14], min_size=8)
    assert len(patches) == 4 and all(p.class_ids == (1, 14) for p in patches)
    counts = coverage_counts(patches, (100, 80))
    assert (counts[15:65, 15:55] == 4).all()  # the rectangle between the centres is in all four
    assert counts[0, 0] == counts[0, 79] == counts[99, 0] == counts[99, 79] == 1  # one corner each
    assert counts.min() >= 1


@pytest.mark.parametrize("many_classes, expected", [("per_class", 12), ("none", 0)])
def test_three_classes_split_per_class_or_not_at_all(many_classes, expected):
    cams = np.stack([blob(64, 64, 5, 5, 15, 15), blob(64, 64, 40, 40, 50, 50), blob(64, 64, 5, 40, 15, 50)])
    patches = plan_patches(cams, [0, 6, 9], many_classes=many_classes)
    assert len(patches) == expected
    for class_id in (0, 6, 9) if expected else ():
        own = [p for p in patches if p.class_ids == (class_id,)]
        assert len(own) == 4 and (coverage_counts(own, (64, 64)) == 1).all()
    with pytest.raises(ValueError, match="many_classes"):
        plan_patches(cams, [0, 6, 9], many_classes="all")


def test_unite_takes_the_elementwise_maximum_and_refuses_holes():
    left, right = Patch(0, 0, 4, 3, (2, 7)), Patch(0, 2, 4, 5, (2, 7))  # overlap in column 2
    maps_left = np.stack([np.full((4, 3), 0.2), np.full((4, 3), 0.9)])
    maps_right = np.stack([np.full((4, 3), 0.5), np.full((4, 3), 0.1)])
    united = unite([(left, maps_left), (right, maps_right)], [2, 7], (4, 5))
    assert united[0].tolist()[0] == pytest.approx([0.2, 0.2, 0.5, 0.5, 0.5])
    assert united[1].tolist()[0] == pytest.approx([0.9, 0.9, 0.9, 0.1, 0.1])
    with pytest.raises(ValueError, match="uncovered"):
        unite([(left, maps_left)], [2, 7], (4, 5))


def test_split_and_unite_infers_each_patch_on_its_own():
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    model, inner = TinyClassifier(seed=4), BaselineCAM(scales=(1.0,), flip=False)
    baseline = inner(model, image, [3])
    maps, patches, patch_maps = SplitUnite(inner).run(model, image, [3], baseline)
    assert maps.shape == (1, 64, 64) and len(patches) == 4
    for patch, patch_map in patch_maps:  # each patch max-normalised on its own: every one peaks at 1
        assert patch_map.max() == pytest.approx(1.0, abs=1e-3)  # psa divides by max + 1e-5
        assert np.allclose(patch_map, inner(model, image[patch.rows, patch.columns], [3]))
        assert np.allclose(maps[:, patch.rows, patch.columns], patch_map, atol=1e-3)  # no overlap: the patch's own map
    three = np.stack([baseline[0]] * 3)
    assert np.array_equal(SplitUnite(inner, many_classes="none")(model, image, [1, 2, 3], three), three)


def test_score_gate_drops_patches_where_the_classifier_does_not_see_the_class():
    # The object: the red left half. A small red distractor sits in the top-right patch, whose
    # score for the class is negative: max-normalised on its own, the distractor becomes a 1.
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, :32, 0] = 255
    image[8:12, 48:52, 0] = 255
    baseline = np.zeros((1, 64, 64), np.float32)
    baseline[:, :, 20:44] = 1  # centre (31.5, 31.5): split lines at 32
    inner = BaselineCAM(scales=(1.0,), flip=False)
    ungated = SplitUnite(inner)(RedChannel(), image, [0], baseline)
    gated = SplitUnite(inner, score_gate=0.5)(RedChannel(), image, [0], baseline)
    assert ungated[0, 8:12, 48:52].min() > 0.99  # a false positive as strong as the object
    assert gated[0, 8:12, 48:52].max() == 0  # sigmoid(mean of the patch's map) < 0.5: dropped
    assert gated[0, :, :32].min() > 0.99  # the object's patches score high and stay


def test_common_scale_keeps_weak_patches_weak():
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, :32, 0] = 255  # strong red on the left, weak on the right
    image[:, 32:, 0] = 150
    baseline = np.ones((1, 64, 64), np.float32)
    per_patch = SplitUnite(BaselineCAM(scales=(1.0,), flip=False))(RedChannel(), image, [0], baseline)
    common = SplitUnite(BaselineCAM(scales=(1.0,), flip=False, normalise=False))(RedChannel(), image, [0], baseline)
    assert per_patch[0, 0, 63] == pytest.approx(1.0, abs=1e-3)  # each patch lit up to 1 on its own
    assert common[0, 0, 63] == pytest.approx((150 / 255 - 0.485) / (1 - 0.485), abs=1e-3)  # 0.2 of the left


def test_dataset_patches_are_planned_from_the_saved_baseline_maps(tmp_path):
    from infercam.cam import save_cams
    from infercam.split_unite import plan_dataset_patches

    cam = np.zeros((1, 64, 80), np.float32)
    cam[0, 40, 21] = 1.0  # centre of mass at (40, 21): the centre pixel goes down and right, whatever its parity
    save_cams(tmp_path / "a.npz", cam, [6])
    save_cams(tmp_path / "b.npz", np.zeros((0, 64, 80), np.float32), [])
    plans = plan_dataset_patches(["a", "b"], tmp_path)
    assert plans["b"] == []
    assert [(p.top, p.left, p.bottom, p.right) for p in plans["a"]] == \
        [(0, 0, 40, 21), (0, 21, 40, 80), (40, 0, 64, 21), (40, 21, 64, 80)]
    assert all(p.class_ids == (6,) for p in plans["a"])
    with pytest.raises(FileNotFoundError, match="no CAM file"):
        plan_dataset_patches(["missing"], tmp_path)


def test_patch_responses_compare_each_patch_with_the_same_pixels_in_the_whole_image():
    from infercam.split_unite import patch_responses

    # RedChannel's map is the red channel: a patch answers exactly as the image did on its pixels
    image = np.zeros((64, 64, 3), np.uint8)
    image[8:20, 8:20, 0] = 255
    truth = np.zeros((64, 64), np.uint8)
    truth[8:20, 8:20] = 1
    baseline = np.zeros((1, 64, 64), np.float32)
    baseline[0, 31:33, 31:33] = 1  # split at the centre: the object lies in the top-left patch
    rows = patch_responses(RedChannel(), image, [0], baseline, truth, scales=(1.0,), flip=False)
    assert [r["patch"] for r in rows] == [0, 1, 2, 3]
    top_left = rows[0]
    assert top_left["object_share"] == pytest.approx(144 / 32 ** 2)
    assert top_left["peak_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert top_left["patch_peak_on_object"] and top_left["image_peak_on_object"]
    assert all(r["object_share"] == 0 and not r["patch_peak_on_object"] for r in rows[1:])


def test_patches_of_one_size_go_through_the_inner_method_together():
    calls = []

    class Recorded(BaselineCAM):
        def batch(self, model, images, class_ids):
            calls.append([image.shape for image in images])
            return super().batch(model, images, class_ids)

    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    baseline = np.zeros((1, 64, 64), np.float32)
    baseline[0, 31:33, 31:33] = 1  # the centre: four 32 x 32 patches
    model = TinyClassifier(seed=2)
    united = SplitUnite(Recorded(scales=(1.0,), flip=False), min_size=8)(model, image, [4], baseline)
    assert calls == [[(32, 32, 3)] * 4]
    one_by_one = SplitUnite(lambda m, crop, ids: BaselineCAM(scales=(1.0,), flip=False)(m, crop, ids), min_size=8)
    assert np.allclose(united, one_by_one(model, image, [4], baseline), atol=1e-5)


# --- several classes, checked against an independent numpy computation ------------------------------
# ColourClasses' class c is the image's normalised colour channel c: what the module must give can be
# computed here from the image and the patch boxes alone, without the module's code.

IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def colour_score(image, channel):
    """ColourClasses' map of class ``channel`` before the ReLU."""
    return (image[..., channel] / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]


def expected_union(image, boxes_by_class, score_gate=None):
    """Each class's ReLU'd map max-normalised in each of its boxes (zero where the gate drops the
    patch), united by maximum, max-normalised once more: (K, H, W) in the order of the dict."""
    united = np.zeros((len(boxes_by_class), *image.shape[:2]))
    for row, (channel, boxes) in enumerate(boxes_by_class.items()):
        for top, left, bottom, right in boxes:
            score = colour_score(image[top:bottom, left:right], channel)
            patch = np.maximum(score, 0) / (np.maximum(score, 0).max() + 1e-5)
            if score_gate is not None and 1 / (1 + np.exp(-score.mean())) <= score_gate:
                patch = np.zeros_like(patch)
            np.maximum(united[row, top:bottom, left:right], patch, out=united[row, top:bottom, left:right])
    return united / (united.max(axis=(1, 2), keepdims=True) + 1e-5)


def ramp_image(seed=0):
    """Noise whose red fades from left to right and whose green grows from top to bottom (blue:
    uniform): each patch peaks at another level, so the per-patch normalisation shows in the union."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(1.0, 0.2, 64)
    image = rng.integers(0, 256, (64, 64, 3)).astype(float)
    image[..., 0] *= ramp[None, :]
    image[..., 1] *= ramp[::-1, None]
    return image.astype(np.uint8)


def test_rectangle_boxes_with_a_buffer_by_hand():
    # Catches a buffer applied the wrong way (shrinking the rectangle) or not clipped to the image.
    assert rectangle_boxes((13.5, 13.5), (49.5, 49.5), 64, 64, buffer=4, min_size=8) == [
        (0, 0, 54, 54), (0, 10, 54, 64), (10, 0, 64, 54), (10, 10, 64, 64)]
    assert rectangle_boxes((13.5, 13.5), (49.5, 49.5), 64, 64, buffer=20, min_size=8) == [
        (0, 0, 64, 64)] * 4  # grown past the edges: clipped, never wrapped


def test_two_classes_unite_per_class_maps_as_computed_by_hand():
    # Catches maps united into the wrong class row (class_ids not in sorted order here), patches
    # not normalised on their own, and a buffer that does not reach the inferred patches.
    image = ramp_image()
    baseline = np.stack([blob(64, 64, 44, 44, 56, 56), blob(64, 64, 8, 8, 20, 20)])  # green's centre, then red's
    inner = BaselineCAM(scales=(1.0,), flip=False)
    maps, patches, _ = SplitUnite(inner, buffer=4, min_size=8).run(ColourClasses(), image, [1, 0], baseline)
    boxes = [(0, 0, 54, 54), (0, 10, 54, 64), (10, 0, 64, 54), (10, 10, 64, 64)]
    assert [(p.top, p.left, p.bottom, p.right) for p in patches] == boxes
    assert np.allclose(maps, expected_union(image, {1: boxes, 0: boxes}), atol=1e-4)
    whole = inner(ColourClasses(), image, [1, 0])
    assert np.abs(maps - whole).max() > 0.1  # the split changes the maps: the comparison above can fail


def test_three_classes_each_unite_their_own_quadrants():
    # Catches the per_class path giving a class the maps of another class's patches, or uniting all
    # twelve patches into every class.
    image = ramp_image(seed=1)
    centres = {2: (20, 24, 30, 34), 0: (40, 16, 50, 26), 1: (26, 40, 36, 50)}  # blob boxes: centres (24.5, 28.5), ...
    baseline = np.stack([blob(64, 64, *box) for box in centres.values()])
    maps, patches, _ = SplitUnite(BaselineCAM(scales=(1.0,), flip=False)).run(ColourClasses(), image, [2, 0, 1], baseline)
    assert len(patches) == 12 and [p.class_ids for p in patches] == [(2,)] * 4 + [(0,)] * 4 + [(1,)] * 4
    lines = {2: (25, 29), 0: (45, 21), 1: (31, 45)}  # floor(centre + 0.5)

    def quadrants(y, x):
        return [(0, 0, y, x), (0, x, y, 64), (y, 0, 64, x), (y, x, 64, 64)]

    expected = expected_union(image, {channel: quadrants(*lines[channel]) for channel in (2, 0, 1)})
    assert np.allclose(maps, expected, atol=1e-4)


def test_score_gate_keeps_or_drops_each_class_of_a_patch_on_its_own_score():
    # Catches the gate reading another class's score (e.g. the first class's for all): with red on
    # the left and green at the bottom, the top-left patch keeps red and drops green.
    image = ramp_image(seed=2)
    image[:, :32, 0] = np.maximum(image[:, :32, 0], 200)  # red covers the left half
    image[32:, :, 1] = np.maximum(image[32:, :, 1], 200)  # green the bottom half
    baseline = np.stack([blob(64, 64, 26, 26, 38, 38), blob(64, 64, 26, 26, 38, 38)])  # both centres (31.5, 31.5)
    model, inner = ColourClasses(), BaselineCAM(scales=(1.0,), flip=False)
    gated, patches, patch_maps = SplitUnite(inner, score_gate=0.5).run(model, image, [0, 1], baseline)
    boxes = [(p.top, p.left, p.bottom, p.right) for p in patches]
    assert np.allclose(gated, expected_union(image, {0: boxes, 1: boxes}, score_gate=0.5), atol=1e-4)
    kept = {(p.top, p.left): [bool(m.max() > 0) for m in maps] for p, maps in patch_maps}
    assert kept[(0, 0)] == [True, False]  # top-left: red yes, green no
    assert kept[(32, 32)] == [False, True]  # bottom-right: green only


def test_combined_module_by_hand_differs_from_each_part():
    # Split & unite around iterative inference, one class: a strong red square A (255) and a weak
    # one B1 (150) in the top-left patch, a weak one B2 alone in the bottom-right patch. By hand
    # (iterative "sum": A erased first, then B; each pass adds its raw map): top-left A 1, B1
    # 2 x 0.2; bottom-right B2 is its patch's peak, 1. Split & unite alone gives B1 0.2; iterative
    # alone on the image gives B2 0.4. Catches the combined module losing either part.
    from infercam.iterative import IterativeInference

    image = np.zeros((64, 64, 3), np.uint8)
    image[4:12, 4:12, 0] = 255
    image[20:26, 4:10, 0] = 150
    image[40:48, 40:48, 0] = 150
    baseline = blob(64, 64, 30, 30, 34, 34)[None]  # centre (31.5, 31.5): split at 32
    weak = ((150 / 255 - 0.485) / 0.229) / ((1 - 0.485) / 0.229)
    iterative = IterativeInference(scales=(1.0,), flip=False)
    combined = SplitUnite(iterative)(RedChannel(), image, [0], baseline)[0]
    assert combined[4:12, 4:12] == pytest.approx(1.0, abs=1e-4)
    assert combined[20:26, 4:10] == pytest.approx(2 * weak, abs=1e-4)
    assert combined[40:48, 40:48] == pytest.approx(1.0, abs=1e-4)
    red = image[..., 0] > 0
    assert combined[~red].max() == 0
    alone = SplitUnite(BaselineCAM(scales=(1.0,), flip=False))(RedChannel(), image, [0], baseline)[0]
    assert alone[20:26, 4:10] == pytest.approx(weak, abs=1e-4)
    assert iterative(RedChannel(), image, [0])[0][40:48, 40:48] == pytest.approx(2 * weak, abs=1e-4)


@pytest.mark.parametrize("class_ids", [[0], [0, 1], [2, 0, 1]])
@pytest.mark.parametrize("iterative", [False, True])
def test_padded_patches_give_the_maps_of_patches_by_size_in_fewer_forwards(class_ids, iterative):
    # ColourClasses answers pixel by pixel, so zeros padded around a patch cannot reach its maps: split
    # & unite and the combined module with patch_batches="padded" must give exactly the maps of
    # "by_size", off-centre splits (patches of four sizes), 1, 2 and 3 classes, two scales. Catches
    # padded patches whose maps go to another patch or class, or that the erasing of one patch leaks
    # into another's; and padding that does not cut the forwards.
    from infercam.conditional import MethodSettings
    from infercam.timing import CountingClassifier

    image = ramp_image(seed=3)
    baseline = np.stack([blob(64, 64, 16 + 6 * c, 10 + 9 * c, 30 + 6 * c, 24 + 9 * c) for c in range(len(class_ids))])
    model = ColourClasses()
    model.output_stride = 1
    maps, forwards = {}, {}
    for batches in ("by_size", "padded"):
        method = MethodSettings(split_unite=True, iterative=iterative, patch_batches=batches).build(scales=(1.0, 0.5), flip=False)
        counted = CountingClassifier(model, "cpu")
        maps[batches] = method(counted, image, class_ids, baseline)
        forwards[batches] = counted.forwards
    assert np.allclose(maps["padded"], maps["by_size"], atol=1e-5)
    assert forwards["padded"] < forwards["by_size"]


def test_patch_batches_is_validated_and_names_its_folder():
    from infercam.conditional import MethodSettings

    with pytest.raises(ValueError, match="patch_batches must be one of"):
        MethodSettings(split_unite=True, patch_batches="bucketed")
    assert MethodSettings(split_unite=True, patch_batches="padded").slug == "split_unite-patch_batches=padded"
    assert MethodSettings(iterative=True, patch_batches="padded").slug == "iterative"  # no patches to pad
