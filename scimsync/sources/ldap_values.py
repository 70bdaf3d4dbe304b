"""Pure helpers of the ldap source: values, DNs, range retrieval and nested groups.

No I/O here: range retrieval takes the fetch of the next range as a callback, so each
rule is a unit test over plain bytes and dicts.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from scimsync.ldap_lib import LDAPInvalidDnError, parse_dn

Raw = Mapping[str, Sequence[bytes]]

# AD stores these GUIDs as 16 bytes, the first three fields little-endian (idp-apis §7).
GUID_ATTRIBUTES = frozenset({"objectguid"})
# Binary by syntax even when the bytes happen to decode as text.
BINARY_ATTRIBUTES = frozenset(
    {
        "objectguid",
        "objectsid",
        "jpegphoto",
        "thumbnailphoto",
        "usercertificate",
        "cacertificate",
        "msexchmailboxguid",
    }
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A uniqueMember value may end in an optional bit-string UID: "uid=x,dc=y#'0101'B" (RFC 4517).
_OPTIONAL_UID = re.compile(r"#'[01]*'B$")
_RANGE = re.compile(r";range=(\d+)-(\d+|\*)$", re.IGNORECASE)


class RangeError(ValueError):
    """A server answered a range retrieval with a range it was not asked for."""


def text(attribute: str, value: bytes) -> str:
    """Render one value as text: a GUID canonically, binary data as base64, the rest as UTF-8."""
    name = attribute.lower()
    if name in GUID_ATTRIBUTES and len(value) == 16:
        return str(uuid.UUID(bytes_le=value))
    if name in BINARY_ATTRIBUTES or name.endswith(";binary"):
        return base64.b64encode(value).decode("ascii")
    try:
        decoded = value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii")
    # Text never holds control characters; bytes that decode but do are binary (a SID, a hash).
    return base64.b64encode(value).decode("ascii") if _CONTROL.search(decoded) else decoded


def rendered(attribute: str, values: Sequence[bytes]) -> str | list[str]:
    """Render an attribute for ``user.attributes``: one value as a string, several as a list."""
    texts = [text(attribute, v) for v in values]
    return texts[0] if len(texts) == 1 else texts


def dn_key(dn: str) -> str:
    """Return the comparison key of a DN: attribute types and values lower-cased, spaces trimmed."""
    try:
        parts = parse_dn(dn, strip=True)
    except LDAPInvalidDnError:
        return dn.strip().lower()
    return "".join(f"{kind.lower()}={value.lower()}{sep}" for kind, value, sep in parts)


def member_dn(value: str) -> str:
    """Return the DN in a member or uniqueMember value, without uniqueMember's optional UID."""
    return _OPTIONAL_UID.sub("", value.strip())


def ranged(raw: Raw, attribute: str, start: int = 0) -> tuple[list[bytes], int | None]:
    """Return the values of ``attribute`` in ``raw`` and where the next range starts (None: complete).

    AD sends at most MaxValRange (1500) values of a multi-valued attribute per answer, under
    ``member;range=0-1499``; the last range ends in ``*`` (idp-apis §7). ``start`` is the
    index this answer was asked to begin at.
    """
    wanted = attribute.lower()
    for name, values in raw.items():
        if name.lower() == wanted:
            if start:  # every value again, from the first: appending them would double them
                raise RangeError(f"asked for {attribute} values from {start}, the server sent {name}")
            return list(values), None
        head, _, _ = name.partition(";")
        match = _RANGE.search(name)
        if head.lower() != wanted or match is None:
            continue
        first, last = int(match[1]), match[2]
        if first != start or (last != "*" and int(last) < first):
            raise RangeError(f"asked for {attribute} values from {start}, the server sent {name}")
        return list(values), None if last == "*" else int(last) + 1
    return [], None  # no value at all, or none left past the last range


class RangeShiftedError(RangeError):
    """The values moved between two ranges: a range did not begin with the last value read."""


def collect_ranged(raw: Raw, attribute: str, fetch: Callable[[str], Raw]) -> list[bytes]:
    """Return every value of ``attribute``, fetching the ranges that follow the first answer.

    ``fetch`` reads the same entry again with one attribute selector, such as
    ``member;range=1499-*``, and returns its raw attributes. Ranges are positional
    (idp-apis §7), so a value removed from an earlier range moves the next one back and a
    plain walk skips a member: each range is asked from the last value read, which must
    come first. Values that moved are read again once from the first range, then refused.
    """
    try:
        return _collect(raw, attribute, fetch)
    except RangeShiftedError:
        # [U] §7 is silent on changes during range retrieval; a second read is cheap next to a lost member.
        return _collect(fetch(f"{attribute};range=0-*"), attribute, fetch)


def _collect(raw: Raw, attribute: str, fetch: Callable[[str], Raw]) -> list[bytes]:
    values, following = ranged(raw, attribute)
    while following is not None:
        at = following - 1 if values else following
        more, after = ranged(fetch(f"{attribute};range={at}-*"), attribute, at)
        if values:
            if not more or more[0] != values[-1]:
                raise RangeShiftedError(
                    f"the {attribute} values moved between two ranges (value {at} is no longer the last "
                    "one read): members were added or removed during the read, twice; run again later"
                )
            more = more[1:]
        if after is not None and after <= following:
            raise RangeError(f"asked for {attribute} values from {at}, the server sent no new value")
        values.extend(more)
        following = after
    return values


def flatten(direct: Mapping[str, Collection[str]]) -> dict[str, frozenset[str]]:
    """Return, for each group, the non-group members it holds directly or through nested groups.

    ``direct`` maps a group's key to the keys of its direct members; a member that is itself
    a key of ``direct`` is a nested group. A cycle (a in b, b in a) is walked once: both groups
    then hold the members of both, and the walk ends.
    """
    return {group: frozenset(_reachable(group, direct)) for group in direct}


def _reachable(group: str, direct: Mapping[str, Collection[str]]) -> Iterable[str]:
    seen = {group}
    pending = [group]
    members: set[str] = set()
    while pending:
        for member in direct[pending.pop()]:
            if member not in direct:
                members.add(member)
            elif member not in seen:
                seen.add(member)
                pending.append(member)
    return members


def account_disabled(values: Sequence[bytes]) -> bool | None:
    """Read AD's userAccountControl: True when bit 0x2 (ACCOUNTDISABLE) is set, None if unreadable."""
    if len(values) != 1:
        return None
    try:
        return bool(int(values[0]) & 0x2)
    except ValueError:
        return None
