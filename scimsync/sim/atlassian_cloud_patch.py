"""RFC 7644 PatchOp for the Atlassian Cloud simulator: reading the request, patching a user (§3.5).

Operations apply to a copy, so a request with one bad operation changes nothing
(RFC 7644 §3.5.2: PATCH is atomic). Paths and value-object keys are spelled exactly as in
the schema [U: the strict reading, as for request bodies].
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from scimsync.sim.atlassian_cloud_common import ScimError
from scimsync.sim.atlassian_cloud_query import Eq, PatchPath, parse_path
from scimsync.sim.atlassian_cloud_schema import (
    ATLASSIAN_EXTERNAL,
    CORE_USER,
    ENTERPRISE_USER,
    PATCH_OP,
    USER,
    Attr,
    check_part,
    check_schemas,
    check_value,
)

OPS = ("add", "remove", "replace")
_READ_ONLY = ("id", "meta", "groups")


@dataclass(frozen=True)
class Operation:
    """One PATCH operation; ``value`` is None when the operation has none."""

    op: str
    path: str | None
    value: Any


def read_operations(body: dict[str, Any]) -> list[Operation]:
    """Return the operations of a PatchOp body; 400 invalidSyntax when it is not one."""
    check_schemas(body, PATCH_OP, (PATCH_OP,))
    # §3.5: the OpenAPI model says `operations`, Atlassian's example and the RFC `Operations`.
    names = [k for k in ("Operations", "operations") if k in body]
    extra = sorted(set(body) - {"schemas", "Operations", "operations"})
    if extra:
        raise ScimError(400, f"unknown attribute '{extra[0]}' in a PatchOp", "invalidSyntax")
    if len(names) != 1:
        raise ScimError(400, "a PatchOp needs one 'Operations' array", "invalidSyntax")
    raw = body[names[0]]
    if not isinstance(raw, list) or not raw:
        raise ScimError(400, "'Operations' must be a non-empty array", "invalidSyntax")
    return [_operation(item, n) for n, item in enumerate(raw)]


def _operation(item: Any, n: int) -> Operation:
    where = f"operation {n + 1}"
    if not isinstance(item, dict):
        raise ScimError(400, f"{where} must be an object", "invalidSyntax")
    extra = sorted(set(item) - {"op", "path", "value"})
    if extra:
        raise ScimError(400, f"{where} has an unknown member '{extra[0]}'", "invalidSyntax")
    op, path = item.get("op"), item.get("path")
    if op not in OPS:  # [U] exact lower case: "Replace" is refused, not guessed
        raise ScimError(400, f"{where}: 'op' must be add, remove or replace, not {op!r}", "invalidSyntax")
    if path is not None and (not isinstance(path, str) or not path):
        raise ScimError(400, f"{where}: 'path' must be a non-empty string", "invalidPath")
    if op != "remove" and "value" not in item:
        raise ScimError(400, f"{where}: '{op}' needs a value", "invalidValue")
    return Operation(op, path, item.get("value"))


# -- users ---------------------------------------------------------------------------------


def patch_user_attrs(current: dict[str, Any], operations: list[Operation]) -> dict[str, Any]:
    """Return a user's attributes after every operation (the caller checks the result)."""
    attrs = copy.deepcopy(current)
    for operation in operations:
        if operation.path is not None:
            _apply(attrs, operation.op, _user_path(operation.path), operation.value)
            continue
        if operation.op == "remove":  # RFC 7644 §3.5.2.2: remove needs a path
            raise ScimError(400, "remove needs a path", "noTarget")
        if not isinstance(operation.value, dict) or not operation.value:
            raise ScimError(400, f"{operation.op} without a path needs an object value", "invalidValue")
        for key, value in operation.value.items():
            path = _user_path(key)
            if path.filter is not None or path.sub is not None:  # attribute names, not paths
                raise ScimError(400, f"'{key}' in a value object must be an attribute name", "invalidPath")
            _apply(attrs, operation.op, path, value)
    attrs.setdefault("active", True)  # §3.3: unassigned active means true
    return attrs


