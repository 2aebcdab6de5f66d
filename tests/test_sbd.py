"""SBD -> SegmentationClassAug / train_aug, the get_sbd script, and saliency-map installation."""
from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers, whatever the import mode
from fake_servers import (FakeFileServer, fake_server, load_script, make_fake_sbd, make_fake_voc,  # noqa: E402,F401
                          md5_of, tar_directory, write_sbd_mat, zip_members)

from infercam.download import DataSetupError  # noqa: E402
from infercam import sbd  # noqa: E402
from infercam.sbd import (TRAIN_AUG_COUNT, TrainAugCountWarning, build_segmentation_class_aug, label_from_sbd_mat,  # noqa: E402
                          load_sbd_label, train_aug_count_problem, train_aug_names)
from infercam.voc import load_label_png  # noqa: E402

# VOC train a,b,c; VOC val d,e; SBD train b,d,f; SBD val e,g (names shaped like VOC's).
VOC_TRAIN = ["2007_000001", "2007_000002", "2007_000003"]
VOC_VAL = ["2007_000004", "2007_000005"]
SBD_TRAIN = ["2007_000002", "2007_000004", "2008_000006"]
SBD_VAL = ["2007_000005", "2008_000007"]
EXPECTED_TRAIN_AUG = ["2007_000001", "2007_000002", "2007_000003", "2008_000006", "2008_000007"]


@pytest.fixture(autouse=True)
def no_source_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [name for name in os.environ if name.startswith("INFERCAM_")]:
        monkeypatch.delenv(variable)


@pytest.fixture
def fake_data(tmp_path: Path) -> dict:
    """A VOC tree in <root>/VOCdevkit and an SBD tree in <root>/SBD, as the scripts lay them out."""
    root = tmp_path / "data"
    voc_labels = make_fake_voc(root, VOC_TRAIN, VOC_VAL)
    sbd_labels = make_fake_sbd(root / "SBD", SBD_TRAIN, SBD_VAL)
    # SBD images are VOC images: give SBD-only names a JPEG in VOC too, as real VOC2012 has.
    for name in set(SBD_TRAIN + SBD_VAL) - set(VOC_TRAIN + VOC_VAL):
        (root / "VOCdevkit/VOC2012/JPEGImages" / f"{name}.jpg").write_bytes(
            (root / "SBD/benchmark_RELEASE/dataset/img" / f"{name}.jpg").read_bytes())
    return {"root": root, "voc": root / "VOCdevkit" / "VOC2012",
            "sbd": root / "SBD" / "benchmark_RELEASE" / "dataset", "voc_labels": voc_labels, "sbd_labels": sbd_labels}


def test_sbd_mat_loads_like_the_real_files_with_either_struct_setting(tmp_path: Path) -> None:
    label = np.arange(12, dtype=np.uint8).reshape(3, 4) % 21
    path = tmp_path / "2008_000002.mat"
    write_sbd_mat(path, label)
    # The way real SBD files are read:
    assert np.array_equal(scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["GTcls"].Segmentation, label)
    for squeeze in (True, False):
        for as_record in (True, False):
            mat = scipy.io.loadmat(path, squeeze_me=squeeze, struct_as_record=as_record)
            loaded = label_from_sbd_mat(mat)
            assert loaded.dtype == np.uint8 and np.array_equal(loaded, label)
    assert np.array_equal(load_sbd_label(path), label)


def test_sbd_mat_with_out_of_range_values_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.mat"
    write_sbd_mat(path, np.full((2, 2), 42, dtype=np.uint8))
    with pytest.raises(DataSetupError, match="outside 0..20"):
        load_sbd_label(path)
    scipy.io.savemat(tmp_path / "other.mat", {"something": np.zeros(2)})
    with pytest.raises(DataSetupError, match="no GTcls"):
        load_sbd_label(tmp_path / "other.mat")


