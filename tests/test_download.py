"""Downloader, extraction and the VOC / psa-weights scripts, against a loopback HTTP server."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import socket
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers, whatever the import mode
from fake_servers import (FakeFileServer, closed_port_url, fake_server, load_script, make_fake_voc,  # noqa: E402,F401
                          md5_of, tar_directory, zip_members)

import infercam.download as download_module  # noqa: E402
from infercam.download import (ChecksumError, DownloadError, check_torch_file, download, extract_archive,  # noqa: E402
                               extraction_complete, google_drive_url, iter_archive_files, verify_file)
from infercam.sources import resolve_source  # noqa: E402

PAYLOAD = bytes(range(256)) * 40  # 10 KiB, every byte value, so offsets matter


@pytest.fixture(autouse=True)
def no_source_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's INFERCAM_* variables must not change what these tests download."""
    for variable in [name for name in os.environ if name.startswith("INFERCAM_")]:
        monkeypatch.delenv(variable)


# --- download ---------------------------------------------------------------------------------------

def test_clean_download_verifies_both_checksums(fake_server: FakeFileServer, tmp_path: Path) -> None:
    url = fake_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "sub" / "data.bin"
    result = download(url, dest, md5=md5_of(PAYLOAD), sha256=hashlib.sha256(PAYLOAD).hexdigest(), progress=False)
    assert result == dest and dest.read_bytes() == PAYLOAD
    assert not dest.with_name("data.bin.part").exists()
    cached = json.loads(dest.with_name("data.bin.verified").read_text())
    assert cached["md5"] == md5_of(PAYLOAD) and cached["size"] == len(PAYLOAD)
    assert "Range" not in fake_server.requests[0].headers


def test_checksum_mismatch_leaves_nothing_at_dest(fake_server: FakeFileServer, tmp_path: Path) -> None:
    wrong = PAYLOAD[::-1]
    url = fake_server.add("/VOCtrainval.tar", wrong)
    dest = tmp_path / "VOCtrainval.tar"
    source = resolve_source("voc2012", url=url, md5=md5_of(PAYLOAD))
    with pytest.raises(ChecksumError) as raised:
        download(url, dest, md5=source.md5, override_hint=source.override_hint(), progress=False)
    message = str(raised.value)
    for expected_text in ("VOCtrainval.tar", md5_of(PAYLOAD), md5_of(wrong), url, "INFERCAM_VOC2012_MD5", "--md5"):
        assert expected_text in message
    assert not dest.exists() and not dest.with_name("VOCtrainval.tar.part").exists()
    assert dest.with_name("VOCtrainval.tar.corrupt").read_bytes() == wrong


def test_cut_connection_resumes_with_range(fake_server: FakeFileServer, tmp_path: Path) -> None:
    url = fake_server.add("/data.bin", PAYLOAD, cut_after=3000)
    dest = tmp_path / "data.bin"
    download(url, dest, md5=md5_of(PAYLOAD), retries=2, backoff_s=0, progress=False)
    assert dest.read_bytes() == PAYLOAD
    first, second = fake_server.requests_for("/data.bin")
    assert "Range" not in first.headers
    assert second.headers["Range"] == "bytes=3000-"


