"""The interface every source connector implements."""

from __future__ import annotations

from typing import Protocol

from scimsync.models import SourceDirectory
from scimsync.targets.base import Progress, no_progress


class Source(Protocol):
    """A source directory (an IdP): read-only."""

    name: str
    type: str

    def check(self) -> str:
        """Make one cheap authenticated read; return a short description."""
        ...

    def read(self, *, progress: Progress = no_progress) -> SourceDirectory:
        """Read every user with their group names, and the groups."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
