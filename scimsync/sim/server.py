"""Serve a simulator's WSGI app on loopback in a background thread."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class _QuietHandler(WSGIRequestHandler):
    """A request handler that logs no request lines (errors in a simulator still show)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Drop the access-log line."""


class _Prefixed:
    """Serve ``app`` under a context path such as ``/jira``; anything else is 404."""

    def __init__(self, app: WSGIApplication, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Shift the prefix from PATH_INFO to SCRIPT_NAME, or answer 404."""
        path = environ.get("PATH_INFO", "")
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            # Outside the context path the servlet container answers, not the application.
            payload = b"Not Found"
            start_response(
                "404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(payload)))]
            )
            return [payload]
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.prefix
        environ["PATH_INFO"] = path[len(self.prefix) :]
        return self.app(environ, start_response)


class SimServer:
    """Serve a WSGI app on 127.0.0.1 (an ephemeral port by default) in a daemon thread."""

    def __init__(
        self, app: WSGIApplication, *, host: str = "127.0.0.1", port: int = 0, prefix: str = ""
    ) -> None:
        prefix = prefix.rstrip("/")
        if prefix and not prefix.startswith("/"):
            raise ValueError(f"prefix must start with '/': {prefix!r}")
        self.app = app
        self.host = host
        self.port = port
        self.prefix = prefix
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Return the base URL, context path included (``http://127.0.0.1:54321/jira``)."""
        if self._server is None:
            raise RuntimeError("SimServer is not started")
        return f"http://{self.host}:{self._server.server_port}{self.prefix}"

    def start(self) -> str:
        """Start serving and return the base URL."""
        if self._server is not None:
            return self.url
        app = _Prefixed(self.app, self.prefix) if self.prefix else self.app
        server = make_server(self.host, self.port, app, threaded=True, request_handler=_QuietHandler)
        self._server = server
        # A short poll interval makes stop() quick (shutdown waits for the next poll).
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name=f"sim{self.prefix}", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and release the port."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> SimServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