def _user_path(text: str) -> PatchPath:
    """Parse a user path; read-only targets are 400 mutability (RFC 7644 §3.5.2)."""
    if text.startswith(CORE_USER + ":"):
        text = text[len(CORE_USER) + 1 :]
    elif text.startswith((ENTERPRISE_USER, ATLASSIAN_EXTERNAL)):
        raise ScimError(400, f"'{text}' is read-only (§3.3)", "mutability")
    path = parse_path(text)
    if path.attr in _READ_ONLY:
        raise ScimError(400, f"'{path.attr}' is read-only (§3.3)", "mutability")
    if path.attr not in USER:
        raise ScimError(400, f"no attribute '{path.attr}' in a User", "invalidPath")
    return path


def _apply(attrs: dict[str, Any], op: str, path: PatchPath, value: Any) -> None:
    attr = USER[path.attr]
    if path.filter is not None:
        _filtered(attrs, op, attr, path.filter, path.sub, value)
    elif path.sub is not None:
        _part(attrs, op, attr, path.sub, value)
    elif op == "remove":
        attrs.pop(attr.name, None)
    else:
        checked = check_value(attr, value, attr.name)
        if attr.multi and op == "add":  # RFC 7644 §3.5.2.1: add appends to a multi-valued attribute
            attrs[attr.name] = [*attrs.get(attr.name, []), *checked]
        elif attr.type == "complex" and not attr.multi:  # §3.5.2.1/.3: sub-attributes merge
            attrs[attr.name] = {**attrs.get(attr.name, {}), **checked}
        else:
            attrs[attr.name] = checked


def _part(attrs: dict[str, Any], op: str, attr: Attr, sub: str, value: Any) -> None:
    """Patch ``name.givenName``; ``emails.value`` without a filter is refused [U: ambiguous]."""
    if attr.type != "complex" or attr.multi or attr.child(sub) is None:
        raise ScimError(400, f"unsupported path '{attr.name}.{sub}'", "invalidPath")
    parent = dict(attrs.get(attr.name, {}))
    if op == "remove":
        parent.pop(sub, None)
    else:
        parent[sub] = check_part(attr, sub, value, attr.name)
    if parent:
        attrs[attr.name] = parent
    else:
        attrs.pop(attr.name, None)


def _filtered(attrs: dict[str, Any], op: str, attr: Attr, eq: Eq, sub: str | None, value: Any) -> None:
    """Patch the items of a multi-valued attribute that match ``[attribute eq value]``."""
    key = {a.name.lower(): a for a in attr.sub}.get(eq.attribute.lower()) if attr.multi else None
    if key is None:
        raise ScimError(
            400, f"unsupported filter '{eq.attribute} eq' in a '{attr.name}' path", "invalidFilter"
        )
    if sub is not None and attr.child(sub) is None:
        raise ScimError(400, f"unsupported path '{attr.name}[...].{sub}'", "invalidPath")
    items: list[dict[str, Any]] = attrs.get(attr.name, [])
    hits = [i for i, item in enumerate(items) if _equal(item.get(key.name), eq.value, key)]
    if not hits:  # RFC 7644 Table 9 [U: add with a filter that matches nothing too]
        raise ScimError(400, f"no value of '{attr.name}' matches the filter", "noTarget")
    if sub is not None:
        for i in hits:
            if op == "remove":
                items[i].pop(sub, None)
            else:
                items[i][sub] = check_part(attr, sub, value, attr.name)
    elif op == "remove":
        items = [item for i, item in enumerate(items) if i not in hits]
    else:
        if not isinstance(value, dict):
            raise ScimError(400, f"a filtered '{attr.name}' path takes one object", "invalidValue")
        part = {k: check_part(attr, k, v, attr.name) for k, v in value.items() if v is not None}
        for i in hits:
            items[i] = {**items[i], **part} if op == "add" else dict(part)
    if items:
        attrs[attr.name] = items
    else:
        attrs.pop(attr.name, None)


def _equal(have: Any, want: Any, attr: Attr) -> bool:
    if isinstance(have, str) and isinstance(want, str) and not attr.case_exact:
        return have.lower() == want.lower()  # RFC 7644 §3.4.2.2: caseExact false
    return bool(have == want and type(have) is type(want))
