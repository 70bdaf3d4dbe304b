"""LDAP entries -> the source model (SPEC §4): fields, statuses, attributes, nested groups.

No I/O: ``LdapSource`` searches, this module turns what the searches returned into users
and groups, and refuses what would make a wrong directory (an active user without a
username, two users with one id, two groups with one name).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from scimsync.config import LdapSourceConfig
from scimsync.errors import ConnectorError
from scimsync.models import Group, SourceDirectory, User, key
from scimsync.sources.ldap_conn import Entry
from scimsync.sources.ldap_values import account_disabled, dn_key, flatten, rendered, text

# Credentials a bind DN may be allowed to read: never copied into ``user.attributes``.
SECRET_ATTRIBUTES = frozenset(
    {"userpassword", "unicodepwd", "sambantpassword", "sambalmpassword", "supplementalcredentials"}
)


@dataclass(frozen=True)
class Flavor:
    """What differs between directory products: default filters, attributes and status rule."""

    name: str
    user_filter: str
    group_filter: str
    fields: Mapping[str, str]  # model field -> LDAP attribute
    group_id: str
    account_control: bool  # userAccountControl bit 2 disables an account (AD)


OPENLDAP = Flavor(
    name="OpenLDAP",
    user_filter="(objectClass=inetOrgPerson)",
    group_filter="(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
    fields={
        "id": "entryUUID",
        "username": "uid",
        "email": "mail",
        "first_name": "givenName",
        "last_name": "sn",
        "display_name": "displayName",
    },
    group_id="entryUUID",
    account_control=False,
)
# AD: email is `mail` only. userPrincipalName often looks like an address without being one
# that receives mail (user@corp.local): map it with `attributes: {userPrincipalName: email}`.
ACTIVE_DIRECTORY = Flavor(
    name="Active Directory",
    user_filter="(&(objectCategory=person)(objectClass=user))",
    group_filter="(objectClass=group)",
    fields={**OPENLDAP.fields, "id": "objectGUID", "username": "sAMAccountName"},
    group_id="objectGUID",
    account_control=True,
)
FLAVORS = {"openldap": OPENLDAP, "active_directory": ACTIVE_DIRECTORY}


class Layout:
    """The effective reading plan: a flavor's defaults with the config's overrides."""

    def __init__(self, system: str, flavor: Flavor, config: LdapSourceConfig) -> None:
        self.system = system
        self.flavor = flavor
        self.fields = {**flavor.fields, **{field: attr for attr, field in config.attributes.items()}}
        self.user_filter = config.user_filter or flavor.user_filter
        self.group_filter = config.group_filter or flavor.group_filter
        self.disabled_filter = (
            f"(&{self.user_filter}{config.disabled_filter})" if config.disabled_filter else None
        )
        self.member_attributes = (
            (config.group_member_attribute,) if config.group_member_attribute else ("member", "uniqueMember")
        )
        # "*" is every user attribute; entryUUID is operational, so it is named as well.
        self.user_attributes = list(dict.fromkeys(["*", *self.fields.values()]))
        self.group_attributes = ["cn", flavor.group_id, *self.member_attributes]
        self._mapped = {a.lower() for a in self.fields.values()}

    def fail(self, what: str, cause: str) -> NoReturn:
        """Raise the error naming this source, the entry and the cause."""
        raise ConnectorError(self.system, what, cause)

    def user(self, entry: Entry, *, disabled: bool) -> User:
        """Map one user entry; ``disabled`` when it matched disabled_filter."""
        values = {k.lower(): v for k, v in entry.raw.items()}
        what = f"user {entry.dn}"
        active = not disabled and not self._account_disabled(what, values)
        field = {name: self._field(what, values, name) for name in self.fields}
        if not field["id"]:
            self.fail(what, f"has no {self.fields['id']} (its id): can the bind DN read it?")
        if active and not field["username"]:
            self.fail(what, f"is active but has no {self.fields['username']} (its username)")
        first, last = field["first_name"], field["last_name"]
        cn = values.get("cn") or [b""]
        return User(
            id=field["id"],
            username=field["username"],
            email=field["email"],
            first_name=first,
            last_name=last,
            display_name=_display_name(field["display_name"], first, last, text("cn", cn[0]).strip()),
            active=active,
            attributes={
                name: rendered(name, vals)
                for name, vals in entry.raw.items()
                if vals and name.lower() not in self._mapped and name.lower() not in SECRET_ATTRIBUTES
            },
        )

    def _field(self, what: str, values: Mapping[str, Sequence[bytes]], name: str) -> str:
        attribute = self.fields[name]
        found = values.get(attribute.lower()) or []
        if len(found) > 1 and name in ("id", "username"):
            self.fail(what, f"has {len(found)} values of {attribute} ({name} must be one value)")
        # Other fields take the first value: a second mail is an alias, a second cn a spelling.
        return text(attribute, found[0]).strip() if found else ""

    def _account_disabled(self, what: str, values: Mapping[str, Sequence[bytes]]) -> bool:
        if not self.flavor.account_control:
            return False
        disabled = account_disabled(values.get("useraccountcontrol") or [])
        if disabled is None:
            # Read as active, a disabled account would be created or kept: refuse instead.
            self.fail(what, "has no readable userAccountControl: can the bind DN read it?")
        return disabled

    def group(self, entry: Entry) -> tuple[str, str]:
        """Return the id and the name (its cn) of one group entry."""
        values = {k.lower(): v for k, v in entry.raw.items()}
        what = f"group {entry.dn}"
        ids, names = values.get(self.flavor.group_id.lower()), values.get("cn")
        if not ids:
            self.fail(what, f"has no {self.flavor.group_id} (its id): can the bind DN read it?")
        if not names:
            self.fail(what, "has no cn (its name)")
        return text(self.flavor.group_id, ids[0]), text("cn", names[0])


def _display_name(display: str, first: str, last: str, cn: str) -> str:
    # displayName; else given name and surname when both exist (SPEC §3); else the cn, which
    # names the person where one of the two is missing (cn: Ghost Leaver, sn: Leaver).
    both = f"{first} {last}" if first and last else ""
    return display or both or cn or f"{first} {last}".strip()


def assemble(
    layout: Layout,
    user_entries: Sequence[Entry],
    disabled: Collection[str],
    group_entries: Sequence[Entry],
    members: Mapping[str, Sequence[str]],
) -> SourceDirectory:
    """Build the directory: users with every group they are in, directly or nested (SPEC §4).

    ``disabled`` and the keys of ``members`` are DN keys (``dn_key``); ``members`` maps a
    group to the DN keys of its direct members. Members that are neither a user read nor a
    group read (a service account, a deleted entry) are left out.
    """
    user_keys = [dn_key(e.dn) for e in user_entries]
    users = [layout.user(e, disabled=k in disabled) for e, k in zip(user_entries, user_keys, strict=True)]
    _unique_ids(layout, user_entries, users)
    groups = _named_groups(layout, group_entries)
    nested = flatten({k: members.get(k, ()) for k in groups})
    position = {k: i for i, k in enumerate(user_keys)}
    names: list[list[str]] = [[] for _ in users]
    result: list[Group] = []
    for group_key, (group_id, name) in groups.items():
        inside = sorted(position[m] for m in nested[group_key] if m in position)
        for i in inside:
            names[i].append(name)
        result.append(Group(id=group_id, name=name, member_ids=tuple(users[i].id for i in inside)))
    return SourceDirectory(
        users=tuple(
            dataclasses.replace(u, groups=tuple(sorted(n, key=key)))
            for u, n in zip(users, names, strict=True)
        ),
        groups=tuple(result),
    )


def _unique_ids(layout: Layout, entries: Sequence[Entry], users: Sequence[User]) -> None:
    first: dict[str, str] = {}
    for entry, user in zip(entries, users, strict=True):
        if user.id in first:
            layout.fail(f"user {entry.dn}", f"has the id '{user.id}' of {first[user.id]}")
        first[user.id] = entry.dn


def _named_groups(layout: Layout, entries: Sequence[Entry]) -> dict[str, tuple[str, str]]:
    """Map each group's DN key to its (id, name); two groups of one name are an error."""
    groups: dict[str, tuple[str, str]] = {}
    by_name: dict[str, str] = {}
    for entry in entries:
        group_id, name = layout.group(entry)
        if key(name) in by_name:
            # Rules and scoping match names (SPEC §4): two groups of one name would merge.
            layout.fail(
                f"group {entry.dn}",
                f"has the name '{name}' of {by_name[key(name)]}: narrow group_filter or base_dn",
            )
        by_name[key(name)] = entry.dn
        groups[dn_key(entry.dn)] = (group_id, name)
    return groups
