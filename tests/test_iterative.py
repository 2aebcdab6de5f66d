"""Iterative inference's erase and stop rules and its three ways of adding passes, on a model whose
map is the image's red channel (so every pass has a hand-computable answer)."""
from __future__ import annotations

import numpy as np
import pytest

from infercam.iterative import IterativeInference
from tiny_models import RedChannel

# Red 255 in region A, 150 in region B, 0 elsewhere. The map is ReLU((red / 255 - 0.485) / 0.229):
# A 2.249, B 0.451, background 0 (and the mean colour, red about 6, maps to 0 too).
A_VALUE, B_VALUE = (1 - 0.485) / 0.229, (150 / 255 - 0.485) / 0.229


@pytest.fixture
def image():
    picture = np.zeros((40, 50, 3), np.uint8)
    picture[5:10, 5:15, 0] = 255  # A: 50 pixels, 2.5% of the image
    picture[25:30, 30:40, 0] = 150  # B: 50 pixels
    return picture


def regions(shape=(40, 50)):
    a, b = np.zeros(shape, bool), np.zeros(shape, bool)
    a[5:10, 5:15], b[25:30, 30:40] = True, True
    return a, b


def run(image, **settings):
    method = IterativeInference(scales=(1.0,), flip=False, **settings)
    return method.run(RedChannel(), image, [0])


def test_each_pass_erases_its_high_activation_and_the_next_sees_what_was_hidden(image):
    maps, passes = run(image)
    a, b = regions()
    assert len(passes) == 3  # A, then B, then nothing left
    assert np.array_equal(passes[0].new_erased, a)  # B is at 0.2 of A's peak: below 0.7
    assert np.array_equal(passes[1].new_erased, b)  # with A painted over, B is the peak
    assert passes[2].new_fraction == 0 and passes[2].maps.max() == 0
    assert passes[0].new_fraction == pytest.approx(50 / 2000)


def test_sum_adds_raw_passes_on_one_scale(image):
    maps, _ = run(image, accumulate="sum")
    a, b = regions()
    # A counted once (2.249), B in passes 0 and 1 (2 x 0.451), normalised by A
    assert maps[0][a].mean() == pytest.approx(1.0, abs=1e-4)
    assert maps[0][b].mean() == pytest.approx(2 * B_VALUE / A_VALUE, abs=1e-4)


def test_normalised_sum_and_max(image):
    a, b = regions()
    summed, _ = run(image, accumulate="normalised_sum")
    # per pass, A: 1, 0, 0; B: 0.2, 1, 0 -> B 1.2 is the new maximum
    assert summed[0][b].mean() == pytest.approx(1.0, abs=1e-4)
    assert summed[0][a].mean() == pytest.approx(1 / (1 + B_VALUE / A_VALUE), abs=1e-3)
    maximum, _ = run(image, accumulate="max")
    assert maximum[0][a].mean() == pytest.approx(1.0, abs=1e-4) and maximum[0][b].mean() == pytest.approx(1.0, abs=1e-4)


def test_stop_rule_and_pass_limit(image):
    # A covers 2.5% of the image: with a 3% threshold, the first pass already reveals too little
    _, passes = run(image, stop_fraction=0.03)
    assert len(passes) == 1
    _, passes = run(image, max_passes=2)
    assert len(passes) == 2
    with pytest.raises(ValueError, match="accumulate"):
        IterativeInference(accumulate="mean")


