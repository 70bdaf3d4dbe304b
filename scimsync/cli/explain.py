"""`scimsync explain USER`: why a person has (or has not) access, and what `plan` does for them.

Read-only: the same reads and the same plan as `scimsync plan` (``api.explain``). The JSON
form below is stable and documented in the README (format_version 1).
"""

from __future__ import annotations

import json
from typing import Any

import click

from scimsync import api, render
from scimsync.cli.app import EXIT_ERROR, State, cli, pass_state, targets_option
from scimsync.engine.plan import Operation, Plan, TargetPlan, to_dict
from scimsync.errors import ScimsyncError
from scimsync.explain import Explanation, Person, TargetAnswer
from scimsync.secrets import redact

FORMAT_VERSION = 1


@cli.command()
@click.argument("user")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help="Output format.")
@targets_option
@pass_state
def explain(state: State, user: str, fmt: str, targets: tuple[str, ...]) -> None:
    """Explain why USER has or lacks access on each target, and what `plan` would do for them.

    USER is a source user's username, email or id, or a target account's username.
    Read-only: the same reads and the same plan as `scimsync plan`.
    """
    config = state.config()
    with render.progress(state.consoles) as progress:
        result = api.explain(config, user, targets=targets, progress=progress)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if not result.people:
        raise ScimsyncError(result.not_found())
    if fmt == "json":
        click.echo(json.dumps(explanation_json(result), indent=2))
    else:
        click.echo("\n".join(explanation_lines(result)))
    for error in result.errors:
        click.echo(redact(f"error: {error}"), err=True)
    if result.errors:
        raise click.exceptions.Exit(EXIT_ERROR)


# --- JSON -----------------------------------------------------------------------------


def explanation_json(e: Explanation) -> dict[str, Any]:
    """Return the stable JSON form of an explanation."""
    return {"format_version": FORMAT_VERSION, "query": e.query, "people": [_person(p) for p in e.people]}


def _person(p: Person) -> dict[str, Any]:
    u, s = p.user, p.scope
    return {
        "source_user": None
        if u is None
        else {
            "id": u.id,
            "username": u.username,
            "email": u.email,
            "display_name": u.display_name,
            "active": u.active,
            "groups": list(u.groups),
        },
        "scope": {
            "in_source": s.in_source,
            "in_scope": s.in_scope,
            "reason": s.reason,
            "include": None if s.include is None else {"glob": s.include[0], "group": s.include[1]},
            "exclude": None if s.exclude is None else {"glob": s.exclude[0], "value": s.exclude[1]},
        },
        "targets": [_target(t) for t in p.targets],
    }


def _target(t: TargetAnswer) -> dict[str, Any]:
    d, facts = t.mapped, t.account
    a = facts.account if facts else None
    return {
        "target": t.target,
        "type": t.type,
        "summary": t.summary,
        "error": t.error,
        "planned": t.planned,
        "mapped": None
        if d is None
        else {"username": d.username, "email": d.email, "display_name": d.display_name, "active": d.active},
        "account": None
        if a is None or facts is None
        else {
            "id": a.id,
            "username": a.username,
            "email": a.email,
            "display_name": a.display_name,
            "active": a.active,
            "groups": sorted(a.groups),
            "owned": facts.owned,
            "ownership": facts.ownership,
            "protected_by": facts.protected_by,
            "manageable": a.manageable,
        },
        "match": {
            "key": t.match_key,
            "reason": t.match_reason,
            "tried": [{"key": m.key, "value": m.value, "accounts": list(m.accounts)} for m in t.tried],
        },
        "groups": [
            {
                "group": g.group,
                "by": g.by,
                "privileged": g.privileged,
                "privileged_ok": g.privileged_ok,
                "member": g.member,
            }
            for g in t.grants
        ],
        "rules": [
            {
                "rule": r.rule,
                "source_groups": list(r.source_groups),
                "gives": list(r.gives),
                "privileged": r.privileged,
            }
            for r in t.rules
        ],
        "operations": operations_json(t.target, t.type, t.operations),
        "creates_groups": operations_json(t.target, t.type, t.creates_groups),
        "notices": [{"account": n.account, "kind": n.kind, "message": n.message} for n in t.notices],
        "collisions": [
            {"field": c.field, "value": c.value, "source_users": list(c.source_users)} for c in t.collisions
        ],
        "guards": [
            {
                "guard": g.guard,
                "count": g.count,
                "limit": g.limit,
                "message": g.message,
                "counts_person": mine,
            }
            for g, mine in t.guards
        ],
    }


