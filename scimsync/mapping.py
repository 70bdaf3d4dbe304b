"""Sandboxed Jinja2 templates and group rules: source user -> desired target account.

Pure: no I/O. Templates are compiled once per target; an undefined name is an
error, never an empty string (SPEC §3).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from scimsync.errors import ScimsyncError
from scimsync.models import (
    DesiredAccount,
    Group,
    GroupGrant,
    SourceDirectory,
    User,
    glob_match,
    key,
)
from scimsync.templates import RENDER_ERRORS, Renderer, compile_with_glob

if TYPE_CHECKING:
    from scimsync.config import Config, GroupRule


class MappingError(ScimsyncError):
    """A template failed for one source user on one target."""

    def __init__(self, target: str, where: str, user: User, cause: str) -> None:
        self.target = target
        self.where = where
        self.user = user
        self.cause = cause
        super().__init__(f"target {target}: {where} for source user '{user.id}' ({user.username}): {cause}")


@dataclass(frozen=True)
class _To:
    """One compiled ``to`` of a group rule; ``constant`` when it reads no variable at all."""

    where: str  # config key path
    template: Renderer
    constant: bool
    memory: str  # "from -> to": the state file remembers what the rule produced under it
    glob: str | None  # every name the template can render fits it (None: unknown)


@dataclass(frozen=True)
class _Rule:
    """One compiled group rule; ``number`` is 1-based as people count."""

    number: int
    pattern: str
    privileged: bool
    to: tuple[_To, ...]
    # glob_match(name, pattern) compiled once: fnmatchcase of the lower-cased name.
    _match: Callable[[str], re.Match[str] | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_match", re.compile(fnmatch.translate(key(self.pattern))).match)

    @cached_property
    def reason(self) -> str:
        """Describe the rule in a grant ("rule 2 (from: atlassian-jira-*)")."""
        return f"rule {self.number} (from: {self.pattern})"

    def matches(self, group_name: str) -> bool:
        """Tell whether a source group name matches the rule's glob, ignoring case."""
        return self._match(key(group_name)) is not None


