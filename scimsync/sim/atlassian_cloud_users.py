"""Atlassian Cloud simulator: the /Users endpoints and the rules of a valid user (§3.3-§3.6)."""

from __future__ import annotations

import re
from typing import Any

from werkzeug.wrappers import Response

from scimsync.sim.atlassian_cloud_common import (
    NO_RESOURCE,
    Ctx,
    ScimError,
    empty_response,
    list_response,
    page_args,
    scim_response,
)
from scimsync.sim.atlassian_cloud_directory import CloudDirectory, CloudUser, fold, primary_email
from scimsync.sim.atlassian_cloud_patch import patch_user_attrs, read_operations
from scimsync.sim.atlassian_cloud_query import Projection, list_filter, projection
from scimsync.sim.atlassian_cloud_schema import (
    ATLASSIAN_ATTRS,
    ATLASSIAN_EXTERNAL,
    CORE_USER,
    ENTERPRISE_ATTRS,
    ENTERPRISE_USER,
    USER,
    USER_SCHEMAS,
    check_schemas,
    check_value,
)

LIST_QUERY = frozenset({"filter", "startIndex", "count", "attributes", "excludedAttributes"})
ONE_QUERY = frozenset({"attributes", "excludedAttributes"})
FILTERS = ("userName", "externalId")  # §3.4: the only filterable user attributes
# RFC 7644 §3.3, §3.5.1: read-only attributes in a POST or PUT body are ignored, not refused.
IGNORED = frozenset({"id", "meta", "groups", ENTERPRISE_USER, ATLASSIAN_EXTERNAL})
EXTENSIONS = {
    ENTERPRISE_USER: {a.name: a for a in ENTERPRISE_ATTRS},
    ATLASSIAN_EXTERNAL: {a.name: a for a in ATLASSIAN_ATTRS},
}
EMAIL = re.compile(r"[^@\s<>()\[\],;:\"]+@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
ORDER = (
    "externalId",
    "userName",
    "name",
    "displayName",
    "nickName",
    "title",
    "preferredLanguage",
    "department",
    "organization",
    "timezone",
    "active",
    "emails",
    "phoneNumbers",
)


def read_user(body: dict[str, Any]) -> dict[str, Any]:
    """Return the writable attributes of a POST or PUT body (§3.3); 400 when malformed.

    Keys must be spelled exactly as in the schema [U: RFC 7643 §2.1 makes names
    case-insensitive; a strict simulator refuses ``username`` so the typo shows].
    """
    check_schemas(body, CORE_USER, USER_SCHEMAS)
    attrs: dict[str, Any] = {}
    for key, value in body.items():
        if key == "schemas" or key in IGNORED:
            continue
        attr = USER.get(key)
        if attr is None:
            raise ScimError(400, f"unknown attribute '{key}' for a User", "invalidSyntax")
        if value is not None:  # null means unassigned (RFC 7644 §3.5.1)
            attrs[key] = check_value(attr, value, key)
    attrs.setdefault("active", True)  # §3.3: active defaults to true (also on PUT: §3.5 clears it)
    return attrs


def check_user(directory: CloudDirectory, attrs: dict[str, Any], me: CloudUser | None) -> None:
    """Check a user about to be stored: required values, verified domains, uniqueness (§3.3, §3.5)."""
    name = attrs.get("userName")
    if not isinstance(name, str) or not name.strip():
        raise ScimError(400, "userName is required", "invalidValue")
    _check_emails(directory, attrs.get("emails") or [])
    if sum(p.get("primary") is True for p in attrs.get("phoneNumbers") or []) > 1:
        raise ScimError(400, "at most one phone number may be primary (RFC 7643 §2.4)", "invalidValue")
    holder = directory.user_named(name)
    if holder is not None and holder is not me:
        # A deleted (deactivated, §3.6) user keeps its userName: a new POST is still a 409 [U].
        raise ScimError(409, f"a user with userName '{name}' already exists in this directory", "uniqueness")
    account = directory.account_for(primary_email(attrs))
    if account is not None and account.user_id not in (None, me.id if me else None):
        detail = (
            f"managed account conflict: the Atlassian account of '{account.email}' is already "
            "linked to another user of this directory"
        )
        raise ScimError(409, detail, "uniqueness")


def _check_emails(directory: CloudDirectory, emails: list[dict[str, Any]]) -> None:
    if not emails:
        raise ScimError(400, "emails is required, one of them primary (§3.3)", "invalidValue")
    primaries = sum(e.get("primary") is True for e in emails)
    if primaries != 1:
        raise ScimError(400, f"exactly one email must be primary (§3.3), not {primaries}", "invalidValue")
    for email in emails:
        value = email.get("value")
        match = EMAIL.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise ScimError(400, f"'{value}' is not an email address", "invalidValue")
        # §3.5: every address must be on a verified domain [U: subdomains are not covered].
        if fold(match["domain"]) not in directory.verified_domains:
            detail = (
                f"the domain '{match['domain']}' of email '{value}' is not verified for this organization"
            )
            raise ScimError(400, detail, "invalidValue")


def render_user(ctx: Ctx, user: CloudUser) -> dict[str, Any]:
    """Return the §3.3 resource: three schemas, groups computed, both extensions, meta.

    It shares the stored values (no copy: a list page renders 100 of them); every caller
    serializes it at once, and ``Projection.apply`` copies before it trims.
    """
    attrs = user.attrs
    out: dict[str, Any] = {"schemas": list(USER_SCHEMAS), "id": user.id}
    out |= {k: attrs[k] for k in ORDER if k in attrs}
    groups = ctx.base_url + "/Groups/"
    out["groups"] = [
        {"value": g.id, "display": g.display_name, "type": "direct", "$ref": groups + g.id}
        for g in ctx.directory.groups_of(user.id)
    ]
    enterprise = {k: attrs[k] for k in ("organization", "department") if k in attrs}
    if enterprise:
        out[ENTERPRISE_USER] = enterprise
    if user.account_id is not None:  # only a user linked to a managed account (§3.5)
        out[ATLASSIAN_EXTERNAL] = {"atlassianAccountId": user.account_id}
    out["meta"] = {
        "resourceType": "User",
        "created": user.created,
        "lastModified": user.modified,
        "location": ctx.location("Users", user.id),
    }
    return out


def _shape(query: dict[str, str]) -> Projection | None:
    return projection(query, USER, EXTENSIONS)


def _answer(ctx: Ctx, user: CloudUser, shape: Projection | None, status: int = 200) -> Response:
    resource = render_user(ctx, user)
    response = scim_response(shape.apply(resource) if shape else resource, status)
    if status == 201:
        response.headers["Location"] = resource["meta"]["location"]  # RFC 7644 §3.3
    return response


def _target(ctx: Ctx) -> CloudUser:
    user = ctx.directory.live_user(ctx.params["user_id"])
    if user is None:  # ids are case-exact (§3.3); a deleted user is gone for good (§3.6)
        raise ScimError(404, NO_RESOURCE)
    return user


def list_users(ctx: Ctx) -> Response:
    """GET /Users: one page in creation order, optionally one ``eq`` filter (§3.4)."""
    query = ctx.query(LIST_QUERY)
    start, count = page_args(query)
    shape = _shape(query)
    users = ctx.directory.live_users()
    if "filter" in query:
        eq = list_filter(query["filter"], FILTERS)
        if eq.attribute == "userName":  # [U] case-insensitive, as userName uniqueness (§3.9)
            users = [u for u in users if fold(u.user_name) == fold(eq.value)]
        else:  # §3.3: externalId is case-sensitive
            users = [u for u in users if u.attrs.get("externalId") == eq.value]
    page = users[start - 1 : start - 1 + count]
    resources = [render_user(ctx, u) for u in page]
    return list_response([shape.apply(r) for r in resources] if shape else resources, len(users), start)


def create_user(ctx: Ctx) -> Response:
    """POST /Users: 201 with the user; 409 when the userName or managed account is taken (§3.5)."""
    shape = _shape(ctx.query(ONE_QUERY))
    attrs = read_user(ctx.json_body())
    directory = ctx.directory
    check_user(directory, attrs, None)
    if len(directory.users) >= directory.max_users:
        # §3.9 [U current cap]: a 400 without scimType (none fits); deleted users still count.
        raise ScimError(400, f"the directory has reached its limit of {directory.max_users} users")
    return _answer(ctx, directory.create_user(attrs), shape, 201)


def get_user(ctx: Ctx) -> Response:
    """GET /Users/{id}."""
    shape = _shape(ctx.query(ONE_QUERY))
    return _answer(ctx, _target(ctx), shape)


def replace_user(ctx: Ctx) -> Response:
    """PUT /Users/{id}: every writable attribute not sent is cleared (§3.5)."""
    shape = _shape(ctx.query(ONE_QUERY))
    user = _target(ctx)
    attrs = read_user(ctx.json_body())
    check_user(ctx.directory, attrs, user)
    ctx.directory.replace_user(user, attrs)
    return _answer(ctx, user, shape)


def patch_user(ctx: Ctx) -> Response:
    """PATCH /Users/{id}: RFC 7644 PatchOp, all operations or none; 200 with the user (§3.5)."""
    shape = _shape(ctx.query(ONE_QUERY))
    user = _target(ctx)
    attrs = patch_user_attrs(user.attrs, read_operations(ctx.json_body()))
    check_user(ctx.directory, attrs, user)
    ctx.directory.replace_user(user, attrs)
    return _answer(ctx, user, shape)


def delete_user(ctx: Ctx) -> Response:
    """DELETE /Users/{id}: 204; deactivated and unreachable, or removed (§3.6)."""
    ctx.query(frozenset())
    ctx.directory.delete_user(_target(ctx))
    return empty_response()
