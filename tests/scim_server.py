"""Run the real ``scim2-server`` (PyPI, a dev dependency) on a free loopback port, for end-to-end tests.

``running_scim_server`` starts it as a subprocess with ``--bearer-token``, waits for the
line it prints once its socket listens, and stops it on exit. Its access log (one line
per request, from wsgiref on stderr) goes to a file, so tests can see which pages were
asked for.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import requests

SCIM_JSON = "application/scim+json"
_READY = re.compile(r"Serving SCIM on ")
_STARTUP_SECONDS = 20.0
_PORT_ATTEMPTS = 3


@dataclass
class ScimServer:
    """A running scim2-server: its SCIM base URL, the token it accepts, and its access log."""

    url: str
    token: str
    log_path: Path
    process: subprocess.Popen[str]
    _sentinels: int = 0

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a resource; return what the server answered."""
        return self._send("POST", path, body, 201)

    def put(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Replace a resource; return what the server answered."""
        return self._send("PUT", path, body, 200)

    def _send(self, method: str, path: str, body: Mapping[str, Any], expected: int) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": SCIM_JSON, "Accept": SCIM_JSON}
        response = requests.request(
            method, self.url + path, data=json.dumps(body).encode(), headers=headers, timeout=10
        )
        if response.status_code != expected:
            raise AssertionError(f"{method} {path}: HTTP {response.status_code}: {response.text[:300]}")
        answer: dict[str, Any] = response.json()
        return answer

    def requested(self, method: str = "GET") -> list[str]:
        """Return the path and query of every request the server logged with ``method``, in order.

        The server logs a request after answering it, so a line can lag behind the answer:
        ask for a marker page first and wait until the log holds it (and everything before it).
        """
        self._sentinels += 1
        marker = f"/ServiceProviderConfig?log-marker={self._sentinels}"
        requests.get(self.url + marker, headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        pattern = re.compile(rf'"{method} (\S+) HTTP/')
        deadline = time.monotonic() + 5.0
        while True:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
            if marker in text or time.monotonic() > deadline:
                time.sleep(0.05)  # the handler threads of the requests before the marker
                text = self.log_path.read_text(encoding="utf-8", errors="replace")
                return [m.group(1) for m in pattern.finditer(text) if "log-marker=" not in m.group(1)]
            time.sleep(0.01)


def _command() -> list[str]:
    """Return how to run scim2-server: its script beside this Python, on PATH, or as a module."""
    beside = Path(sys.executable).parent / "scim2-server"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("scim2-server")
    return [found] if found else [sys.executable, "-m", "scim2_server.testserver.cli"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_scim_server(
    work_dir: Path, *, token: str, service_provider_config: Mapping[str, Any] | None = None
) -> Iterator[ScimServer]:
    """Start scim2-server on a free loopback port; stop it when the block ends."""
    work_dir.mkdir(parents=True, exist_ok=True)
    extra: list[str] = []
    if service_provider_config is not None:
        spc = work_dir / "service-provider-config.json"
        spc.write_text(json.dumps(service_provider_config), encoding="utf-8")
        extra = ["--service-provider-config", str(spc)]
    failures: list[str] = []
    for attempt in range(_PORT_ATTEMPTS):
        # Another process may take the port between the probe and the bind: then try another.
        port = _free_port()
        log_path = work_dir / f"scim2-server-{port}.log"
        command = [
            *_command(),
            "--hostname",
            "127.0.0.1",
            "--port",
            str(port),
            "--bearer-token",
            token,
            *extra,
        ]
        with log_path.open("w", encoding="utf-8") as log:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, text=True, env=_env(), start_new_session=True
            )
        try:
            if _wait_until_serving(process):
                yield ScimServer(f"http://127.0.0.1:{port}/v2", token, log_path, process)
                return
            failures.append(f"attempt {attempt + 1}: {log_path.read_text(encoding='utf-8')[-800:]}")
        finally:
            _stop(process)
    raise RuntimeError("scim2-server did not start:\n" + "\n".join(failures))


def _env() -> dict[str, str]:
    # The ready line is printed with flush=True; unbuffered output costs nothing more.
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _wait_until_serving(process: subprocess.Popen[str]) -> bool:
    """Wait for the line scim2-server prints once it listens; False if it exits or takes too long."""
    stream: IO[str] | None = process.stdout
    assert stream is not None
    deadline = time.monotonic() + _STARTUP_SECONDS
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(timeout=left):
                return False
            line = stream.readline()
            if not line:
                return False  # end of output: the server exited (e.g. the port was taken)
            if _READY.search(line):
                return True
    return False


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()
