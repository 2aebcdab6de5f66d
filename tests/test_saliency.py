"""The frequency-tuned saliency on constructed images: it finds what stands out, the centre prior
favours the middle, and the stored maps round-trip."""
from __future__ import annotations

import numpy as np
import pytest

from infercam.saliency import load_saliency, save_saliency, frequency_tuned


def picture_with_blob(top: int, left: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    image = np.full((size, size, 3), 120, np.uint8)
    image[top:top + 16, left:left + 16] = (250, 30, 30)
    blob = np.zeros((size, size), bool)
    blob[top:top + 16, left:left + 16] = True
    return image, blob


def test_lab_conversion_of_known_colours():
    from infercam.saliency import rgb_to_lab

    lab = rgb_to_lab(np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], np.uint8))[0]
    assert lab[0] == pytest.approx([100, 0, 0], abs=0.1)
    assert lab[1] == pytest.approx([0, 0, 0], abs=0.1)
    assert lab[2] == pytest.approx([53.24, 80.09, 67.20], abs=0.1)  # sRGB red


def test_the_odd_one_out_is_salient():
    image, blob = picture_with_blob(40, 40)
    saliency = frequency_tuned(image, centre_prior=0)
    assert saliency.shape == (96, 96) and saliency.dtype == np.float32
    assert 0 <= saliency.min() and saliency.max() <= 1
    assert saliency[blob].mean() > 3 * saliency[~blob].mean()


def test_the_centre_prior_favours_the_middle():
    image, corner = picture_with_blob(4, 4)
    image[40:56, 40:56] = (250, 30, 30)  # the same blob again, in the middle
    middle = np.zeros_like(corner)
    middle[40:56, 40:56] = True
    ratio = {prior: frequency_tuned(image, centre_prior=prior)[corner].mean() / frequency_tuned(image, centre_prior=prior)[middle].mean()
             for prior in (0.0, 1.0)}
    assert ratio[0.0] == pytest.approx(1.0, abs=0.1)
    assert ratio[1.0] < 0.5


def test_maps_round_trip_and_a_missing_one_says_how_to_make_it(tmp_path):
    saliency = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    save_saliency(saliency, tmp_path / "a.png")
    assert np.allclose(load_saliency(tmp_path / "a.png"), saliency, atol=1 / 255)
    with pytest.raises(FileNotFoundError, match="make_saliency_maps"):
        load_saliency(tmp_path / "b.png")