class TargetMapper:
    """Turn source users into the accounts one target should have."""

    def __init__(self, target: str, config: Config) -> None:
        settings = config.targets[target]
        self.target = target
        self.owner_group = config.policy.owner_group
        self.default_groups = tuple(settings.default_groups)
        # The same for every user: built once (frozen values, shared by the desired accounts).
        self._default_grants = tuple(GroupGrant(g, "default_groups") for g in self.default_groups)
        self._fields: dict[str, tuple[str, Renderer]] = {}
        for name in ("username", "email", "display_name"):
            override = getattr(settings.mapping, name)
            where = f"targets.{target}.mapping.{name}" if override is not None else f"mapping.{name}"
            source = override if override is not None else getattr(config.mapping, name)
            self._fields[name] = (where, compile_with_glob(source, where=where)[0])
        self._rules = tuple(self._compile_rule(i, rule) for i, rule in enumerate(settings.groups))

    def _compile_rule(self, index: int, rule: GroupRule) -> _Rule:
        to = []
        for j, source in enumerate(rule.to):
            where = f"targets.{self.target}.groups[{index}].to[{j}]"
            template, names, glob = compile_with_glob(source, where=where)
            # A template of no literal text at all (`{{ group.name }}`) could name any group:
            # trust from memory only the names that fit the rule's own `from`.
            glob = rule.from_ if glob == "*" else glob
            to.append(_To(where, template, not names, f"{rule.from_} -> {source}", glob))
        return _Rule(index + 1, rule.from_, rule.privileged, tuple(to))

    def desired(self, user: User, groups: Mapping[str, Group]) -> DesiredAccount:
        """Render the account ``user`` should have; ``groups`` maps casefold names to groups."""
        context = {"user": user_context(user)}
        values = {
            name: self._render(where, tpl, context, user) for name, (where, tpl) in self._fields.items()
        }
        # An empty email is allowed: such a person is synced but not created (SPEC §6).
        if not values["username"]:
            raise MappingError(self.target, self._fields["username"][0], user, "rendered an empty username")
        grants = [*self._default_grants, *self._rule_grants(user, context, groups)]
        return DesiredAccount(
            source_id=user.id,
            source_username=user.username,
            username=values["username"],
            email=values["email"],
            display_name=values["display_name"] or values["username"],
            active=user.active,
            grants=merge_grants(grants),
        )

    def _rule_grants(
        self, user: User, context: Mapping[str, Any], groups: Mapping[str, Group]
    ) -> list[GroupGrant]:
        grants = []
        for rule in self._rules:
            for group_name in filter(rule.matches, user.groups):
                group = groups.get(key(group_name))
                group_context = {"name": group_name, "id": group.id if group else group_name}
                for to in rule.to:
                    name = self._render(to.where, to.template, {**context, "group": group_context}, user)
                    if not name:
                        raise MappingError(self.target, to.where, user, "rendered an empty group name")
                    memory = None if to.constant else to.memory
                    grants.append(GroupGrant(name, rule.reason, rule.privileged, memory))
        return grants

    def _templated(self) -> dict[str, _To]:
        """Return every templated ``to`` of this target's rules by its memory key."""
        return {to.memory: to for rule in self._rules for to in rule.to if not to.constant}

    def templated_globs(self) -> tuple[str, ...]:
        """Return the name patterns of the templated ``to``s: the shape of every group they can name."""
        return tuple(to.glob for to in self._templated().values() if to.glob)

    def remembered(
        self, memory: Mapping[str, Iterable[str]], privileged: Iterable[str]
    ) -> dict[str, set[str]]:
        """Return the groups remembered from earlier runs that the rules could still produce.

        A group counts only while its rule (the same ``from`` and ``to``) is configured, its
        name fits the rule's pattern, and it is not a privileged group: an edited state file
        or a narrowed rule never makes a human-managed or admin group managed.
        """
        rules = self._templated()
        barred = {key(g) for g in privileged}
        return {
            k: {g for g in groups if key(g) not in barred and glob_match(g, rules[k].glob or "")}
            for k, groups in memory.items()
            if k in rules and rules[k].glob
        }

    def produced(
        self, source_groups: Iterable[str], desired: Iterable[DesiredAccount]
    ) -> dict[str, set[str]]:
        """Return, per templated ``to``, the groups it produces from the source today."""
        found: dict[str, set[str]] = {k: set() for k in self._templated()}
        for group_name in source_groups:
            context = {"group": {"name": group_name}}
            for rule in self._rules:
                if rule.matches(group_name):
                    for to in rule.to:
                        if not to.constant and (n := _render_name_only(to.template, context)):
                            found[to.memory].add(n)
        for d in desired:
            for grant in d.grants:
                if grant.template is not None:
                    found[grant.template].add(grant.group)
        return found

    def managed_groups(self, source_groups: Iterable[str]) -> frozenset[str]:
        """Return every group this target's rules can name, plus the owner group.

        A constant ``to`` (no variable at all) is managed whether or not a source group
        matches its rule today: when the IdP group is disbanded, its members must still
        be removed from the target group rather than keep access forever. A templated
        ``to`` is rendered for each matching source group; one that uses ``user`` or
        ``group.id`` cannot be rendered from a group name alone and is left out here:
        the groups it names are only known from ``desired()``, so callers add the
        grants of the desired accounts too.
        """
        names = [*self.default_groups, self.owner_group]
        for rule in self._rules:
            names.extend(n for to in rule.to if to.constant and (n := _render_name_only(to.template, {})))
        for group_name in source_groups:
            context = {"group": {"name": group_name}}
            for rule in self._rules:
                if rule.matches(group_name):
                    templated = (to.template for to in rule.to if not to.constant)
                    names.extend(n for tpl in templated if (n := _render_name_only(tpl, context)))
        return frozenset(_dedupe(names))

    def _render(self, where: str, tpl: Renderer, context: Mapping[str, Any], user: User) -> str:
        try:
            return _render_text(tpl, context)
        except RENDER_ERRORS as exc:
            raise MappingError(self.target, where, user, str(exc)) from None


def _render_text(tpl: Renderer, context: Mapping[str, Any]) -> str:
    return tpl.render(context).strip()


def _render_name_only(tpl: Renderer, context: Mapping[str, Any]) -> str:
    try:
        return _render_text(tpl, context)
    except RENDER_ERRORS:
        # The template needs more than the group name; desired() will name its groups.
        return ""


def user_context(user: User) -> dict[str, Any]:
    """Return the ``user`` template variable for a source user (SPEC §3)."""
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "display_name": user.display_name,
        "active": user.active,
        "groups": list(user.groups),
        "attributes": dict(user.attributes),
    }


def merge_grants(grants: Iterable[GroupGrant]) -> tuple[GroupGrant, ...]:
    """Merge grants of the same group (case-insensitive): any privileged rule allows it."""
    merged: dict[str, GroupGrant] = {}
    for grant in grants:
        seen = merged.get(key(grant.group))
        if seen is None:
            merged[key(grant.group)] = grant
        elif grant.reason not in seen.reason.split("; "):
            reason = f"{seen.reason}; {grant.reason}"
            merged[key(grant.group)] = GroupGrant(
                seen.group, reason, seen.privileged_ok or grant.privileged_ok, seen.template or grant.template
            )
    return tuple(merged.values())


def _dedupe(names: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(key(name), name)
    return list(seen.values())


def in_scope(
    directory: SourceDirectory, *, include_groups: Sequence[str], exclude_users: Sequence[str]
) -> tuple[User, ...]:
    """Return the source users the config scopes in; inactive users stay (to be deprovisioned)."""

    def included(user: User) -> bool:
        if not include_groups:
            return True
        return any(glob_match(g, p) for g in user.groups for p in include_groups)

    def excluded(user: User) -> bool:
        return any(glob_match(v, p) for v in (user.username, user.email) for p in exclude_users)

    return tuple(u for u in directory.users if included(u) and not excluded(u))
