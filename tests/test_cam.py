"""CAM inference (psa's protocol) on tiny seeded models, and its resumable storage."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from infercam.cam import (infer_cams, infer_method_cams, load_cams, multiscale_cam, multiscale_cams, padded_groups,
                          read_timing, response_maps, save_cams, to_tensor)
from tiny_data import tiny_split
from tiny_models import RedChannel, TinyClassifier


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)



def test_single_scale_answer_by_hand(image):
    red = (image[..., 0] / 255.0 - 0.485) / 0.229
    expected = np.maximum(red, 0) / (np.maximum(red, 0).max() + 1e-5)
    cams = multiscale_cam(RedChannel(), image, [0], scales=(1.0,), flip=False)
    assert cams.shape == (1, 24, 32)
    assert np.allclose(cams[0], expected, atol=1e-5)


def test_maps_are_max_normalised_and_non_negative(image):
    cams = multiscale_cam(TinyClassifier(), image, [2, 5, 11])
    assert cams.shape == (3, 24, 32) and cams.dtype == np.float32
    assert cams.min() >= 0
    assert np.allclose(cams.reshape(3, -1).max(axis=1), 1.0, atol=1e-4)


def test_only_the_asked_classes_in_their_order(image):
    model = TinyClassifier()
    every = multiscale_cam(model, image, range(20))
    some = multiscale_cam(model, image, [7, 3])
    assert np.allclose(some, every[[7, 3]], atol=1e-6)
    assert multiscale_cam(model, image, []).shape == (0, 24, 32)


def test_flip_averaging_makes_maps_flip_equivariant(image):
    model = TinyClassifier(seed=1)  # its own maps are not symmetric; the protocol's are
    cams = multiscale_cam(model, image, [0, 1], scales=(1.0, 0.5))
    mirrored = multiscale_cam(model, image[:, ::-1], [0, 1], scales=(1.0, 0.5))
    assert np.allclose(mirrored, cams[..., ::-1], atol=1e-5)
    unflipped = multiscale_cam(model, image, [0, 1], scales=(1.0, 0.5), flip=False)
    assert not np.allclose(unflipped, cams, atol=1e-3)


def test_to_tensor_normalises_like_imagenet():
    white = np.full((2, 2, 3), 255, dtype=np.uint8)
    assert torch.allclose(to_tensor(white)[:, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224,
                                                                   (1 - 0.406) / 0.225]))


def test_cam_files_round_trip_and_name_corruption(tmp_path):
    cams = np.random.default_rng(1).random((2, 5, 6)).astype(np.float32)
    save_cams(tmp_path / "a.npz", cams, [4, 9])
    loaded, class_ids = load_cams(tmp_path / "a.npz")
    assert class_ids.tolist() == [4, 9]
    assert np.allclose(loaded, cams, atol=1e-3)  # float16 storage
    (tmp_path / "b.npz").write_bytes(b"truncated")
    with pytest.raises(OSError, match="corrupt CAM file .*b.npz"):
        load_cams(tmp_path / "b.npz")
    with pytest.raises(FileNotFoundError, match="no CAM file .*c.npz: run the step"):
        load_cams(tmp_path / "c.npz")


def test_infer_cams_resumes_and_skips_what_is_saved(tmp_path):
    dataset = tiny_split(tmp_path, "val", seed=2, image_size=64, num_train=4)
    model = TinyClassifier()
    out = infer_cams(model, dataset, tmp_path / "cams", scales=(1.0,), progress=False)
    files = sorted(out.glob("*.npz"))
    assert [f.stem for f in files] == dataset.names
    cams, class_ids = load_cams(files[0])
    assert class_ids.tolist() == np.flatnonzero(dataset.cls_labels[0]).tolist()
    assert cams.shape == (len(class_ids), 64, 64)
    stamps = {f.name: f.stat().st_mtime_ns for f in files}
    files[1].unlink()
    infer_cams(model, dataset, out, scales=(1.0,), progress=False)
    assert files[1].exists()
    assert files[0].stat().st_mtime_ns == stamps[files[0].name]  # not computed again


def test_a_batch_of_images_gives_each_image_its_own_maps(image):
    model = TinyClassifier(seed=3)
    other = np.random.default_rng(5).integers(0, 256, size=image.shape, dtype=np.uint8)
    together = multiscale_cams(model, [image, other], [[1, 4], [7]], scales=(1.0, 0.5))
    assert np.allclose(together[0], multiscale_cam(model, image, [1, 4], scales=(1.0, 0.5)), atol=1e-5)
    assert np.allclose(together[1], multiscale_cam(model, other, [7], scales=(1.0, 0.5)), atol=1e-5)
    with pytest.raises(ValueError, match="share a size"):
        multiscale_cams(model, [image, other[:, :-1]], [[1], [1]])


def test_batched_inference_saves_the_same_maps_as_one_at_a_time(tmp_path):
    dataset = tiny_split(tmp_path, "train", seed=4, image_size=48, num_train=5)
    model = TinyClassifier(seed=2)
    single = infer_cams(model, dataset, tmp_path / "one", scales=(1.0, 0.5), progress=False)
    batched = infer_cams(model, dataset, tmp_path / "batched", scales=(1.0, 0.5), batch_size=3, progress=False)
    for name in dataset.names:
        (a, ids_a), (b, ids_b) = load_cams(single / f"{name}.npz"), load_cams(batched / f"{name}.npz")
        assert ids_a.tolist() == ids_b.tolist()
        assert np.allclose(a, b, atol=1e-3)


def test_any_method_is_saved_resumably_and_its_cost_is_kept(tmp_path):
    dataset = tiny_split(tmp_path, "train", seed=6, image_size=48, num_train=3)
    model = TinyClassifier(seed=1)
    calls = []

    def doubled_baseline(model, image, class_ids, baseline):  # any method with the shared call shape
        calls.append(len(class_ids))
        return np.minimum(2 * baseline, 1)

    baseline_dir = infer_cams(model, dataset, tmp_path / "baseline", scales=(1.0,), progress=False)
    assert read_timing(baseline_dir)["images"] == 3 and read_timing(baseline_dir)["seconds_per_image"] > 0
    out = infer_method_cams(doubled_baseline, model, dataset, tmp_path / "doubled", baseline_dir=baseline_dir,
                            names=dataset.names[:2], progress=False)
    assert sorted(f.stem for f in out.glob("*.npz")) == dataset.names[:2] and len(calls) == 2
    cams, _ = load_cams(out / f"{dataset.names[0]}.npz")
    baseline, _ = load_cams(baseline_dir / f"{dataset.names[0]}.npz")
    assert np.allclose(cams, np.minimum(2 * baseline, 1), atol=1e-3)
    infer_method_cams(doubled_baseline, model, dataset, out, baseline_dir=baseline_dir, progress=False)
    assert len(calls) == 3 and read_timing(out)["images"] == 3  # only the missing one was computed
    save_cams(baseline_dir / f"{dataset.names[0]}.npz", baseline[:0], [])  # baseline of another dataset
    (out / f"{dataset.names[0]}.npz").unlink()
    with pytest.raises(ValueError, match="baseline CAMs are from another dataset"):
        infer_method_cams(doubled_baseline, model, dataset, out, baseline_dir=baseline_dir, progress=False)


def test_a_method_with_batch_gets_same_size_images_together_and_saves_what_it_saves_alone(tmp_path):
    from infercam.iterative import IterativeInference

    dataset = tiny_split(tmp_path, "train", seed=8, image_size=48, num_train=5)
    model = TinyClassifier(seed=5)
    calls = []

    class Recorded(IterativeInference):
        def batch(self, model, images, class_ids):
            calls.append(len(images))
            return super().batch(model, images, class_ids)

    method = Recorded(scales=(1.0,), flip=False, stop_fraction=0.05)
    one = infer_method_cams(method, model, dataset, tmp_path / "one", progress=False)
    assert calls == [1] * 5
    calls.clear()
    batched = infer_method_cams(method, model, dataset, tmp_path / "batched", batch_size=3, progress=False)
    assert calls == [3, 2]
    for name in dataset.names:
        assert np.allclose(load_cams(one / f"{name}.npz")[0], load_cams(batched / f"{name}.npz")[0], atol=1e-3)


# --- padded batches: split & unite's patches of different sizes in common forwards ------------------

def test_padded_groups_by_hand():
    # 10x10 and 10x9 share a 10x10 canvas (200 px for 190 own: 5% padding); 5x5 padded to 10x10
    # would carry 300 px for 215 (40%): its own group. Catches groups formed without the padding cap.
    assert padded_groups([(10, 9), (5, 5), (10, 10)]) == [[2, 0], [1]]
    assert padded_groups([(10, 9), (5, 5), (10, 10)], max_padding=0.5) == [[2, 0, 1]]
    assert padded_groups([]) == []


def test_padded_maps_equal_unpadded_ones_where_the_padding_cannot_reach():
    # TinyClassifier is one 3x3 conv (zero padding, stride 4): zeros padded below and right of an input
    # are what the conv pads with anyway, so cropped to ceil(size / 4) cells the maps must equal each
    # input's own forward exactly, flips and a second scale included. Catches a wrong crop (off by a
    # cell), a flipped input padded on the wrong side, or maps returned to the wrong image or class.
    model = TinyClassifier(seed=3)
    model.output_stride = 4
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(24, 32, 3), (21, 30, 3), (13, 9, 3)]]
    class_ids = [[2, 5], [5], [7, 2, 11]]
    padded = response_maps(model, images, class_ids, scales=(1.0, 0.5), flip=True, pad=True)
    for image, ids, maps in zip(images, class_ids, padded):
        alone = response_maps(model, [image], [ids], scales=(1.0, 0.5), flip=True)[0]
        assert maps.shape == (len(ids), *image.shape[:2])
        assert torch.allclose(maps, alone, atol=1e-5)


def test_padding_is_refused_without_an_output_stride_and_sizes_must_match_without_padding(image):
    with pytest.raises(ValueError, match="output_stride"):
        response_maps(TinyClassifier(), [image, image[:20]], [[1], [1]], pad=True)
    with pytest.raises(ValueError, match="share a size"):
        response_maps(TinyClassifier(), [image, image[:20]], [[1], [1]])