def test_train_aug_set_arithmetic() -> None:
    names = train_aug_names(VOC_TRAIN, VOC_VAL, SBD_TRAIN, SBD_VAL)
    assert names == EXPECTED_TRAIN_AUG
    assert not set(names) & set(VOC_VAL)
    assert set(VOC_TRAIN) <= set(names)
    assert (set(SBD_TRAIN) | set(SBD_VAL)) - set(VOC_VAL) <= set(names)


def test_build_writes_labels_preferring_voc(fake_data: dict) -> None:
    result = build_segmentation_class_aug(fake_data["voc"], fake_data["sbd"], progress=False)
    voc, voc_labels, sbd_labels = fake_data["voc"], fake_data["voc_labels"], fake_data["sbd_labels"]
    assert (voc / "ImageSets/Segmentation/train_aug.txt").read_text().split() == EXPECTED_TRAIN_AUG
    assert result.train_aug_count == 5 and result.warnings == []

    written = sorted(path.stem for path in (voc / "SegmentationClassAug").glob("*.png"))
    assert written == sorted(set(EXPECTED_TRAIN_AUG) | set(VOC_VAL))  # train_aug and val, nothing else
    for name in VOC_TRAIN + VOC_VAL:  # VOC's own label wins, 255 borders included
        label = load_label_png(voc / "SegmentationClassAug" / f"{name}.png")
        assert np.array_equal(label, voc_labels[name]) and (label == 255).any()
    assert not np.array_equal(voc_labels["2007_000002"], sbd_labels["2007_000002"])  # so the check above bites
    for name in ("2008_000006", "2008_000007"):  # SBD-only images come from the .mat
        label = load_label_png(voc / "SegmentationClassAug" / f"{name}.png")
        assert np.array_equal(label, sbd_labels[name]) and label.max() <= 20
    assert (result.written_from_voc, result.written_from_sbd, result.already_present) == (5, 2, 0)


def test_build_resumes_and_cleans_interrupted_writes(fake_data: dict) -> None:
    voc = fake_data["voc"]
    build_segmentation_class_aug(voc, fake_data["sbd"], progress=False)
    (voc / "SegmentationClassAug" / "2008_000006.png").unlink()
    (voc / "SegmentationClassAug" / ".2008_000007.tmp999.png").write_bytes(b"half a png")
    result = build_segmentation_class_aug(voc, fake_data["sbd"], progress=False)
    assert (result.written_from_voc, result.written_from_sbd, result.already_present) == (0, 1, 6)
    assert not list((voc / "SegmentationClassAug").glob(".*"))
    assert np.array_equal(load_label_png(voc / "SegmentationClassAug" / "2008_000006.png"),
                          fake_data["sbd_labels"]["2008_000006"])


def test_train_aug_count_is_checked_only_against_real_lists() -> None:
    assert train_aug_count_problem(5, 3, 2, 3, 2) is None  # fakes: no judgement
    assert train_aug_count_problem(TRAIN_AUG_COUNT, 1464, 1449, 8498, 2857) is None
    message = train_aug_count_problem(9000, 1464, 1449, 7000, 2857)
    assert message is not None
    for number in ("9000", "10582", "7000", "8498"):
        assert number in message


