"""Secret values: masked in every repr, and scrubbed from any text that leaves the process."""

from __future__ import annotations

import threading
from urllib.parse import quote

MASK = "***"

# Values shorter than this are not scrubbed from text: masking "t" everywhere would
# mangle every message, and no real credential is that short.
MIN_SCRUB_LENGTH = 4

_known: set[str] = set()
_lock = threading.Lock()


class Secret:
    """A credential. ``str()`` and ``repr()`` are masked; ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if len(value) >= MIN_SCRUB_LENGTH:
            with _lock:
                _known.add(value)

    def reveal(self) -> str:
        """Return the real value, for building an Authorization header and nothing else."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


def redact(text: str) -> str:
    """Replace every known secret value in ``text`` with the mask."""
    with _lock:
        values = sorted(_known, key=len, reverse=True)
    for value in values:
        for form in _forms(value):
            if form in text:
                text = text.replace(form, MASK)
    return text


def _forms(value: str) -> tuple[str, ...]:
    """Return the ways a value may be spelled in a message: as is, escaped, URL-encoded."""
    escaped = repr(value)[1:-1]
    encoded = quote(value, safe="")
    return tuple(dict.fromkeys((value, escaped, encoded)))