def test_partial_file_from_an_earlier_run_is_resumed(fake_server: FakeFileServer, tmp_path: Path) -> None:
    url = fake_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    dest.with_name("data.bin.part").write_bytes(PAYLOAD[:1234])
    download(url, dest, md5=md5_of(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [request.headers.get("Range") for request in fake_server.requests] == ["bytes=1234-"]


def test_server_ignoring_range_restarts_from_zero(fake_server: FakeFileServer, tmp_path: Path) -> None:
    url = fake_server.add("/data.bin", PAYLOAD, ignore_range=True)
    dest = tmp_path / "data.bin"
    # A stale .part whose bytes are wrong: appending the 200 body to it would fail the checksum.
    dest.with_name("data.bin.part").write_bytes(b"\xff" * 500)
    download(url, dest, md5=md5_of(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [request.headers.get("Range") for request in fake_server.requests] == ["bytes=500-"]  # one answer


def test_complete_part_file_answered_416_is_finished(fake_server: FakeFileServer, tmp_path: Path) -> None:
    url = fake_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    dest.with_name("data.bin.part").write_bytes(PAYLOAD)  # killed after the transfer, before the rename
    download(url, dest, md5=md5_of(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD and len(fake_server.requests) == 1


def test_stale_part_longer_than_the_file_is_discarded(fake_server: FakeFileServer, tmp_path: Path) -> None:
    url = fake_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    dest.with_name("data.bin.part").write_bytes(b"\0" * (len(PAYLOAD) + 100))  # from another version
    download(url, dest, md5=md5_of(PAYLOAD), retries=1, backoff_s=0, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [request.headers.get("Range") for request in fake_server.requests] == [f"bytes={len(PAYLOAD) + 100}-", None]


def test_a_connection_that_always_breaks_gives_up_and_keeps_the_part(fake_server: FakeFileServer,
                                                                     tmp_path: Path) -> None:
    # Ignoring Range and cutting every answer at the same byte: no progress, so the retries run out.
    url = fake_server.add("/data.bin", PAYLOAD, cut_after=100, cuts_left=99, ignore_range=True)
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match=r"kept failing after 2 retries.*next run resumes"):
        download(url, dest, md5=md5_of(PAYLOAD), retries=2, backoff_s=0, progress=False)
    assert len(fake_server.requests) == 3 and not dest.exists()
    assert dest.with_name("data.bin.part").read_bytes() == PAYLOAD[:100]


def test_404_is_a_clear_error_and_not_retried(fake_server: FakeFileServer, tmp_path: Path) -> None:
    url = fake_server.url("/missing.tar")
    with pytest.raises(DownloadError, match=r"HTTP 404.*missing\.tar.*--archive PATH"):
        download(url, tmp_path / "missing.tar", retries=3, backoff_s=0, progress=False)
    assert len(fake_server.requests) == 1
    assert not (tmp_path / "missing.tar").exists()


def test_unreachable_host_names_host_and_offline_remedy(tmp_path: Path) -> None:
    url = closed_port_url("/VOCtrainval.tar")
    with pytest.raises(DownloadError) as raised:
        download(url, tmp_path / "VOCtrainval.tar", retries=1, backoff_s=0, progress=False)
    message = str(raised.value)
    assert message.startswith("could not reach 127.0.0.1:")
    assert f"download {url} by hand and pass --archive PATH" in message
    assert not (tmp_path / "VOCtrainval.tar").exists()


def test_rerun_skips_a_verified_file_and_replaces_a_tampered_one(fake_server: FakeFileServer,
                                                                 tmp_path: Path) -> None:
    url = fake_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    download(url, dest, md5=md5_of(PAYLOAD), progress=False)
    download(url, dest, md5=md5_of(PAYLOAD), progress=False)
    assert len(fake_server.requests) == 1

    dest.write_bytes(b"x" * len(PAYLOAD))  # same size, new mtime: the cache no longer applies
    download(url, dest, md5=md5_of(PAYLOAD), progress=False)
    assert len(fake_server.requests) == 2 and dest.read_bytes() == PAYLOAD
    assert dest.with_name("data.bin.corrupt").read_bytes() == b"x" * len(PAYLOAD)


def test_verify_file_reports_expected_and_actual(tmp_path: Path) -> None:
    path = tmp_path / "archive.tgz"
    path.write_bytes(PAYLOAD)
    verify_file(path, md5=md5_of(PAYLOAD).upper())  # case-insensitive
    with pytest.raises(ChecksumError, match=f"archive.tgz.*expected md5 {'0' * 32}, got {md5_of(PAYLOAD)}"):
        verify_file(path, md5="0" * 32)
    assert path.exists()  # a user's file is reported, never moved


# --- extraction -----------------------------------------------------------------------------------------

def _fake_voc_tar(tmp_path: Path) -> bytes:
    source = tmp_path / "voc_source"
    make_fake_voc(source, train=["2007_000032", "2007_000039"], val=["2007_000033"])
    return tar_directory(source, "VOCdevkit", tmp_path / "VOCtrainval.tar")


def test_tar_member_escaping_the_target_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("good/file.txt", "../evil"):
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"data"))
    target = tmp_path / "target"
    with pytest.raises(DownloadError, match="refusing to extract evil.tar"):
        extract_archive(archive, target, marker_name="evil", progress=False)
    assert not (tmp_path / "evil").exists() and not (target / "evil").exists()
    assert list(target.iterdir()) == []  # no staging left, no marker, nothing moved in


def test_zip_member_escaping_the_target_is_refused(tmp_path: Path) -> None:
    archive = zip_members(tmp_path / "evil.zip", {"ok.txt": b"1", "../../evil.txt": b"2"})
    with pytest.raises(DownloadError, match="unsafe member paths"):
        extract_archive(archive, tmp_path / "target", progress=False)
    assert not (tmp_path / "evil.txt").exists()


def test_interrupted_extraction_is_redone_and_keeps_added_files(tmp_path: Path) -> None:
    archive = tmp_path / "VOCtrainval.tar"
    archive.write_bytes(_fake_voc_tar(tmp_path))
    target = tmp_path / "data"
    voc = target / "VOCdevkit" / "VOC2012"
    # The state a killed run leaves: a staging dir, part of the tree moved in, no completion marker.
    (target / ".voc2012.extracting" / "VOCdevkit").mkdir(parents=True)
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "JPEGImages" / "2007_000032.jpg").write_bytes(b"truncated")
    (voc / "SegmentationClassAug").mkdir()
    (voc / "SegmentationClassAug" / "kept.png").write_bytes(b"made by a later step")
    assert not extraction_complete(target, "voc2012")

    extract_archive(archive, target, marker_name="voc2012", progress=False)

    assert extraction_complete(target, "voc2012")
    assert not (target / ".voc2012.extracting").exists()
    source_jpeg = tmp_path / "voc_source" / "VOCdevkit" / "VOC2012" / "JPEGImages" / "2007_000032.jpg"
    assert (voc / "JPEGImages" / "2007_000032.jpg").read_bytes() == source_jpeg.read_bytes()
    assert (voc / "ImageSets" / "Segmentation" / "val.txt").read_text() == "2007_000033\n"
    assert (voc / "SegmentationClassAug" / "kept.png").read_bytes() == b"made by a later step"

    # Complete now: a second call does not touch the tree; removing the tree invalidates the marker.
    (voc / "Annotations" / "2007_000032.xml").unlink()
    extract_archive(archive, target, marker_name="voc2012", progress=False)
    assert not (voc / "Annotations" / "2007_000032.xml").exists()
    shutil.rmtree(target / "VOCdevkit")
    assert not extraction_complete(target, "voc2012")


# --- scripts --------------------------------------------------------------------------------------------

def test_get_voc_downloads_verifies_and_extracts(fake_server: FakeFileServer, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    tar_bytes = _fake_voc_tar(tmp_path)
    url = fake_server.add("/VOCtrainval_11-May-2012.tar", tar_bytes, content_type="application/x-tar")
    root = tmp_path / "data"
    get_voc = load_script("get_voc")
    argv = ["--root", str(root), "--url", url, "--md5", md5_of(tar_bytes), "--retries", "0"]

    assert get_voc.main(argv) == 0
    voc = root / "VOCdevkit" / "VOC2012"
    assert sorted(p.name for p in (voc / "JPEGImages").iterdir()) == [
        "2007_000032.jpg", "2007_000033.jpg", "2007_000039.jpg"]
    assert (voc / "ImageSets" / "Segmentation" / "train.txt").read_text() == "2007_000032\n2007_000039\n"
    assert (root / "downloads" / "VOCtrainval_11-May-2012.tar").read_bytes() == tar_bytes
    output = capsys.readouterr().out
    assert str(voc) in output and "get_sbd.py" in output

    assert get_voc.main(argv) == 0  # complete: no second request
    assert len(fake_server.requests) == 1


def test_get_voc_uses_environment_overrides_and_reports_mismatch(
        fake_server: FakeFileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    tar_bytes = _fake_voc_tar(tmp_path)
    monkeypatch.setenv("INFERCAM_VOC2012_URL", fake_server.add("/voc.tar", tar_bytes))
    monkeypatch.setenv("INFERCAM_VOC2012_MD5", "0" * 32)
    root = tmp_path / "data"
    get_voc = load_script("get_voc")

    assert get_voc.main(["--root", str(root), "--retries", "0"]) == 1
    error = capsys.readouterr().err
    assert "checksum mismatch" in error and md5_of(tar_bytes) in error and "INFERCAM_VOC2012_MD5" in error
    assert not (root / "downloads" / "VOCtrainval_11-May-2012.tar").exists()
    assert not (root / "VOCdevkit").exists()

    monkeypatch.setenv("INFERCAM_VOC2012_MD5", "none")  # documented way to skip the check
    assert get_voc.main(["--root", str(root), "--retries", "0"]) == 0
    assert (root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000033.png").exists()


def test_get_voc_from_a_local_archive_needs_no_network(tmp_path: Path) -> None:
    archive = tmp_path / "VOCtrainval.tar"
    archive.write_bytes(_fake_voc_tar(tmp_path))
    root = tmp_path / "data"
    argv = ["--root", str(root), "--archive", str(archive), "--url", closed_port_url(), "--md5", "none"]
    assert load_script("get_voc").main(argv) == 0
    assert (root / "VOCdevkit" / "VOC2012" / "Annotations" / "2007_000039.xml").exists()


def test_google_drive_html_answer_is_an_error_and_nothing_is_saved(
        fake_server: FakeFileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = b"<!DOCTYPE html><html><body>Google Drive - Virus scan warning</body></html>"
    html_url = fake_server.add("/html", page, content_type="text/html; charset=utf-8")
    disguised_url = fake_server.add("/disguised", page)  # HTML sent as octet-stream: caught by magic bytes
    root = tmp_path / "data"
    get_weights = load_script("get_psa_weights")
    weights = root / "weights" / "res38_cls.pth"

    assert get_weights.main(["--root", str(root), "--weights", "cls", "--url", html_url, "--retries", "0"]) == 1
    assert "HTML page" in capsys.readouterr().err and not weights.exists()

    assert get_weights.main(["--root", str(root), "--weights", "cls", "--url", disguised_url, "--retries", "0"]) == 1
    assert "HTML page" in capsys.readouterr().err and not weights.exists()
    assert weights.with_name("res38_cls.pth.corrupt").read_bytes() == page


def test_psa_weights_download_and_local_copy(fake_server: FakeFileServer, tmp_path: Path) -> None:
    legacy_torch_bytes = pickle.dumps({"fc8.weight": [0.0] * 10}, protocol=2)  # starts with b"\x80\x02"
    url = fake_server.add("/res38_cls.pth", legacy_torch_bytes)
    root = tmp_path / "data"
    get_weights = load_script("get_psa_weights")
    weights = root / "weights" / "res38_cls.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"<html>saved by some other tool</html>")  # not a torch file: replaced
    assert get_weights.main(["--root", str(root), "--weights", "cls", "--url", url]) == 0
    assert weights.read_bytes() == legacy_torch_bytes
    assert get_weights.main(["--root", str(root), "--weights", "cls", "--url", url]) == 0
    assert len(fake_server.requests) == 1  # the valid file is kept, not fetched again
    imagenet_url = fake_server.add("/resnet101.pth", legacy_torch_bytes)
    assert get_weights.main(["--root", str(root), "--weights", "deeplab", "--url", imagenet_url]) == 0
    assert (root / "weights" / "resnet101-63fe2227.pth").read_bytes() == legacy_torch_bytes

    local = tmp_path / "res38_aff.pth"
    local.write_bytes(b"PK\x03\x04" + b"\0" * 60)  # a zip-format torch.save file starts like this
    assert get_weights.main(["--root", str(root), "--weights", "aff", "--archive", str(local)]) == 0
    assert (root / "weights" / "res38_aff.pth").read_bytes() == local.read_bytes()
    # --url for "all" would be ambiguous
    assert get_weights.main(["--root", str(root), "--url", url]) == 1


def test_torch_file_check_and_drive_url(tmp_path: Path) -> None:
    page = tmp_path / "page.pth"
    page.write_bytes(b"\n  <html><head></head></html>")
    with pytest.raises(DownloadError, match="an HTML page"):
        check_torch_file(page)
    assert google_drive_url("abc") == "https://drive.usercontent.google.com/download?id=abc&export=download&confirm=t"
    assert resolve_source("psa_res38_aff").url == google_drive_url("1mFvTH3siw0SS0vqPH0o9N3cI_ISQacwt")


# --- retries, backoff and misbehaving servers ------------------------------------------------------

@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff waits the downloader asks for, recorded instead of slept (the tests stay fast)."""
    asked: list[float] = []
    monkeypatch.setattr(download_module.time, "sleep", asked.append)
    return asked


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_with_doubling_waits(fake_server: FakeFileServer, tmp_path: Path,
                                                            waits: list[float], status: int) -> None:
    # Catches a retryable status treated as final, or a backoff that does not double.
    url = fake_server.add("/data.bin", PAYLOAD, errors=[(status, {})] * 2)
    download(url, tmp_path / "data.bin", md5=md5_of(PAYLOAD), retries=3, backoff_s=1.5, progress=False)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD
    assert waits == [1.5, 3.0] and len(fake_server.requests) == 3


def test_backoff_is_capped_and_the_retries_run_out(fake_server: FakeFileServer, tmp_path: Path,
                                                   waits: list[float]) -> None:
    # Catches an unbounded backoff (hours of waiting) and retrying forever; and a busy server reported
    # as a moved file (the fix is to wait, not to look for another address).
    url = fake_server.add("/data.bin", PAYLOAD, errors=[(503, {})] * 10)
    with pytest.raises(DownloadError, match=r"HTTP 503.*data\.bin after 4 retries: the server is busy") as raised:
        download(url, tmp_path / "data.bin", retries=4, backoff_s=10, progress=False)
    assert "may have moved" not in str(raised.value)
    assert waits == [10, 20, 30, 30] and len(fake_server.requests) == 5
    assert not (tmp_path / "data.bin").exists()


def test_429_waits_as_long_as_retry_after_asks(fake_server: FakeFileServer, tmp_path: Path,
                                               waits: list[float]) -> None:
    # Catches Retry-After ignored: retrying after the 1 s backoff only earns another 429.
    url = fake_server.add("/data.bin", PAYLOAD, errors=[(429, {"Retry-After": "7"}), (503, {"Retry-After": "99"})])
    download(url, tmp_path / "data.bin", md5=md5_of(PAYLOAD), retries=3, backoff_s=1, progress=False)
    assert waits == [7, 30]  # the server's wait, capped at 30 s like the backoff


def test_a_body_that_stalls_past_the_timeout_is_retried(fake_server: FakeFileServer, tmp_path: Path,
                                                        waits: list[float]) -> None:
    # Catches a download that hangs on a stalled server, or takes a timed-out body as complete.
    url = fake_server.add("/data.bin", PAYLOAD, stall_after=2000, stall_s=2.0)
    download(url, tmp_path / "data.bin", md5=md5_of(PAYLOAD), retries=3, backoff_s=0.5, timeout_s=0.5, progress=False)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD
    # (a loaded machine may time out a later request too: only the first retry is certain)
    assert len(fake_server.requests) >= 2 and waits[0] == 0.5


def test_a_206_at_the_wrong_offset_restarts_from_zero(fake_server: FakeFileServer, tmp_path: Path,
                                                      waits: list[float]) -> None:
    # Catches appending a body that starts elsewhere than the bytes on disk end (a corrupt file).
    url = fake_server.add("/data.bin", PAYLOAD, range_shift=100)
    dest = tmp_path / "data.bin"
    dest.with_name("data.bin.part").write_bytes(PAYLOAD[:1000])
    download(url, dest, md5=md5_of(PAYLOAD), retries=2, backoff_s=0, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [request.headers.get("Range") for request in fake_server.requests] == ["bytes=1000-", None]


def test_a_host_that_does_not_resolve_fails_at_once(tmp_path: Path, waits: list[float],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Catches waiting through every retry when offline (minutes of backoff for nothing).
    def no_such_host(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    url = "http://data.example.invalid/VOCtrainval.tar"
    with pytest.raises(DownloadError, match=r"could not reach data\.example\.invalid.*by hand and pass --archive"):
        download(url, tmp_path / "VOCtrainval.tar", retries=5, backoff_s=1, progress=False)
    assert waits == [] and not list(tmp_path.iterdir())


def test_sha256_mismatch_names_both_digests_and_quarantines(fake_server: FakeFileServer, tmp_path: Path) -> None:
    # Catches a sha256 that is computed but not compared (only md5 checked).
    url = fake_server.add("/weights.pth", PAYLOAD)
    dest = tmp_path / "weights.pth"
    wrong = hashlib.sha256(b"another file").hexdigest()
    with pytest.raises(ChecksumError, match=f"expected sha256 {wrong}, got {hashlib.sha256(PAYLOAD).hexdigest()}"):
        download(url, dest, sha256=wrong, progress=False)
    assert not dest.exists() and dest.with_name("weights.pth.corrupt").read_bytes() == PAYLOAD


def test_force_extracts_again_over_a_complete_extraction(tmp_path: Path) -> None:
    # Catches force=True ignored (a damaged tree never repaired) and a repeat run without it that
    # re-extracts anyway.
    archive = zip_members(tmp_path / "files.zip", {"top/a.txt": b"original"})
    target = tmp_path / "target"
    extract_archive(archive, target, progress=False)
    (target / "top" / "a.txt").write_bytes(b"edited")
    extract_archive(archive, target, progress=False)
    assert (target / "top" / "a.txt").read_bytes() == b"edited"  # complete: left alone
    extract_archive(archive, target, force=True, progress=False)
    assert (target / "top" / "a.txt").read_bytes() == b"original"


def test_a_file_that_is_not_an_archive_is_named_and_leaves_nothing(tmp_path: Path) -> None:
    # Catches an HTML page or a truncated download extracted as nothing and marked complete.
    page = tmp_path / "VOCtrainval.tar"
    page.write_bytes(b"<html><body>quota exceeded</body></html>")
    target = tmp_path / "target"
    with pytest.raises(DownloadError, match=r"(?s)VOCtrainval\.tar is not a readable zip or tar archive.*download again"):
        extract_archive(page, target, marker_name="voc2012", progress=False)
    assert not extraction_complete(target, "voc2012") and list(target.iterdir()) == []
    with pytest.raises(DownloadError, match="is not a readable zip or tar archive"):
        list(iter_archive_files(page))


@pytest.mark.parametrize("member", ["/etc/evil.txt", "\\evil.txt", "C:/evil.txt", "C:evil.txt", "c:\\Windows\\evil.txt"])
def test_zip_members_with_absolute_paths_or_drive_letters_are_refused(tmp_path: Path, member: str) -> None:
    # Catches a zip member written outside the target (absolute, or on another drive on Windows).
    archive = zip_members(tmp_path / "evil.zip", {"ok.txt": b"1", member: b"2"})
    with pytest.raises(DownloadError, match="unsafe member paths"):
        extract_archive(archive, tmp_path / "target", progress=False)
    assert list((tmp_path / "target").iterdir()) == []