def operations_json(target: str, kind: str, ops: tuple[Operation, ...]) -> list[dict[str, Any]]:
    """Return operations exactly as `plan --format json` writes them (the plan's own JSON form)."""
    plan = Plan(targets=(TargetPlan(target=target, type=kind, operations=ops),))
    operations: list[dict[str, Any]] = to_dict(plan)["targets"][0]["operations"]
    return operations


# --- text -----------------------------------------------------------------------------


def explanation_lines(e: Explanation) -> list[str]:
    """Return the explanation as text: per person, the scope, then per target what and why."""
    lines: list[str] = []
    for p in e.people:
        if lines:
            lines.append("")
        u = p.user
        if u is None:
            lines.append(f"{e.query}: not in the source")
        else:
            state = "active" if u.active else "INACTIVE"
            lines.append(f"{u.username}: source user {u.id} <{u.email}>, {state}")
            lines.append(f"  source groups: {', '.join(u.groups) or '(none)'}")
            lines.append(f"  scope: {p.scope.reason}")
        for t in p.targets:
            lines += _target_lines(t)
    return lines


def _target_lines(t: TargetAnswer) -> list[str]:
    lines = [f"  {t.target} ({t.type}): {t.summary}"]
    if t.error:
        return lines
    if t.account is not None:
        a = t.account.account
        active = "active" if a.active else "inactive"
        lines.append(f"    account: {a.username} ({a.id}), {active}; {t.account.ownership}")
        if t.account.protected_by:
            lines.append(
                f"    protected: '{a.username}' matches policy.protected_users '{t.account.protected_by}'"
            )
    elif t.mapped is not None:
        lines.append(f"    account: none (the mapping gives username '{t.mapped.username}')")
    if t.match_reason:
        lines.append(f"    match: {t.match_reason}")
    if t.tried:
        tried = "; ".join(f"{m.key} '{m.value}' -> {', '.join(m.accounts) or 'no account'}" for m in t.tried)
        lines.append(f"    match keys in order: {tried}")
    if t.rules:
        lines.append(
            "    groups"
            + ("" if t.planned else " (what the rules would give, were the person in scope)")
            + ":"
        )
    for r in t.rules:
        if r.gives or r.source_groups:
            via = f" via {', '.join(r.source_groups)}" if r.source_groups else ""
            lines.append(f"      {r.rule}{via} -> {', '.join(r.gives) or '(unknown: the mapping failed)'}")
        else:
            lines.append(f"      {r.rule}: does not apply (no source group of this person matches)")
    for g in t.grants:
        if g.privileged:
            ok = (
                "allowed by a rule with privileged: true"
                if g.privileged_ok
                else ("needs a rule with privileged: true (safety guard privileged_group)")
            )
            lines.append(f"      '{g.group}' is a privileged group: {ok}")
    if t.operations or t.creates_groups:
        lines.append("    plan:")
        lines += [f"      {op.kind.value} {op.account}: {render.detail(op)}" for op in t.creates_groups]
        lines += [f"      {op.kind.value} {op.account}: {render.detail(op)}" for op in t.operations]
    lines += [f"    note: {n.message}" for n in t.notices]
    lines += [
        f"    collision on {c.field} '{c.value}': {', '.join(c.source_users)} (neither created nor changed)"
        for c in t.collisions
    ]
    lines += [f"    safety guard: {g.message}" for g, _ in t.guards]
    return lines
