"""Log lines: text or JSON (`--log-format`), every known secret masked."""

from __future__ import annotations

import json
import logging
import sys
import time

from scimsync.secrets import redact


class RedactingFormatter(logging.Formatter):
    """Format log lines as text or JSON, with every known secret masked."""

    def __init__(self, fmt: str) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        """Return the redacted line."""
        if self.json:
            line = json.dumps(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
                    "level": record.levelname.lower(),
                    "logger": record.name,
                    "message": record.getMessage(),
                }
            )
        else:
            line = super().format(record)
        return redact(line)


def setup_logging(verbose: int, quiet: bool, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(fmt))
    root = logging.getLogger("scimsync")
    root.handlers[:] = [handler]
    root.setLevel(logging.ERROR if quiet else [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)])
