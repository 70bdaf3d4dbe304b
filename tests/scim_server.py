"""Run the real ``scim2-server`` (PyPI, a dev dependency) on a free loopback port, for end-to-end tests.

``running_scim_server`` starts it as a subprocess with ``--bearer-token``, waits for the
line it prints once its socket listens, and stops it on exit. Its access log (one line
per request, from wsgiref on stderr) goes to a file, so tests can see which pages were
asked for. ``ScimServer.clear`` empties it, so that one server can serve several tests.
``ScimProxy`` (a WSGI app, served with scimsync.sim.server.SimServer) stands in front of
it and answers chosen pages with an error status instead.
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
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import requests

from scimsync.http.scim import ERROR
from scimsync.sim.faults import LoggedRequest, RequestLog

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

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

    def clear(self) -> None:
        """Delete every group, then every user."""
        for path in ("/Groups", "/Users"):
            # The service's default maxResults (1000) holds any directory a test seeds.
            listing = self._send("GET", f"{path}?count=1000", None, 200)
            for resource in listing.get("Resources") or []:
                self._send("DELETE", f"{path}/{resource['id']}", None, 204)

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None, expected: int) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": SCIM_JSON, "Accept": SCIM_JSON}
        data = None if body is None else json.dumps(body).encode()
        response = requests.request(method, self.url + path, data=data, headers=headers, timeout=10)
        if response.status_code != expected:
            raise AssertionError(f"{method} {path}: HTTP {response.status_code}: {response.text[:300]}")
        answer: dict[str, Any] = response.json() if response.content else {}
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


@dataclass
class _PageFault:
    status: int
    times: int | None  # None: every time
    retry_after: int | None


class ScimProxy:
    """A WSGI app that forwards every request to scim2-server, except the pages told to fail.

    A page is a list path (``/v2/Users``) and a ``startIndex``; its injected answers carry a
    SCIM error body, and ``Retry-After`` when asked (idp-apis §6.4: no rate-limit mechanism
    in the RFC, services answer 429 + Retry-After).
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.log = RequestLog()
        self._lock = threading.Lock()
        self._faults: dict[tuple[str, str], _PageFault] = {}

    def fail(
        self, path: str, start: int, status: int, *, times: int | None = None, retry_after: int | None = None
    ) -> None:
        """Answer the page at ``start`` of ``path`` with ``status``, ``times`` times (None: always)."""
        with self._lock:
            self._faults[(path, str(start))] = _PageFault(status, times, retry_after)

    def statuses(self, path: str, start: int) -> list[int]:
        """Return what the page at ``start`` of ``path`` was answered, in order."""
        return [
            e.status for e in self.log.entries if (e.path, e.query.get("startIndex")) == (path, str(start))
        ]

    def _take(self, path: str, start: str | None) -> _PageFault | None:
        with self._lock:
            fault = self._faults.get((path, start or ""))
            if fault is None or fault.times == 0:
                return None
            if fault.times is not None:
                fault.times -= 1
            return fault

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request: injected, or forwarded to scim2-server."""
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        query = environ.get("QUERY_STRING", "")
        params = dict(parse_qsl(query))
        fault = self._take(path, params.get("startIndex"))
        if fault is not None:
            status, headers, content = self._injected(fault)
        else:
            status, headers, content = self._forward(environ, method, path, query)
        self.log.append(LoggedRequest(method, path, params, status, None))
        start_response(
            f"{status} {HTTPStatus(status).phrase}", [*headers, ("Content-Length", str(len(content)))]
        )
        return [content]

    @staticmethod
    def _injected(fault: _PageFault) -> tuple[int, list[tuple[str, str]], bytes]:
        body = {"schemas": [ERROR], "status": str(fault.status), "detail": "injected by the test proxy"}
        headers = [("Content-Type", SCIM_JSON)]
        if fault.retry_after is not None:
            headers.append(("Retry-After", str(fault.retry_after)))
        return fault.status, headers, json.dumps(body).encode()

    def _forward(
        self, environ: WSGIEnvironment, method: str, path: str, query: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        names = {
            "HTTP_AUTHORIZATION": "Authorization",
            "HTTP_ACCEPT": "Accept",
            "CONTENT_TYPE": "Content-Type",
        }
        headers = {name: environ[key] for key, name in names.items() if environ.get(key)}
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        url = f"{self.origin}{path}" + (f"?{query}" if query else "")
        answer = requests.request(method, url, headers=headers, data=body, timeout=10, allow_redirects=False)
        kept = [(k, v) for k, v in answer.headers.items() if k.lower() in ("content-type", "retry-after")]
        return answer.status_code, kept, answer.content


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
