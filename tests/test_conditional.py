"""Methods named by their settings: which object each builds, where its maps live, and the guard
that keeps two methods' maps from mixing in one folder."""
from __future__ import annotations

import json

import numpy as np
import pytest

from infercam.cam import BaselineCAM, MapsSettingsError, load_cams, method_settings
from infercam.conditional import MethodSettings, compute_maps, maps_dir
from infercam.datasets import VOCSegmentation
from infercam.iterative import IterativeInference
from infercam.minivoc import MiniVOCConfig, generate_minivoc
from infercam.split_unite import SplitUnite
from tiny_models import TinyClassifier


def test_kinds_and_slugs_name_only_the_settings_that_apply_and_differ():
    assert MethodSettings().slug == "baseline"
    assert MethodSettings(stop_fraction=0.02).slug == "baseline"  # iterative settings do not apply
    assert MethodSettings(split_unite=True).slug == "split_unite"
    assert MethodSettings(iterative=True, stop_fraction=0.02, accumulate="max").slug == \
        "iterative-stop_fraction=0.02-accumulate=max"
    both = MethodSettings(split_unite=True, iterative=True, buffer=10, fill="current_mean")
    assert both.kind == "combined" and both.changed() == {"buffer": 10, "fill": "current_mean"}
    assert both.slug == "combined-buffer=10-fill=current_mean"
    with pytest.raises(ValueError, match="patch_scale"):
        MethodSettings(patch_scale="global")
    with pytest.raises(ValueError, match="accumulate"):
        MethodSettings(accumulate="mean")


def test_build_gives_the_paper_objects_and_the_common_scale_variants():
    protocol = dict(scales=[1.0, 0.5], flip=False, device="cpu")
    assert MethodSettings().build(**protocol) == BaselineCAM(scales=(1.0, 0.5), flip=False)
    combined = MethodSettings(split_unite=True, iterative=True, score_gate=0.5).build(**protocol)
    assert isinstance(combined, SplitUnite) and combined.score_gate == 0.5
    assert isinstance(combined.inner, IterativeInference) and combined.inner.normalise
    common = MethodSettings(split_unite=True, iterative=True, patch_scale="common").build(**protocol)
    assert not common.inner.normalise  # patches stay on their raw scale until after the union
    assert MethodSettings(split_unite=True, patch_scale="common").build(**protocol).inner == \
        BaselineCAM(scales=(1.0, 0.5), flip=False, normalise=False)
    # patch_scale means nothing without patches: iterative alone is normalised either way
    assert MethodSettings(iterative=True, patch_scale="common").build(**protocol).normalise


def test_fast_setting_has_its_own_maps_folder_and_is_refused_when_unknown():
    # catches fast maps written into (or read from) the faithful ones' folder, and a typo run as faithful
    fast = MethodSettings(split_unite=True, iterative=True, conditional_inference="fast")
    assert fast.slug == "combined-conditional_inference=fast"
    assert MethodSettings(conditional_inference="fast").slug == "baseline"  # no passes to make fast
    assert MethodSettings(split_unite=True, conditional_inference="fast").slug == "split_unite-conditional_inference=fast"
    protocol = dict(scales=[1.0, 0.5], flip=False, device="cpu")
    assert MethodSettings(iterative=True).build(**protocol).later_scales is None  # faithful: every pass whole
    assert MethodSettings(split_unite=True, iterative=True).build(**protocol).inner.scales == (1.0, 0.5)
    with pytest.raises(ValueError, match="conditional_inference must be one of .*'faithful'.*'fast'.*'quick'"):
        MethodSettings(iterative=True, conditional_inference="quick")


def test_fast_setting_infers_patches_at_the_largest_scale_and_later_passes_at_the_smallest():
    # catches a fast setting that shrinks the wrong inputs: the patches must keep the protocol's
    # largest scale (a halved patch is a few map cells), iterative inference alone its whole first pass
    protocol = dict(scales=[0.5, 1.0, 1.5], flip=False, device="cpu")
    combined = MethodSettings(split_unite=True, iterative=True, conditional_inference="fast").build(**protocol)
    assert (combined.inner.scales, combined.inner.later_scales) == ((1.5,), (0.5,))
    iterative = MethodSettings(iterative=True, conditional_inference="fast").build(**protocol)
    assert (iterative.scales, iterative.later_scales) == ((0.5, 1.0, 1.5), (0.5,))
    assert MethodSettings(split_unite=True, conditional_inference="fast").build(**protocol).inner.scales == (1.5,)


