"""Resumable, checksum-verified, atomic downloads and safe archive extraction (standard library only).

Guarantees, so that an interrupted or corrupted transfer is never mistaken for a complete one:

* A download is written to ``<dest>.part``. A later run resumes it with an HTTP ``Range`` request; a
  server that ignores ``Range`` (answers 200 instead of 206) restarts the transfer from zero.
* The file is renamed to ``dest`` (``os.replace``) only once it has the announced length and passes
  its md5 / sha256 (and the optional content check, e.g. "is this really a torch file"). A file that
  fails is moved to ``<dest>.corrupt``, so nothing is ever left at ``dest`` unverified.
* An existing ``dest`` is re-verified without re-hashing when the sidecar ``<dest>.verified``
  (JSON: size, mtime_ns and the checksums computed when it was last hashed) still matches the file's
  size and mtime; otherwise it is hashed again. Touching or rewriting the file invalidates the cache.
* Archives are extracted into a hidden staging directory next to the target, moved into place, and a
  completion marker is written last; a leftover staging directory or a missing marker means the
  extraction was interrupted and is redone. Tar members are filtered with ``filter="data"`` (no
  absolute paths, ``..``, links out of the tree or device files); zip member names are checked.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import socket
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from tqdm import tqdm

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
DEFAULT_RETRIES = 5
DEFAULT_BACKOFF_S = 2.0
MAX_BACKOFF_S = 30.0
DEFAULT_TIMEOUT_S = 60.0
USER_AGENT = "infercam-data-scripts/1.0 (urllib)"
DEFAULT_OVERRIDE_HINT = "pass the expected md5=/sha256= (None skips the check)"
DEFAULT_URL_HINT = "give a new address with --url"
# Transient server-side statuses worth retrying; every other HTTP error is final.
RETRYABLE_HTTP_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class DataSetupError(RuntimeError):
    """A data-preparation step failed; the message says what to do about it (CLIs print it, exit 1)."""


class DownloadError(DataSetupError):
    """A download, verification or extraction failed."""


class ChecksumError(DownloadError):
    """A file's md5/sha256 differs from the expected value."""


class _IncompleteTransfer(ConnectionError):
    """The connection ended before the announced number of bytes arrived (retried, resumes)."""


# --------------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------------

def compute_checksums(path: str | Path, algorithms: tuple[str, ...] = ("md5", "sha256"),
                      progress: bool | None = None) -> dict[str, str]:
    """Hex digests of ``path`` for each algorithm, computed in one pass over the file."""
    path = Path(path)
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as stream, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                          unit_divisor=1024, desc=f"checking {path.name}",
                                          disable=_tqdm_disable(progress), leave=False) as bar:
        while chunk := stream.read(CHUNK_BYTES):
            for hasher in hashers.values():
                hasher.update(chunk)
            bar.update(len(chunk))
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def _expected_checksums(md5: str | None, sha256: str | None) -> dict[str, str]:
    return {name: value.strip().lower() for name, value in (("md5", md5), ("sha256", sha256)) if value}


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _read_sidecar(path: Path) -> dict[str, str]:
    """Checksums cached for ``path`` if the sidecar still describes the same size and mtime."""
    try:
        cached = json.loads(_sidecar_path(path).read_text())
        stat = path.stat()
        if cached.get("size") == stat.st_size and cached.get("mtime_ns") == stat.st_mtime_ns:
            return {key: cached[key] for key in ("md5", "sha256") if key in cached}
    except (OSError, ValueError, AttributeError):
        pass
    return {}


def _write_sidecar(path: Path, checksums: dict[str, str]) -> None:
    stat = path.stat()
    record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, **checksums}
    try:
        write_text_atomic(_sidecar_path(path), json.dumps(record, indent=1) + "\n")
    except OSError:  # a read-only location (e.g. a user's archive) just loses the cache
        pass


