"""Filters, PATCH paths and attribute projection for the Atlassian Cloud simulator (§3.4, §3.5).

Atlassian supports only a single ``eq`` (§3.4): ``attribute SP "eq" SP value``, the value
a JSON literal (RFC 7644 §3.4.2.2: strings in double quotes with ``\\"`` and ``\\\\``
escapes). Attribute names and the operator compare case-insensitively in filters and in
``attributes`` lists (RFC 7643 §2.1, RFC 7644 §3.4.2.2); anything more is refused.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from scimsync.sim.atlassian_cloud_common import ScimError
from scimsync.sim.atlassian_cloud_schema import Attr

_NAME = r"[A-Za-z][\w$-]*"
_EQ = re.compile(rf"(?P<attr>{_NAME}) (?P<op>[A-Za-z]+) (?P<value>.*)", re.DOTALL)
# attr, an optional [value filter] (quoted strings may hold "]"), an optional .subAttr
_PATH = re.compile(
    rf'(?P<attr>{_NAME})(?:\[(?P<filter>(?:[^\]"]|"(?:[^"\\]|\\.)*")*)\])?(?:\.(?P<sub>\$?{_NAME}))?'
)
META_PARTS = ("resourceType", "created", "lastModified", "location")


@dataclass(frozen=True)
class Eq:
    """A parsed ``attribute eq value``."""

    attribute: str
    value: Any


@dataclass(frozen=True)
class PatchPath:
    """A parsed PATCH path: ``attr``, ``attr.sub``, ``attr[filter]`` or ``attr[filter].sub``."""

    attr: str
    filter: Eq | None
    sub: str | None


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON literal")


def parse_eq(text: str, scim_type: str = "invalidFilter") -> Eq:
    """Parse a single ``eq`` comparison; 400 ``scim_type`` for anything else (§3.4)."""
    match = _EQ.fullmatch(text)
    if match is None:
        raise ScimError(400, f"unsupported filter '{text}': only 'attribute eq \"value\"' is", scim_type)
    if match["op"].lower() != "eq":
        raise ScimError(400, f"unsupported filter operator '{match['op']}': only eq is (§3.4)", scim_type)
    raw = match["value"]
    try:
        if raw != raw.strip():
            raise ValueError("space around the value")
        value = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError:  # `"a" and ...` lands here too: JSON with extra data
        raise ScimError(
            400, f"unsupported filter '{text}': one comparison with a JSON value", scim_type
        ) from None
    if isinstance(value, dict | list):
        raise ScimError(400, f"unsupported filter '{text}': the value must be a literal", scim_type)
    return Eq(match["attr"], value)


def list_filter(text: str, attributes: tuple[str, ...]) -> Eq:
    """Parse a list filter: one ``eq`` on one of ``attributes`` with a string value (§3.4)."""
    parsed = parse_eq(text)
    canonical = {a.lower(): a for a in attributes}.get(parsed.attribute.lower())
    if canonical is None:
        names = " or ".join(attributes)
        raise ScimError(
            400, f"filtering on '{parsed.attribute}' is not supported: only {names}", "invalidFilter"
        )
    if not isinstance(parsed.value, str):
        raise ScimError(400, f"the value compared with {canonical} must be a quoted string", "invalidFilter")
    return Eq(canonical, parsed.value)


def parse_path(text: str) -> PatchPath:
    """Parse a PATCH path (RFC 7644 §3.5.2, only ``eq`` value filters); 400 invalidPath otherwise."""
    match = _PATH.fullmatch(text)
    if match is None:
        raise ScimError(400, f"unsupported path '{text}'", "invalidPath")
    found = match["filter"]
    return PatchPath(match["attr"], None if found is None else parse_eq(found), match["sub"])


# -- attributes / excludedAttributes (§3.4, RFC 7644 §3.9) --------------------------------


Names = dict[str, set[str] | None]  # attribute -> the sub-attributes named (None: all of it)


@dataclass(frozen=True)
class Projection:
    """The attributes a response keeps (``keep``) or drops (RFC 7644 §3.9)."""

    names: Names
    keep: bool

    def apply(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Return the trimmed resource."""
        return _keep(resource, self.names) if self.keep else _drop(resource, self.names)


def projection(
    query: Mapping[str, str], attrs: Mapping[str, Attr], extensions: Mapping[str, Mapping[str, Attr]]
) -> Projection | None:
    """Parse ``attributes`` or ``excludedAttributes`` (mutually exclusive, §3.4); None when neither."""
    wanted, excluded = query.get("attributes"), query.get("excludedAttributes")
    if wanted is not None and excluded is not None:
        raise ScimError(
            400, "attributes and excludedAttributes are mutually exclusive (§3.4)", "invalidValue"
        )
    if wanted is None and excluded is None:
        return None
    names: Names = {}
    for item in (wanted or excluded or "").split(","):
        top, sub = _resolve(item.strip(), attrs, extensions)
        current = names.get(top, set())
        names[top] = None if sub is None or current is None else current | {sub}
    return Projection(names, keep=wanted is not None)


def _resolve(
    name: str, attrs: Mapping[str, Attr], extensions: Mapping[str, Mapping[str, Attr]]
) -> tuple[str, str | None]:
    """Return the canonical (attribute, sub-attribute) a name means; 400 invalidValue if none [U]."""
    lowered = name.lower()
    for urn, ext in extensions.items():
        if lowered == urn.lower():
            return urn, None
        if lowered.startswith(urn.lower() + ":"):
            return urn, _canonical(name[len(urn) + 1 :], {a: a for a in ext}, name)
    top, _, sub = name.partition(".")
    if top.lower() == "meta":
        return "meta", _canonical(sub, {p: p for p in META_PARTS}, name) if sub else None
    canonical = _canonical(top, {a: a for a in attrs}, name)
    if not sub:
        return canonical, None
    return canonical, _canonical(sub, {a.name: a.name for a in attrs[canonical].sub}, name)


def _canonical(part: str, known: Mapping[str, str], name: str) -> str:
    found = {k.lower(): v for k, v in known.items()}.get(part.lower())
    if found is None:
        raise ScimError(400, f"unknown attribute '{name}' in attributes/excludedAttributes", "invalidValue")
    return found


def _trim(value: Any, subs: set[str], *, keep: bool) -> Any:
    if isinstance(value, list):
        return [_trim(item, subs, keep=keep) for item in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if (k in subs) == keep}
    return value


def _keep(resource: dict[str, Any], names: Names) -> dict[str, Any]:
    out: dict[str, Any] = {k: resource[k] for k in ("schemas", "id") if k in resource}  # returned "always"
    for top, subs in names.items():
        if top in resource:
            out[top] = resource[top] if subs is None else _trim(resource[top], subs, keep=True)
    return copy.deepcopy(out)


def _drop(resource: dict[str, Any], names: Names) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    for top, subs in names.items():
        if top == "id" or top not in out:
            continue  # id is returned "always", even when excluded (RFC 7643 §7)
        if subs is None:
            del out[top]
        else:
            out[top] = _trim(out[top], subs, keep=False)
    return out
