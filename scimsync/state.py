"""The state file: what scimsync remembers between runs, per target (SPEC §5 Links).

Two things, neither of them a secret: which account (its stable key) scimsync created
or adopted for which source user id, so that a person renamed in the IdP stays the same
account; and which groups each templated group rule has produced, so that a group no
source user produces any more stays managed and its last members are removed.

A missing or unreadable file is a warning, never a reason to deprovision anyone:
matching falls back to usernames and emails. The file is written atomically (a temporary
file renamed over it) by ``apply``, under the run lock.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1


@dataclass(frozen=True)
class TargetState:
    """What is remembered about one target."""

    links: Mapping[str, str] = field(default_factory=dict)  # source id -> account stable id
    rule_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # "from -> to" -> groups
    url: str = ""  # the target's URL: links of one instance never apply to another


@dataclass(frozen=True)
class State:
    """Everything remembered, by target name."""

    targets: Mapping[str, TargetState] = field(default_factory=dict)

    def target(self, name: str) -> TargetState:
        """Return what is remembered about target ``name`` (nothing when it is new)."""
        return self.targets.get(name, TargetState())

    def with_target(self, name: str, state: TargetState) -> State:
        """Return a copy with target ``name`` remembered as ``state``."""
        return State({**self.targets, name: state})


def load_state(path: Path | None, *, first_run: bool = False) -> tuple[State, str | None]:
    """Read the state file; return it and a warning when it is missing or unreadable.

    ``first_run``: nothing was ever applied (no audit log), so a missing file is expected.
    """
    if path is None:
        return State(), None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return State(), None if first_run else _unreadable(path, "not found")
    except (OSError, UnicodeDecodeError) as exc:
        return State(), _unreadable(path, getattr(exc, "strerror", None) or "not UTF-8 text")
    try:
        return _parse(json.loads(text)), None
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        return State(), _unreadable(path, f"not a scimsync state file ({exc})")


def _unreadable(path: Path, cause: str) -> str:
    return (
        f"state file {path}: {cause}; links are ignored this run and accounts are matched by "
        "username and email (no one is deprovisioned because of it)"
    )


def _parse(data: Any) -> State:
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"format_version is not {FORMAT_VERSION}")
    targets = {}
    for name, body in _mapping(data["targets"]).items():
        body = _mapping(body)
        links = {str(k): _text(v) for k, v in _mapping(body.get("links", {})).items()}
        groups = {
            str(k): tuple(_text(g) for g in _list(v))
            for k, v in _mapping(body.get("rule_groups", {})).items()
        }
        url = body.get("url", "")
        if not isinstance(url, str):
            raise ValueError("a url that is not text")
        targets[str(name)] = TargetState(links, groups, url)
    return State(targets)


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("an entry that is not an object")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("an entry that is not a list")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("a link or group that is not a name")
    return value


def save_state(path: Path, state: State) -> None:
    """Write the state file atomically (mode 0600: it names people's accounts)."""
    data = {
        "format_version": FORMAT_VERSION,
        "targets": {
            name: {
                "links": dict(sorted(t.links.items())),
                "rule_groups": {k: sorted(v) for k, v in sorted(t.rule_groups.items())},
                "url": t.url,
            }
            for name, t in sorted(state.targets.items())
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
