"""The audit log: one JSON line per applied operation, chained by hashes.

Each line carries ``prev`` (the hash of the line before) and ``hash`` (sha256 of
its own content plus ``prev``), so ``verify`` can name the first line that was
changed or removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scimsync.engine.plan import Operation
from scimsync.errors import ScimsyncError
from scimsync.runstats import new_run_id
from scimsync.secrets import redact

GENESIS = "0" * 64


def _digest(entry: Mapping[str, Any]) -> str:
    body = json.dumps({k: v for k, v in entry.items() if k != "hash"}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _last_hash(path: Path) -> str:
    if not path.exists() or path.stat().st_size == 0:
        return GENESIS
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 65536))
        lines = fh.read().splitlines()
    for line in reversed(lines):
        if line.strip():
            try:
                return str(json.loads(line)["hash"])
            except (ValueError, KeyError):
                break
    return GENESIS


class AuditLog:
    """Append-only JSONL audit log for one run."""

    def __init__(
        self, path: Path, *, run_id: str | None = None, urls: Mapping[str, str] | None = None
    ) -> None:
        self.path = path
        self.run_id = run_id or new_run_id()  # two applies in one second are two runs
        # Each target's URL: `revert` refuses to undo a run on another instance of a target.
        self.urls = dict(urls or {})
        self._lock = threading.Lock()
        self._prev: str | None = None  # read from the file once, then kept

    def open(self) -> None:
        """Make sure the log can be written, before any write reaches a target."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        except OSError as exc:
            raise ScimsyncError(f"audit_log {self.path}: cannot write: {exc.strerror}") from None

    def record(self, op: Operation, result: str, message: str = "") -> None:
        """Append one line for an operation and its result (done, failed, stale, skipped)."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "run": self.run_id,
            "target": op.target,
            "op": op.kind.value,
            "account": op.account,
            "account_id": op.account_id,
            "group": op.group,
            "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in op.changes],
            "result": result,
            "message": redact(message),
            "reason": redact(op.reason),
        }
        if op.target in self.urls:
            entry["url"] = self.urls[op.target]
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._prev is None:
                self._prev = _last_hash(self.path)
            entry["prev"] = self._prev
            entry["hash"] = self._prev = _digest(entry)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, sort_keys=True) + "\n")


def verify(path: Path) -> tuple[int, str | None]:
    """Check the hash chain; return (lines checked, first problem or None)."""
    prev = GENESIS
    count = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
                changed = isinstance(entry, dict) and entry.get("hash") != _digest(entry)
            except ValueError:  # also bytes that are not UTF-8
                return count, f"line {number}: not JSON"
            except RecursionError:  # nested deeper than the parser follows: no record is
                return count, f"line {number}: not an audit record (nested too deeply)"
            if not isinstance(entry, dict):
                return count, f"line {number}: not an audit record"
            if entry.get("prev") != prev:
                return count, f"line {number}: chain broken (a line before it was changed or removed)"
            if changed:
                return count, f"line {number}: content changed after it was written"
            prev = entry["hash"]
            count += 1
    return count, None