def checksum_mismatches(path: str | Path, md5: str | None = None, sha256: str | None = None,
                        progress: bool | None = None) -> dict[str, tuple[str, str]]:
    """``{algorithm: (expected, actual)}`` for every given checksum ``path`` fails; empty if it passes.

    Uses the ``<path>.verified`` cache when it still matches the file's size and mtime.
    """
    path = Path(path)
    expected = _expected_checksums(md5, sha256)
    if not expected:
        return {}
    actual = _read_sidecar(path)
    if not all(name in actual for name in expected):
        actual = compute_checksums(path, tuple(expected), progress=progress)
    mismatches = {name: (value, actual[name]) for name, value in expected.items() if actual[name] != value}
    if not mismatches:
        _write_sidecar(path, actual)
    return mismatches


def _mismatch_message(path: Path, mismatches: dict[str, tuple[str, str]], source: str,
                      override_hint: str, moved_to: Path | None = None) -> str:
    details = "; ".join(f"expected {name} {expected}, got {actual}"
                        for name, (expected, actual) in mismatches.items())
    message = f"checksum mismatch for {path.name} ({source}): {details}."
    if moved_to is not None:
        message += f" The bad file was moved to {moved_to}."
    return message + f" If the file is known to be good, {override_hint}."


def verify_file(path: str | Path, md5: str | None = None, sha256: str | None = None, *,
                source: str | None = None, override_hint: str = DEFAULT_OVERRIDE_HINT,
                progress: bool | None = None) -> Path:
    """Raise :class:`ChecksumError` unless ``path`` matches the given checksums; the file is not moved."""
    path = Path(path)
    if not path.is_file():
        raise DownloadError(f"{path} does not exist or is not a file")
    mismatches = checksum_mismatches(path, md5, sha256, progress=progress)
    if mismatches:
        raise ChecksumError(_mismatch_message(path, mismatches, source or str(path), override_hint))
    return path


# --------------------------------------------------------------------------------------------------
# Content checks
# --------------------------------------------------------------------------------------------------

def looks_like_html(head: bytes) -> bool:
    """True if the first bytes of a file are an HTML page (a login, quota or virus-scan page)."""
    start = head.lstrip()[:64].lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def check_torch_file(path: str | Path) -> None:
    """Raise :class:`DownloadError` unless ``path`` starts like a ``torch.save`` file.

    ``torch.save`` writes a zip archive (``PK``) since PyTorch 1.6 and a raw pickle (protocol 2+,
    first byte 0x80) before; psa's weights are the legacy kind. Used where no checksum is published.
    """
    with open(path, "rb") as stream:
        head = stream.read(512)
    if head.startswith(b"PK") or head.startswith(b"\x80"):
        return
    kind = "an HTML page" if looks_like_html(head) else f"not a torch file (starts with {head[:16]!r})"
    raise DownloadError(f"{Path(path).name} is {kind}: expected a zip (b'PK') or pickle (b'\\x80') "
                        f"written by torch.save")


# --------------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------------

def google_drive_url(file_id: str) -> str:
    """Direct-download address of a public Google Drive file, past the large-file confirm page."""
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


