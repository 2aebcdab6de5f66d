"""Test helpers for the data scripts: a loopback HTTP file server and tiny fake VOC / SBD trees.

The server (127.0.0.1, port 0, one thread) serves in-memory files with HTTP Range support and can
misbehave on purpose: cut the connection after N bytes, ignore Range, answer 404 or send HTML,
answer error statuses first (5xx, 408, 429 with Retry-After), stall in the middle of a body, or
answer a Range request with a 206 that starts at another byte. It records every request so tests
can assert what the downloader asked for.
"""
from __future__ import annotations

import hashlib
import http.server
import importlib.util
import re
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import scipy.io
from PIL import Image

from infercam.voc import save_label_png

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_script(name: str) -> ModuleType:
    """Import ``data_scripts/<name>.py`` as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"data_scripts_{name}", REPO_ROOT / "data_scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------------------------------
# Loopback server
# --------------------------------------------------------------------------------------------------

@dataclass
class FakeFile:
    data: bytes
    content_type: str = "application/octet-stream"
    cut_after: int | None = None  # send only this many body bytes, then drop the connection ...
    cuts_left: int = 1            # ... on this many requests
    ignore_range: bool = False
    errors: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (status, headers) answered first, one a request
    stall_after: int | None = None  # send this many body bytes, then wait stall_s before the rest ...
    stall_s: float = 0.0
    stalls_left: int = 1            # ... on this many requests
    range_shift: int = 0            # a Range request's 206 starts this many bytes after the byte asked for


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]


@dataclass
class FakeFileServer:
    files: dict[str, FakeFile] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)

    def add(self, path: str, data: bytes, **options) -> str:
        """Serve ``data`` at ``path``; return its URL."""
        self.files[path] = FakeFile(data, **options)
        return self.url(path)

    def url(self, path: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def requests_for(self, path: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == path]

    def __enter__(self) -> FakeFileServer:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                owner.requests.append(RecordedRequest(self.path, dict(self.headers.items())))
                served = owner.files.get(self.path)
                if served is None:
                    self.send_error(404, "Not Found")
                    return
                if served.errors:
                    status, headers = served.errors.pop(0)
                    self.send_response(status)
                    for name, value in {**headers, "Content-Length": "0"}.items():
                        self.send_header(name, value)
                    self.end_headers()
                    return
                data, start = served.data, 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if match and not served.ignore_range:
                    start = min(int(match.group(1)) + served.range_shift, len(data))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Type", served.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if served.cut_after is not None and served.cuts_left > 0:
                    served.cuts_left -= 1
                    self.wfile.write(body[:served.cut_after])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if served.stall_after is not None and served.stalls_left > 0:
                    served.stalls_left -= 1
                    self.wfile.write(body[:served.stall_after])
                    self.wfile.flush()
                    threading.Event().wait(served.stall_s)  # not time.sleep, which tests may patch
                    body = body[served.stall_after:]
                try:
                    self.wfile.write(body)
                except OSError:  # the client gave up waiting (a stall longer than its timeout)
                    self.close_connection = True

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def fake_server() -> Iterator[FakeFileServer]:
    with FakeFileServer() as server:
        yield server


def closed_port_url(path: str = "/file") -> str:
    """A loopback URL on which nothing listens (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


# --------------------------------------------------------------------------------------------------
# Fake datasets
# --------------------------------------------------------------------------------------------------

IMAGE_SHAPE = (6, 8)  # (H, W): tiny, the tests only check plumbing


def fake_label(seed: int, with_void_border: bool) -> np.ndarray:
    """A (H, W) label with one object of class 1 + seed % 20 and, like VOC, optional 255 borders."""
    label = np.zeros(IMAGE_SHAPE, dtype=np.uint8)
    label[1:5, 2:6] = 1 + seed % 20
    if with_void_border:
        label[1, 2:6] = 255
    return label


def write_fake_jpeg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (*IMAGE_SHAPE, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def make_fake_voc(root: Path, train: list[str], val: list[str]) -> dict[str, np.ndarray]:
    """Write ``root/VOCdevkit/VOC2012`` with images, labels and lists; return the labels by name."""
    voc = root / "VOCdevkit" / "VOC2012"
    for folder in ("SegmentationClass", "SegmentationObject", "Annotations", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True, exist_ok=True)
    labels = {}
    for seed, name in enumerate(train + val):
        write_fake_jpeg(voc / "JPEGImages" / f"{name}.jpg", seed)
        labels[name] = fake_label(seed, with_void_border=True)
        save_label_png(labels[name], voc / "SegmentationClass" / f"{name}.png")
        save_label_png((labels[name] > 0).astype(np.uint8), voc / "SegmentationObject" / f"{name}.png")
        (voc / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><object><name>cat</name></object></annotation>")
    lists = voc / "ImageSets" / "Segmentation"
    (lists / "train.txt").write_text("".join(f"{name}\n" for name in train))
    (lists / "val.txt").write_text("".join(f"{name}\n" for name in val))
    (lists / "trainval.txt").write_text("".join(f"{name}\n" for name in train + val))
    return labels


def write_sbd_mat(path: Path, segmentation: np.ndarray) -> None:
    """An SBD-format cls file: struct GTcls with Segmentation (and CategoriesPresent, as SBD has)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    present = np.unique(segmentation[segmentation > 0]).astype(np.uint8)
    scipy.io.savemat(path, {"GTcls": {"Segmentation": segmentation, "CategoriesPresent": present}})


def make_fake_sbd(root: Path, train: list[str], val: list[str], seed_offset: int = 100) -> dict[str, np.ndarray]:
    """Write ``root/benchmark_RELEASE/dataset`` (cls/*.mat, img/*.jpg, lists); return labels by name.

    Labels use other seeds than :func:`make_fake_voc` and have no 255, so a test can tell which
    dataset a written label came from.
    """
    dataset = root / "benchmark_RELEASE" / "dataset"
    labels = {}
    for seed, name in enumerate(train + val, start=seed_offset):
        labels[name] = fake_label(seed, with_void_border=False)
        write_sbd_mat(dataset / "cls" / f"{name}.mat", labels[name])
        write_fake_jpeg(dataset / "img" / f"{name}.jpg", seed)
    (dataset / "train.txt").write_text("".join(f"{name}\n" for name in train))
    (dataset / "val.txt").write_text("".join(f"{name}\n" for name in val))
    return labels


def tar_directory(source_root: Path, top_level: str, tar_path: Path, mode: str = "w") -> bytes:
    """Tar ``source_root/top_level`` (stored under ``top_level/``); return the archive's bytes."""
    with tarfile.open(tar_path, mode) as tar:
        tar.add(source_root / top_level, arcname=top_level)
    return tar_path.read_bytes()


def zip_members(zip_path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(zip_path, "w") as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    return zip_path
