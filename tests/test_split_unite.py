"""Split & unite geometry and merge on constructed maps (paper section 3.2, Fig. 3)."""
from __future__ import annotations

import numpy as np
import pytest

from infercam.cam import BaselineCAM
from infercam.split_unite import Patch, SplitUnite, centre_of_mass, plan_patches, unite
from tiny_models import RedChannel, TinyClassifier


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
    assert SplitUnite(inner, many_classes="none")(model, image, [1, 2, 3], three) is not None
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
