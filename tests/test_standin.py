"""The stand-in workload the local cluster's images run (toolchain/standin): its Go tests, and the built binary
answering as a service to its own fetch client."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .scenario_data import REPO

STANDIN = REPO / "toolchain" / "standin"
GO = shutil.which("go")

pytestmark = pytest.mark.skipif(GO is None, reason="needs the Go toolchain (`go`)")


def _go(*args: str, cwd: Path = STANDIN, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert GO is not None
    return subprocess.run([GO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"standin serve exited {process.returncode}: {process.communicate()[1]}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"standin serve did not listen on port {port} within {timeout} s")


def test_go_tests_pass() -> None:
    result = _go("test", "./...")
    assert result.returncode == 0, result.stdout + result.stderr


def test_built_binary_serves_and_fetches_its_identity(tmp_path: Path) -> None:
    binary = tmp_path / "standin"
    build = _go("build", "-trimpath", "-ldflags", "-s -w", "-o", str(binary), ".",
                env={**os.environ, "CGO_ENABLED": "0"})  # fmt: skip
    assert build.returncode == 0, build.stderr

    port = _free_port()
    env = {**os.environ, "STANDIN_SERVICE": "reviews", "STANDIN_VERSION": "v9", "STANDIN_STARS": "red",
           "STANDIN_PORT": str(port)}  # fmt: skip
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_port(port, server)
        fetched = subprocess.run(
            [binary, "fetch", "--url", f"http://127.0.0.1:{port}/reviews/0", "--header", "Cookie: a=b; user=jason"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert fetched.returncode == 0, fetched.stderr
        report = json.loads(fetched.stdout)
        assert report["status"] == 200, report
        assert report["error"] == ""
        assert report["headers"]["content-type"] == "application/json; charset=utf-8"
        body = report["body"]
        assert body["standin"] is True
        assert (body["service"], body["version"], body["pod"]) == ("reviews", "v9", socket.gethostname())
        assert (body["path"], body["status"], body["user"], body["stars"]) == ("/reviews/0", 200, "jason", "red")
        assert body["calls"] == []

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate()