def test_erasing_paints_the_original_mean_colour_and_leaves_the_input_alone(image):
    before = image.copy()
    seen = []

    class Recorder(RedChannel):
        def cam(self, x):
            seen.append(x.clone())
            return super().cam(x)

    IterativeInference(scales=(1.0,), flip=True).run(Recorder(), image, [0])
    assert np.array_equal(image, before)
    a, _ = regions()
    second = seen[1]  # the image and its flip, after the first erase
    assert torch_equal_columns(second[0], second[1].flip(-1))  # the flip is erased where the image is
    mean = np.round(before.reshape(-1, 3).mean(axis=0))
    expected = (mean / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert np.allclose(second[0][:, a].T.numpy(), expected, atol=1e-5)


def torch_equal_columns(left, right) -> bool:
    return bool((left - right).abs().max() < 1e-6)


def test_fill_with_the_current_mean_paints_with_the_erased_image_s_colour(image):
    class Recorder(RedChannel):
        def __init__(self):
            self.inputs = []

        def cam(self, x):
            self.inputs.append(x.clone())
            return super().cam(x)

    a, _ = regions()
    painted_red = {}
    for fill in ("original_mean", "current_mean"):
        model = Recorder()
        IterativeInference(scales=(1.0,), flip=False, fill=fill).run(model, image, [0])
        red = model.inputs[-1][0, 0].numpy() * 0.229 + 0.485  # back to red / 255 in the last pass's input
        painted_red[fill] = round(float(red[a].mean() * 255))
    # the original mean red: (50 x 255 + 50 x 150) / 2000 = 10; before the last pass A is already painted 10
    # and B is still 150, so the current image's mean red is (50 x 10 + 50 x 150) / 2000 = 4
    assert painted_red == {"original_mean": 10, "current_mean": 4}
    with pytest.raises(ValueError, match="fill"):
        IterativeInference(fill="black")


def test_without_normalisation_the_sum_stays_on_the_classifier_s_scale(image):
    raw, _ = run(image, accumulate="sum", normalise=False)
    a, b = regions()
    assert raw[0][a].mean() == pytest.approx(A_VALUE, rel=1e-4)
    assert raw[0][b].mean() == pytest.approx(2 * B_VALUE, rel=1e-4)


def test_images_iterated_together_get_what_each_gets_alone(image):
    from tiny_models import TinyClassifier

    model = TinyClassifier(seed=7)
    rng = np.random.default_rng(3)
    others = [rng.integers(0, 256, image.shape, dtype=np.uint8) for _ in range(2)]
    method = IterativeInference(scales=(1.0, 0.5), flip=True, stop_fraction=0.05)
    images, class_ids = [image, *others], [[0], [3, 11], []]
    together = method.run_batch(model, images, class_ids)
    alone = [method.run(model, picture, ids) for picture, ids in zip(images, class_ids)]
    for (maps, passes), (single_maps, single_passes) in zip(together, alone):
        assert maps.shape == single_maps.shape and np.allclose(maps, single_maps, atol=1e-5)
        assert [p.new_fraction for p in passes] == pytest.approx([p.new_fraction for p in single_passes])
    assert together[2][0].shape == (0, 40, 50) and together[2][1] == []
    # each image stops on its own: A and B take three passes, A alone two
    only_a = image.copy()
    only_a[25:30, 30:40] = 0
    exact = IterativeInference(scales=(1.0,), flip=False)
    both = exact.run_batch(RedChannel(), [image, only_a], [[0], [0]])
    assert [len(passes) for _, passes in both] == [3, 2]
    assert np.allclose(both[1][0], exact.run(RedChannel(), only_a, [0])[0])


def test_fast_later_passes_see_only_their_scales_and_keep_the_stop_rule(image):
    # catches a fast setting that leaks into the first pass, or stops after another number of passes
    class SizeRecorder(RedChannel):
        def __init__(self):
            self.sizes = []

        def cam(self, x):
            self.sizes.append(tuple(x.shape[2:]))
            return super().cam(x)

    faithful, fast = SizeRecorder(), SizeRecorder()
    _, faithful_passes = IterativeInference(scales=(1.0, 0.5), flip=False).run(faithful, image, [0])
    fast_maps, fast_passes = IterativeInference(scales=(1.0, 0.5), flip=False, later_scales=(0.5,)).run(fast, image, [0])
    assert faithful.sizes == [(40, 50), (20, 25)] * len(faithful_passes)
    assert fast.sizes == [(40, 50), (20, 25)] + [(20, 25)] * (len(fast_passes) - 1)
    assert fast_maps.shape == (1, 40, 50)
    for passes in (faithful_passes, fast_passes):  # the same rule: go on while a pass newly erases 1% or more
        assert all(p.new_fraction >= 0.01 for p in passes[:-1]) and passes[-1].new_fraction < 0.01
    with pytest.raises(ValueError, match="later_scales"):
        IterativeInference(later_scales=())


def test_later_passes_at_fewer_scales_are_weighed_back_onto_the_first_pass_s_scale(image):
    # catches a later pass's raw sum over fewer inputs added unweighted (it would count half here):
    # twice the scale 1.0 in the first pass against once later, on a map that does not depend on scale
    same, _ = IterativeInference(scales=(1.0, 1.0), flip=False).run(RedChannel(), image, [0])
    weighed, _ = IterativeInference(scales=(1.0, 1.0), flip=False, later_scales=(1.0,)).run(RedChannel(), image, [0])
    assert np.allclose(weighed, same, atol=1e-6)


def test_erase_rule_takes_each_class_against_its_own_peak():
    # Catches an erase rule that looks at one class only (the first) or compares all classes
    # against one common peak: the green square G (255) is far weaker than red A in absolute terms
    # (green's ImageNet normalisation aside, it is another class), yet it is green's own peak, so
    # pass 0 erases it with A; green's weaker square G2 (150, 0.2 of G) waits for pass 1.
    from tiny_models import ColourClasses

    picture = np.zeros((40, 50, 3), np.uint8)
    picture[5:10, 5:15, 0] = 255  # A
    picture[25:30, 5:15, 1] = 255  # G
    picture[25:30, 30:40, 1] = 150  # G2
    a, g, g2 = (np.zeros((40, 50), bool) for _ in range(3))
    a[5:10, 5:15], g[25:30, 5:15], g2[25:30, 30:40] = True, True, True
    maps, passes = IterativeInference(scales=(1.0,), flip=False).run(ColourClasses(), picture, [0, 1])
    assert np.array_equal(passes[0].new_erased, a | g)
    assert np.array_equal(passes[1].new_erased, g2)
    assert len(passes) == 3 and passes[2].new_fraction == 0
    green_full, green_weak = (1 - 0.456) / 0.224, (150 / 255 - 0.456) / 0.224
    assert maps[0][a].mean() == pytest.approx(1.0, abs=1e-4) and maps[0][g | g2].max() == 0
    # "sum": G counted in pass 0, G2 in passes 0 and 1, each class normalised by its own peak
    assert maps[1][g].mean() == pytest.approx(1.0, abs=1e-4)
    assert maps[1][g2].mean() == pytest.approx(2 * green_weak / green_full, abs=1e-4)


def test_without_normalisation_max_and_normalised_sum_keep_their_own_scale(image):
    # Catches normalise=False ignored for the accumulations other than "sum" (or the raw sum
    # returned for them): per pass, A is 1, 0, 0 and B 0.2, 1, 0 (each pass max-normalised).
    a, b = regions()
    ratio = B_VALUE / A_VALUE
    summed, _ = run(image, accumulate="normalised_sum", normalise=False)
    assert summed[0][a].mean() == pytest.approx(1.0, abs=1e-4)
    assert summed[0][b].mean() == pytest.approx(1 + ratio, abs=1e-4)  # normalised, it would be 1
    maximum, _ = run(image, accumulate="max", normalise=False)
    assert maximum[0][a].mean() == pytest.approx(1.0, abs=1e-4) and maximum[0][b].mean() == pytest.approx(1.0, abs=1e-4)
    assert maximum.max() < 1.0001  # the passes' maxima, not their raw responses (A is 2.249 raw)