def test_build_warns_when_real_sized_lists_give_the_wrong_count(fake_data: dict,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend the fake VOC lists are the real ones: 5 names then is not the expected 10582.
    monkeypatch.setattr(sbd, "VOC_TRAIN_COUNT", len(VOC_TRAIN))
    monkeypatch.setattr(sbd, "VOC_VAL_COUNT", len(VOC_VAL))
    with pytest.warns(TrainAugCountWarning, match="train_aug has 5 names, expected 10582"):
        result = build_segmentation_class_aug(fake_data["voc"], fake_data["sbd"], progress=False)
    assert any("expected 10582" in warning for warning in result.warnings)
    assert (fake_data["voc"] / "ImageSets/Segmentation/train_aug.txt").exists()  # a warning, not an error


def test_get_sbd_requires_voc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_script("get_sbd").main(["--root", str(tmp_path / "data"), "--skip-train-noval"]) == 1
    assert "python data_scripts/get_voc.py" in capsys.readouterr().err


def test_get_sbd_end_to_end(fake_server: FakeFileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    make_fake_voc(root, VOC_TRAIN, VOC_VAL)
    sbd_source = tmp_path / "sbd_source"
    sbd_labels = make_fake_sbd(sbd_source, SBD_TRAIN, SBD_VAL)
    tgz = tar_directory(sbd_source, "benchmark_RELEASE", tmp_path / "benchmark.tgz", mode="w:gz")
    train_noval = b"2008_000006\n"
    monkeypatch.setenv("INFERCAM_SBD_TRAIN_NOVAL_URL", fake_server.add("/train_noval.txt", train_noval,
                                                                       content_type="text/plain"))
    monkeypatch.setenv("INFERCAM_SBD_TRAIN_NOVAL_MD5", md5_of(train_noval))
    argv = ["--root", str(root), "--url", fake_server.add("/benchmark.tgz", tgz), "--md5", md5_of(tgz)]

    assert load_script("get_sbd").main(argv) == 0
    voc = root / "VOCdevkit" / "VOC2012"
    assert (voc / "ImageSets/Segmentation/train_aug.txt").read_text().split() == EXPECTED_TRAIN_AUG
    assert np.array_equal(load_label_png(voc / "SegmentationClassAug/2008_000007.png"), sbd_labels["2008_000007"])
    assert (root / "SBD" / "train_noval.txt").read_bytes() == train_noval
    assert (root / "SBD/benchmark_RELEASE/dataset/cls/2007_000002.mat").exists()
    output = capsys.readouterr()
    assert "train_aug" in output.out and "get_psa_weights.py" in output.out
    # The fake VOC images for the SBD-only names are missing, and the summary says so.
    assert "2 train_aug images are missing" in output.err


# --- saliency ------------------------------------------------------------------------------------------

def _png_bytes(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_get_saliency_without_a_source_explains_where_maps_come_from(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_script("get_saliency").main(["--root", str(tmp_path / "data")]) != 0
    error = capsys.readouterr().err
    assert "OAA" in error and "--archive" in error and "python data_scripts/get_saliency.py" in error
    assert not (tmp_path / "data" / "VOCdevkit").exists()


def test_get_saliency_from_a_local_zip_finds_maps_in_any_folder(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    rgb = np.stack([grey] * 3, axis=-1)
    archive = zip_members(tmp_path / "Sal.zip", {
        "OAA_saliency/train/2007_000001.png": _png_bytes(grey, "L"),
        "deep/er/folder/2007_000002.png": _png_bytes(rgb, "RGB"),  # converted to one channel
        "OAA_saliency/README.png": _png_bytes(grey, "L"),           # not a VOC name: ignored
        "OAA_saliency/2007_000003.png": b"not a png at all",          # reported, skipped
    })
    root = tmp_path / "data"
    assert load_script("get_saliency").main(["--root", str(root), "--archive", str(archive)]) == 0
    saliency = root / "VOCdevkit" / "VOC2012" / "SaliencyMaps"
    assert sorted(path.name for path in saliency.iterdir()) == ["2007_000001.png", "2007_000002.png"]
    for name in ("2007_000001", "2007_000002"):
        with Image.open(saliency / f"{name}.png") as image:
            assert image.mode == "L" and np.array_equal(np.asarray(image), grey)
    output = capsys.readouterr()
    assert "2 saliency maps" in output.out and "2007_000003.png" in output.err


def test_get_saliency_from_a_tar_served_by_url(fake_server: FakeFileServer, tmp_path: Path) -> None:
    archive = tmp_path / "sal.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = _png_bytes(np.full((6, 8), 200, dtype=np.uint8), "L")
        info = tarfile.TarInfo("maps/2007_000004.png")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    root = tmp_path / "data"
    url = fake_server.add("/sal.tar.gz", archive.read_bytes())
    assert load_script("get_saliency").main(["--root", str(root), "--url", url]) == 0
    with Image.open(root / "VOCdevkit/VOC2012/SaliencyMaps/2007_000004.png") as image:
        assert image.mode == "L" and np.asarray(image).min() == 200