def _tqdm_disable(progress: bool | None) -> bool | None:
    # None lets tqdm decide (hidden when stderr is not a terminal, e.g. in CI logs).
    return None if progress is None else not progress


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that ``path`` is never seen half-written (temp file + os.replace)."""
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) from ``bytes 100-199/200`` or ``bytes */200``; None where unknown."""
    match = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _transfer(url: str, part: Path, *, timeout: float, reject_html: bool, progress: bool | None,
              label: str) -> None:
    """One HTTP request appending to ``part`` (resuming from its size); returns when it is complete.

    Raises :class:`_IncompleteTransfer` when the body ends short, ``HTTPError``/``URLError``/``OSError``
    for network trouble (the caller decides what is retried) and :class:`DownloadError` for answers
    that retrying cannot fix.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not offset:
            raise
        # 416: nothing left after `offset`. Complete if the server confirms the size, else start over.
        _, total = _parse_content_range(error.headers.get("Content-Range"))
        error.close()
        if total == offset:
            return
        log.warning("server refused to resume %s at byte %d; restarting from zero", label, offset)
        part.unlink()
        raise _IncompleteTransfer("range not satisfiable; restarting") from None
    with response:
        content_type = response.headers.get("Content-Type", "")
        if reject_html and content_type.lower().startswith("text/html"):
            raise DownloadError(
                f"{url} answered with an HTML page (Content-Type {content_type}) instead of the file: "
                f"the link may need a login or a confirmation, be over its download quota, or be wrong; "
                f"download it by hand in a browser and pass --archive PATH")
        length = response.headers.get("Content-Length")
        if response.status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _IncompleteTransfer(f"server resumed at byte {start}, not {offset}; restarting")
            mode = "ab"
        else:
            if offset:
                log.info("server ignored the Range request for %s; restarting from zero", label)
            offset, mode = 0, "wb"
            total = int(length) if length is not None else None
        with open(part, mode) as stream, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                              unit_divisor=1024, desc=label,
                                              disable=_tqdm_disable(progress)) as bar:
            received = offset
            while chunk := response.read(CHUNK_BYTES):
                stream.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received > total:  # never keep more than the file's size
        part.unlink()
        raise _IncompleteTransfer(f"received {received} bytes of a {total}-byte file; restarting")
    if total is not None and received < total:
        raise _IncompleteTransfer(f"connection closed after {received} of {total} bytes")


def _retry_after_s(error: BaseException) -> float:
    """The seconds a 429/503 answer's ``Retry-After`` asks for (0 without one, or for an HTTP date):
    retrying sooner only earns another refusal and spends a retry."""
    value = (getattr(error, "headers", None) or {}).get("Retry-After", "").strip()
    return float(value) if value.isdigit() else 0.0


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        return str(error.reason)
    return str(error) or type(error).__name__


def _quarantine(rejected: Path, dest: Path) -> Path:
    """Move a file that failed verification out of the way, to ``<dest>.corrupt``, for inspection."""
    corrupt = dest.with_name(dest.name + ".corrupt")
    os.replace(rejected, corrupt)
    return corrupt


def _existing_file_problem(path: Path, md5: str | None, sha256: str | None,
                           validate: Callable[[Path], None] | None, override_hint: str,
                           progress: bool | None) -> str | None:
    """Why an existing ``path`` is not acceptable as the download, or None if it is."""
    mismatches = checksum_mismatches(path, md5, sha256, progress=progress)
    if mismatches:
        return _mismatch_message(path, mismatches, str(path), override_hint)
    if validate is not None:
        try:
            validate(path)
        except DownloadError as error:
            return str(error)
    return None


def download(url: str, dest: str | Path, *, md5: str | None = None, sha256: str | None = None,
             validate: Callable[[Path], None] | None = None, reject_html: bool = True,
             override_hint: str = DEFAULT_OVERRIDE_HINT, url_hint: str = DEFAULT_URL_HINT,
             retries: int = DEFAULT_RETRIES,
             backoff_s: float = DEFAULT_BACKOFF_S, timeout_s: float = DEFAULT_TIMEOUT_S,
             progress: bool | None = None) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified, atomic) and return ``dest``.

    If ``dest`` already exists and verifies, nothing is requested. ``validate(path)`` is an extra
    content check (raise :class:`DownloadError` to reject), used where no checksum exists.
    ``reject_html`` fails fast when the server answers with a ``text/html`` page. ``override_hint``
    and ``url_hint`` end the error messages, saying how to override the checksum or the address.
    Connection errors, cut transfers and 408/429/5xx answers are retried ``retries`` times with
    exponential backoff (``backoff_s``, doubled each time, or longer if the answer's Retry-After
    asks for it, at most 30 s), resuming from the bytes
    already on disk; the retry budget is refilled whenever an attempt gets further than any before
    it. A host name that does not resolve fails at once (most likely offline).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    host = urllib.parse.urlsplit(url).hostname or url

    if dest.exists():
        problem = _existing_file_problem(dest, md5, sha256, validate, override_hint, progress)
        if problem is None:
            log.info("%s already present and verified; not downloading", dest)
            return dest
        moved = _quarantine(dest, dest)
        log.warning("%s is not the expected file (%s); moved it to %s and downloading it again",
                    dest, problem, moved)

    failures, furthest = 0, part.stat().st_size if part.exists() else 0
    while True:
        try:
            _transfer(url, part, timeout=timeout_s, reject_html=reject_html, progress=progress,
                      label=dest.name)
            break
        except urllib.error.HTTPError as error:
            error.close()
            if error.code not in RETRYABLE_HTTP_STATUSES:
                raise DownloadError(
                    f"HTTP {error.code} {error.reason} for {url}; the file may have moved: {url_hint}, "
                    f"or download it by hand and pass --archive PATH") from error
            if failures >= retries:  # a busy or failing server, not a wrong address
                raise DownloadError(
                    f"HTTP {error.code} {error.reason} for {url} after {retries} retries: the server is busy or "
                    f"down; try again later, or download it by hand and pass --archive PATH") from error
            last_error: BaseException = error
        except DownloadError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            last_error = error
            if isinstance(getattr(error, "reason", None), socket.gaierror):
                failures = retries  # the host name does not resolve (offline?): waiting rarely helps
        size_now = part.stat().st_size if part.exists() else 0
        if size_now > furthest:
            furthest, failures = size_now, 0  # progress was made: the cut was transient
        if failures >= retries:
            if size_now == 0 and not isinstance(last_error, (_IncompleteTransfer, http.client.HTTPException)):
                raise DownloadError(
                    f"could not reach {host}: {_reason(last_error)}; if you are offline, download {url} "
                    f"by hand and pass --archive PATH") from last_error
            raise DownloadError(
                f"downloading {url} kept failing after {retries} retries ({_reason(last_error)}); "
                f"{size_now} bytes are kept in {part} and the next run resumes from there") from last_error
        delay = min(max(backoff_s * (2 ** failures), _retry_after_s(last_error)), MAX_BACKOFF_S)
        failures += 1
        log.warning("downloading %s failed (%s); retry %d/%d in %.0f s", dest.name,
                    _reason(last_error), failures, retries, delay)
        time.sleep(delay)

    mismatches = checksum_mismatches(part, md5, sha256, progress=progress)
    if mismatches:
        moved = _quarantine(part, dest)
        raise ChecksumError(_mismatch_message(dest, mismatches, url, override_hint, moved))
    if validate is not None:
        try:
            validate(part)
        except DownloadError as error:
            moved = _quarantine(part, dest)
            raise DownloadError(f"{error} (downloaded from {url}; moved to {moved}). Download it by hand "
                                f"in a browser and pass --archive PATH") from None
    os.replace(part, dest)
    sidecar = _sidecar_path(part)
    if sidecar.exists():  # the cache was computed on the .part; re-key it to the final name
        os.replace(sidecar, _sidecar_path(dest))
    log.info("saved %s", dest)
    return dest


# --------------------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------------------

def _marker_path(target_dir: Path, marker_name: str) -> Path:
    return target_dir / f".{marker_name}.extracted"


def extraction_complete(target_dir: str | Path, marker_name: str) -> bool:
    """True if an extraction recorded under ``marker_name`` finished and its top-level entries exist."""
    target_dir = Path(target_dir)
    try:
        record = json.loads(_marker_path(target_dir, marker_name).read_text())
        return all((target_dir / name).exists() for name in record["top_level"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _unsafe_zip_name(name: str) -> bool:
    parts = re.split(r"[\\/]+", name)
    return name.startswith(("/", "\\")) or ".." in parts or (bool(parts) and ":" in parts[0])


def _extract_into(archive: Path, staging: Path, progress: bool | None) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            names = zipped.namelist()
            unsafe = [name for name in names if _unsafe_zip_name(name)]
            if unsafe:
                raise DownloadError(f"refusing to extract {archive.name}: unsafe member paths {unsafe[:5]}")
            for name in tqdm(names, unit="file", desc=f"extracting {archive.name}",
                             disable=_tqdm_disable(progress)):
                zipped.extract(name, staging)
        return
    if not hasattr(tarfile, "data_filter"):
        raise DownloadError("safe tar extraction needs Python >= 3.11.4 (tarfile filter='data')")
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tqdm(tar, unit="file", desc=f"extracting {archive.name}",
                           disable=_tqdm_disable(progress))
            tar.extractall(staging, members=members, filter="data")
    except tarfile.FilterError as error:
        raise DownloadError(f"refusing to extract {archive.name}: unsafe member ({error})") from error
    except tarfile.ReadError as error:
        raise DownloadError(f"{archive} is not a readable zip or tar archive ({error}); "
                            f"delete it and download again") from error


def _merge_move(source: Path, destination: Path) -> None:
    """Move ``source`` onto ``destination``, merging directories so files already there survive."""
    if not os.path.lexists(destination):
        os.replace(source, destination)
        return
    if source.is_dir() and destination.is_dir() and not destination.is_symlink():
        for child in source.iterdir():
            _merge_move(child, destination / child.name)
        source.rmdir()
        return
    if destination.is_dir() and not destination.is_symlink():
        shutil.rmtree(destination)
    elif source.is_dir():
        destination.unlink()
    os.replace(source, destination)


def extract_archive(archive: str | Path, target_dir: str | Path, *, marker_name: str | None = None,
                    force: bool = False, progress: bool | None = None) -> Path:
    """Safely extract a .tar/.tgz/.tar.gz/.zip archive into ``target_dir``; return ``target_dir``.

    Skipped when the completion marker ``<target_dir>/.<marker_name>.extracted`` exists and the
    top-level entries it lists are still there (``force`` redoes it). Members are extracted into
    ``<target_dir>/.<marker_name>.extracting`` and then moved into place, merging into existing
    directories (so files added later, e.g. SegmentationClassAug inside VOCdevkit, are kept).
    """
    archive, target_dir = Path(archive), Path(target_dir)
    marker_name = marker_name or archive.name
    target_dir.mkdir(parents=True, exist_ok=True)
    marker = _marker_path(target_dir, marker_name)
    if not force and extraction_complete(target_dir, marker_name):
        log.info("%s already extracted into %s; skipping", archive.name, target_dir)
        return target_dir
    marker.unlink(missing_ok=True)
    staging = target_dir / f".{marker_name}.extracting"
    if staging.exists():
        log.warning("removing %s left by an interrupted extraction", staging)
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        _extract_into(archive, staging, progress)
        top_level = sorted(entry.name for entry in staging.iterdir())
        for name in top_level:
            _merge_move(staging / name, target_dir / name)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging)
    record = {"archive": archive.name, "size": archive.stat().st_size, "top_level": top_level}
    write_text_atomic(marker, json.dumps(record, indent=1) + "\n")
    return target_dir


def iter_archive_files(archive: str | Path) -> Iterator[tuple[str, IO[bytes]]]:
    """Yield ``(member name, readable stream)`` for every regular file in a zip or tar archive.

    Nothing is written to disk, so member paths cannot escape anywhere; callers pick files by name.
    """
    archive = Path(archive)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                if not info.is_dir():
                    with zipped.open(info) as stream:
                        yield info.filename, stream
        return
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if member.isfile():
                    stream = tar.extractfile(member)
                    if stream is not None:
                        with stream:
                            yield member.name, stream
    except tarfile.ReadError as error:
        raise DownloadError(f"{archive} is not a readable zip or tar archive ({error})") from error


def copy_atomic(source: str | Path, dest: str | Path) -> Path:
    """Copy a file so that ``dest`` either does not exist or is complete (temp file + os.replace)."""
    source, dest = Path(source), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    temporary = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.copyfile(source, temporary)
    os.replace(temporary, dest)
    return dest


__all__ = [
    "ChecksumError", "DataSetupError", "DownloadError", "check_torch_file", "checksum_mismatches",
    "compute_checksums", "copy_atomic", "download", "extract_archive", "extraction_complete",
    "google_drive_url", "iter_archive_files", "looks_like_html", "verify_file", "write_text_atomic",
]
