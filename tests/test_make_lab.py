"""`make lab` starts JupyterLab from .venv on the chapters (or on NOTEBOOKS, e.g. the student copies).

Catches: a target that never starts a server, e.g. Jupyter's refusal to run as root (containers and CI
machines often are) ending `make lab` at once with "Running as root is not recommended".
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from infercam.config import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_make_lab_serves_the_notebooks_folder(tmp_path):
    port = free_port()
    command = ["make", "--no-print-directory", "lab", f"NOTEBOOKS={tmp_path}"]
    env = {**os.environ, "JUPYTER_PORT": str(port), "BROWSER": "true", "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    said = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line and server.poll() is not None:
                break
            said.append(line)
            if f"http://127.0.0.1:{port}/lab" in line:
                break
        text = "".join(said)
        assert f"http://127.0.0.1:{port}/lab" in text, f"make lab did not serve:\n{text[-3000:]}"
        assert f"--notebook-dir={tmp_path}" in text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
