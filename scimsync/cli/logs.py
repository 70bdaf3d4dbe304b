"""Log lines: text or JSON (`--log-format`), every known secret masked; and the `--report` option.

Two kinds of line share stderr: log records (`-v`: "INFO scimsync.api: read source ...") and
lines meant for people (errors, warnings, "Saved the plan to ...", progress), which
``render.say`` sends through the ``scimsync.console`` logger. In text mode those are printed as
they are; with `--log-format json` every line of either kind is one JSON object carrying the
run id (the audit log's ``run``), so that a log shipper never meets a plain-text line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from scimsync import runstats
from scimsync.render import CONSOLE_LOGGER
from scimsync.secrets import redact

REPORT_KEY = "scimsync.report"  # where --report leaves its path in click's shared ctx.meta
_format = "text"


class RedactingFormatter(logging.Formatter):
    """Format log lines as text or JSON, with every known secret masked."""

    def __init__(self, fmt: str) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        """Return the redacted line."""
        if self.json:
            line = json.dumps(self._entry(record), default=str)
        elif record.name == CONSOLE_LOGGER:
            trace = self.formatException(record.exc_info) + "\n" if record.exc_info else ""
            line = trace + record.getMessage()
        else:
            line = super().format(record)
        return line if getattr(record, "unmasked", False) else redact(line)

    def _entry(self, record: logging.LogRecord) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "run_id": runstats.current().run_id,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry |= {k: v for k, v in fields.items() if k not in entry}
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return entry


def setup_logging(verbose: int, quiet: bool, fmt: str) -> None:
    """Send scimsync's log records to stderr, as text or JSON; lines for people at every level."""
    global _format
    _format = fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(fmt))
    root = logging.getLogger("scimsync")
    root.handlers[:] = [handler]
    root.setLevel(logging.ERROR if quiet else [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)])
    # Errors, warnings and notes are shown with -q too, as they always were; -q silences
    # progress lines where they are made (render.progress).
    logging.getLogger(CONSOLE_LOGGER).setLevel(logging.INFO)
    # A warning of another library that nobody handles (urllib3's "connection pool is full")
    # goes to logging's last resort, which prints it bare: give it the same format.
    last = logging.StreamHandler(sys.stderr)
    last.setLevel(logging.WARNING)
    last.setFormatter(RedactingFormatter(fmt))
    logging.lastResort = last


def json_logs() -> bool:
    """Tell whether stderr lines are JSON (`--log-format json`)."""
    return _format == "json"


def _keep_report_path(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.meta[REPORT_KEY] = value


report_option = click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    expose_value=False,
    is_eager=True,  # kept before the other options are checked: a bad value is reported too
    callback=_keep_report_path,
    help="Write a JSON summary of the run to FILE (mode 0600), whatever its outcome.",
)