def test_from_parameters_takes_the_settings_among_other_parameters():
    parameters = {"split_unite": True, "buffer": 4, "work_dir": "runs/x", "num_images": 3}
    assert MethodSettings.from_parameters(parameters) == MethodSettings(split_unite=True, buffer=4)


def test_method_settings_describe_nested_methods_without_the_device():
    described = method_settings(SplitUnite(BaselineCAM(scales=(1.0,), device="cuda")), TinyClassifier())
    assert described["method"] == "SplitUnite" and described["inner"]["method"] == "BaselineCAM"
    assert described["inner"]["scales"] == [1.0] and "device" not in described["inner"]
    assert described == method_settings(SplitUnite(BaselineCAM(scales=[1.0], device="cpu")), TinyClassifier())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = generate_minivoc(tmp_path_factory.mktemp("voc") / "VOC2012",
                            MiniVOCConfig(seed=3, image_size=64, num_train=3, num_val=3, num_aug=1), progress=False)
    return VOCSegmentation(root, "val")


def test_compute_maps_makes_the_baseline_it_splits_by_and_shares_folders(dataset, tmp_path):
    model = TinyClassifier(seed=4)
    settings = MethodSettings(split_unite=True, min_size=8)
    folder = compute_maps(settings, model, dataset, tmp_path, scales=(1.0,), names=dataset.names[:2], progress=False)
    assert folder == maps_dir(tmp_path, settings, "val") == tmp_path / "cams" / "split_unite-min_size=8" / "val"
    assert sorted(f.stem for f in folder.glob("*.npz")) == dataset.names[:2]
    baseline = maps_dir(tmp_path, MethodSettings(), "val")
    assert sorted(f.stem for f in baseline.glob("*.npz")) == dataset.names[:2]
    saved = json.loads((folder / "settings.json").read_text())
    assert saved["method"] == "SplitUnite" and saved["min_size"] == 8 and saved["inner"]["scales"] == [1.0]
    # asking again computes nothing; the maps are those of the method on the saved baseline
    stamp = (folder / f"{dataset.names[0]}.npz").stat().st_mtime_ns
    compute_maps(settings, model, dataset, tmp_path, scales=(1.0,), names=dataset.names[:2], progress=False)
    assert (folder / f"{dataset.names[0]}.npz").stat().st_mtime_ns == stamp
    image, name = dataset.load_image(dataset.names[0]), dataset.names[0]
    base, ids = load_cams(baseline / f"{name}.npz")
    expected = settings.build(scales=(1.0,))(model, image, ids, base)
    assert np.allclose(load_cams(folder / f"{name}.npz")[0], expected, atol=2e-3)


def test_a_folder_refuses_maps_of_other_settings(dataset, tmp_path):
    model = TinyClassifier(seed=4)
    compute_maps(MethodSettings(), model, dataset, tmp_path, scales=(1.0,), names=dataset.names[:1], progress=False)
    with pytest.raises(MapsSettingsError, match=r"other settings \(differing: inner|differing: scales"):
        compute_maps(MethodSettings(), model, dataset, tmp_path, scales=(1.0, 0.5), progress=False)
    folder = maps_dir(tmp_path, MethodSettings(), "val")
    (folder / "settings.json").unlink()
    with pytest.raises(MapsSettingsError, match="no settings.json"):
        compute_maps(MethodSettings(), model, dataset, tmp_path, scales=(1.0,), progress=False)
    assert len(list(folder.glob("*.npz"))) == 1  # nothing computed is lost


def test_maps_made_before_the_fast_setting_existed_still_count_as_faithful(tmp_path):
    # Catches a new field with a default that changes nothing (later_scales=None) written into the
    # maps' settings: every work_dir made before it would be refused and recomputed.
    from infercam.cam import claim_folder

    faithful = method_settings(IterativeInference(scales=(1.0, 0.5), flip=False))
    assert "later_scales" not in faithful
    claim_folder(tmp_path, faithful)  # as a folder of before: the same description
    fast = method_settings(IterativeInference(scales=(1.0, 0.5), flip=False, later_scales=(0.5,)))
    assert fast["later_scales"] == [0.5]
    with pytest.raises(MapsSettingsError, match="later_scales"):
        claim_folder(tmp_path, fast)
