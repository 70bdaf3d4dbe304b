"""The SCIM schemas the Atlassian Cloud simulator serves and validates against (§3.3, §3.7).

One table per resource drives both the ``/Schemas`` documents (RFC 7643 §7) and the
type checks of request bodies, so what the simulator announces is what it enforces.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from scimsync.sim.atlassian_cloud_common import ScimError

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# §3.3: the 2.0/1.0 URNs of the spec and of live responses, not go-atlassian's 2.1/1.1.
ATLASSIAN_EXTERNAL = "urn:scim:schemas:extension:atlassian-external:1.0"
USER_SCHEMAS = (CORE_USER, ENTERPRISE_USER, ATLASSIAN_EXTERNAL)
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass(frozen=True)
class Attr:
    """One attribute definition (RFC 7643 §7); ``sub`` holds a complex attribute's parts."""

    name: str
    type: str = "string"
    multi: bool = False
    required: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    case_exact: bool = False
    sub: tuple[Attr, ...] = ()

    @property
    def read_only(self) -> bool:
        """Tell whether a client may never write this attribute."""
        return self.mutability == "readOnly"

    def child(self, name: str) -> Attr | None:
        """Return the sub-attribute with exactly this name, if any."""
        return next((a for a in self.sub if a.name == name), None)

    def definition(self) -> dict[str, Any]:
        """Return the RFC 7643 §7 attribute definition."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi,
            "description": self.name,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        }
        if self.sub:
            out["subAttributes"] = [a.definition() for a in self.sub]
        if self.type == "reference":
            out["referenceTypes"] = ["User", "Group"]
        return out


def _plural(*, read_only: bool = False) -> tuple[Attr, ...]:
    mutability = "readOnly" if read_only else "readWrite"
    return (
        Attr("value", mutability=mutability),
        Attr("type", mutability=mutability),
        Attr("primary", "boolean", mutability=mutability),
    )


_NAME_PARTS = ("formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix")
_REF_PARTS = (
    Attr("value", mutability="readOnly"),
    Attr("$ref", "reference", mutability="readOnly"),
    Attr("display", mutability="readOnly"),
    Attr("type", mutability="readOnly"),
)

# §3.3 (ScimUser): department, organization and timezone sit at the top level of the
# resource in Atlassian's OpenAPI, beside the RFC 7643 core attributes.
USER_ATTRS = (
    Attr("id", mutability="readOnly", returned="always", uniqueness="server", case_exact=True),
    Attr("externalId", case_exact=True),  # §3.3: case-sensitive
    Attr("userName", required=True, uniqueness="server"),
    Attr("name", "complex", sub=tuple(Attr(p) for p in _NAME_PARTS)),
    *(Attr(n) for n in ("displayName", "nickName", "title", "preferredLanguage")),
    *(Attr(n) for n in ("department", "organization", "timezone")),
    Attr("active", "boolean"),
    Attr("emails", "complex", multi=True, required=True, sub=_plural()),
    Attr("phoneNumbers", "complex", multi=True, sub=_plural()),
    Attr("groups", "complex", multi=True, mutability="readOnly", sub=_REF_PARTS),
)
ENTERPRISE_ATTRS = (  # §3.3: read-only, mirrors the top-level organization and department
    Attr("organization", mutability="readOnly"),
    Attr("department", mutability="readOnly"),
)
ATLASSIAN_ATTRS = (Attr("atlassianAccountId", mutability="readOnly", case_exact=True),)
GROUP_ATTRS = (
    Attr("id", mutability="readOnly", returned="always", uniqueness="server", case_exact=True),
    Attr("externalId", case_exact=True),
    # §3.7: required and immutable (no rename after sync).
    Attr("displayName", required=True, mutability="immutable", uniqueness="server"),
    Attr(
        "members",
        "complex",
        multi=True,
        sub=(
            Attr("value", mutability="immutable"),
            Attr("$ref", "reference", mutability="immutable"),
            Attr("display", mutability="readOnly"),
            Attr("type", mutability="immutable"),
        ),
    ),
)
USER = {a.name: a for a in USER_ATTRS}
GROUP = {a.name: a for a in GROUP_ATTRS}

SCHEMAS = {
    CORE_USER: ("User", "User Account", USER_ATTRS),
    CORE_GROUP: ("Group", "Group", GROUP_ATTRS),
    ENTERPRISE_USER: ("EnterpriseUser", "Enterprise User", ENTERPRISE_ATTRS),
    ATLASSIAN_EXTERNAL: ("AtlassianExternal", "Atlassian account link", ATLASSIAN_ATTRS),
}


def schema_document(urn: str, location: str) -> dict[str, Any]:
    """Return the RFC 7643 §7 document of one schema."""
    name, description, attrs = SCHEMAS[urn]
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": urn,
        "name": name,
        "description": description,
        "attributes": [a.definition() for a in attrs],
        "meta": {"resourceType": "Schema", "location": location},
    }


def check_value(attr: Attr, value: Any, path: str) -> Any:
    """Return ``value`` if it has the type ``attr`` declares; 400 invalidValue otherwise."""
    if attr.multi:
        if not isinstance(value, list):
            raise ScimError(400, f"'{path}' must be a JSON array", "invalidValue")
        return [_check_single(attr, item, f"{path}[{n}]") for n, item in enumerate(value)]
    return _check_single(attr, value, path)


def _check_single(attr: Attr, value: Any, path: str) -> Any:
    if attr.type == "complex":
        if not isinstance(value, dict):
            raise ScimError(400, f"'{path}' must be a JSON object", "invalidValue")
        # A null sub-attribute is unassigned, as a null attribute is (RFC 7644 §3.5.1).
        return {key: check_part(attr, key, part, path) for key, part in value.items() if part is not None}
    if attr.type == "boolean":
        if not isinstance(value, bool):  # a string "true" is refused: strict JSON types [U]
            raise ScimError(400, f"'{path}' must be true or false", "invalidValue")
        return value
    if not isinstance(value, str):
        raise ScimError(400, f"'{path}' must be a string", "invalidValue")
    return value


def check_part(attr: Attr, key: str, value: Any, path: str) -> Any:
    """Check one sub-attribute of a complex value; an unknown one is 400 invalidSyntax."""
    part = attr.child(key)
    if part is None:
        raise ScimError(400, f"'{path}' has no sub-attribute '{key}'", "invalidSyntax")
    return _check_single(part, value, f"{path}.{key}")


def check_schemas(body: dict[str, Any], core: str, allowed: Iterable[str]) -> None:
    """Require ``schemas`` naming ``core`` and only known URNs (RFC 7644 §3.3) [U: Atlassian's own rule]."""
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        raise ScimError(400, "'schemas' must be a JSON array of schema URNs", "invalidSyntax")
    if core not in schemas:
        raise ScimError(400, f"'schemas' must name {core}", "invalidSyntax")
    unknown = [s for s in schemas if s not in set(allowed)]
    if unknown:
        raise ScimError(400, f"unknown schema '{unknown[0]}' in 'schemas'", "invalidValue")
