"""The library facade: load a config, plan, apply, check. The CLI is a thin shell over it."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from scimsync import runstats
from scimsync.audit import AuditLog
from scimsync.config import Config, config_digest, load_config
from scimsync.engine.apply import ApplyOptions, ApplyResult, Recorder, apply_plan
from scimsync.engine.diff import DiffPolicy, diff
from scimsync.engine.guards import GuardLimits, check_guards, check_saved_plan
from scimsync.engine.plan import Notice, Plan, TargetPlan, from_dict, summarize, to_dict
from scimsync.errors import ConfigError, ConnectorError, GuardError, PlanFileError, ScimsyncError
from scimsync.explain import Explanation, explain_planning
from scimsync.mapping import MappingError, TargetMapper, in_scope
from scimsync.models import Capabilities, DesiredAccount, Group, SourceDirectory, TargetDirectory, User, key
from scimsync.revert import build_revert
from scimsync.sources import build_source, implemented_source_types
from scimsync.state import TargetState, load_state, save_state
from scimsync.targets import build_target, implemented_target_types
from scimsync.targets.base import Progress, Target, no_progress

__all__ = ["apply", "check", "explain", "load", "load_plan", "make_plan", "plan_reads", "revert", "save_plan"]

log = logging.getLogger(__name__)


def load(path: str | Path) -> Config:
    """Load and validate a config file (SPEC §3), including that its connector types exist."""
    config = load_config(path)
    problems = []
    sources, targets = implemented_source_types(), implemented_target_types()
    if config.source.type not in sources:
        problems.append(
            f"source.type: '{config.source.type}' is not available in this version "
            f"(available: {', '.join(sorted(sources))})"
        )
    available = ", ".join(sorted(targets))
    problems += [
        f"targets.{name}.type: '{t.type}' is not available in this version (available: {available})"
        for name, t in config.targets.items()
        if t.type not in targets
    ]
    if problems:
        raise ConfigError(problems, path=str(path))
    return config


def select_targets(config: Config, names: Sequence[str]) -> list[str]:
    """Return the targets to work on: all, or those named by --target."""
    if not names:
        return list(config.targets)
    unknown = [n for n in names if n not in config.targets]
    if unknown:
        known = ", ".join(config.targets)
        raise ScimsyncError(f"--target {unknown[0]}: no such target (targets: {known})")
    return list(dict.fromkeys(names))


@dataclasses.dataclass(frozen=True)
class TargetRun:
    """One target's plan and what it was computed from (``actual`` is None when it could not be read)."""

    plan: TargetPlan
    desired: tuple[DesiredAccount, ...] = ()
    warnings: tuple[str, ...] = ()
    actual: TargetDirectory | None = None
    policy: DiffPolicy | None = None
    caps: Capabilities | None = None
    links: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Planning:
    """A plan with the reads it was computed from: `explain` answers from these, so it agrees with `plan`."""

    plan: Plan
    directory: SourceDirectory
    in_scope: tuple[User, ...]
    targets: Mapping[str, TargetRun]


def make_plan(
    config: Config,
    *,
    targets: Sequence[str] = (),
    allow_deactivations: int | None = None,
    progress: Progress = no_progress,
) -> Plan:
    """Read the source and the targets, diff them, and check the safety guards. Never writes."""
    planning = plan_reads(config, targets=targets, allow_deactivations=allow_deactivations, progress=progress)
    return planning.plan


def explain(
    config: Config, query: str, *, targets: Sequence[str] = (), progress: Progress = no_progress
) -> Explanation:
    """Say why one person (source user or target account) is planned as they are. Never writes."""
    return explain_planning(config, plan_reads(config, targets=targets, progress=progress), query)


def plan_reads(
    config: Config,
    *,
    targets: Sequence[str] = (),
    allow_deactivations: int | None = None,
    progress: Progress = no_progress,
) -> Planning:
    """Plan as ``make_plan`` does, and keep the reads and the desired accounts it used."""
    names = select_targets(config, targets)
    # Without an audit log nothing was ever applied here: a missing state file is expected.
    first_run = config.audit_log is not None and not config.audit_log.exists()
    state, warning = load_state(config.state_file, first_run=first_run)
    warnings = [warning] if warning else []
    for name in names:
        url = state.target(name).url
        if url and url != config.targets[name].url:
            # A state file copied from staging, or a target re-pointed at another instance:
            # its account keys mean nothing there.
            warnings.append(
                f"state file: target '{name}' was recorded for {url}, not {config.targets[name].url}; "
                "its links are ignored and matching falls back to username and email"
            )
            state = state.with_target(name, TargetState())
    source = build_source(config)
    try:
        with runstats.current().timed("read source") as took:
            directory = source.read(progress=progress)
    finally:
        source.close()
    log.info(
        "read source %s: %d users, %d groups in %.1f s",
        config.source.type,
        len(directory.users),
        len(directory.groups),
        took.seconds,
        extra={
            "fields": {
                "phase": "read source",
                "users": len(directory.users),
                "seconds": round(took.seconds, 3),
            }
        },
    )
    users = in_scope(
        directory, include_groups=config.source.include_groups, exclude_users=config.source.exclude_users
    )
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        planned = list(
            pool.map(lambda n: _plan_target(config, n, users, directory, state.target(n), progress), names)
        )
    target_plans = tuple(run.plan for run in planned)
    desired = {run.plan.target: run.desired for run in planned}
    warnings += [w for run in planned for w in run.warnings]
    active = sum(1 for u in users if u.active)
    guards = check_guards(
        target_plans, desired, active_source_users=active, limits=_limits(config, allow_deactivations)
    )
    plan = Plan(
        targets=target_plans,
        config_digest=config_digest(config),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source=config.source.type,
        source_users=active,
        guards=guards,
        warnings=tuple(warnings),
        allow_deactivations=allow_deactivations,
    )
    return Planning(plan, directory, users, {run.plan.target: run for run in planned})


def _limits(config: Config, allow_deactivations: int | None) -> GuardLimits:
    return GuardLimits(
        max_deactivations=config.policy.max_deactivations,
        allow_deactivations=allow_deactivations,
        privileged_groups=frozenset(config.policy.privileged_groups),
    )


def _plan_target(
    config: Config,
    name: str,
    users: Sequence[User],
    directory: SourceDirectory,
    remembered: TargetState,
    progress: Progress,
) -> TargetRun:
    """Plan one target; a failure here is reported on that target and never stops the others."""
    settings = config.targets[name]
    try:
        mapper = TargetMapper(name, config)
        source_groups = [g.name for g in directory.groups]
        earlier = mapper.remembered(remembered.rule_groups, config.policy.privileged_groups)
        # What the rules name without rendering anyone: known before the mapping, so the
        # target is read while the users are mapped (the read waits on the network, the
        # mapping on the CPU). A rule naming groups from `user` adds more: read again then.
        early = mapper.managed_groups(source_groups) | {g for groups in earlier.values() for g in groups}
        mapped: Future[list[tuple[str, str]]] = Future()
        with ThreadPoolExecutor(max_workers=1) as pool:
            reading = pool.submit(_read_target, name, config, early, _Awaited(mapped), progress)
            try:
                desired, skipped = _desired(mapper, users, directory)
            except BaseException as exc:
                mapped.set_exception(exc)
                raise
            mapped.set_result([(d.username, d.email) for d in desired])
            caps, actual = reading.result()
        # Rule templates that use `user` only resolve per user: add what the users got.
        # A group a templated rule produced before stays managed (SPEC §5): the state
        # file remembers it, so that its last members are removed.
        produced = mapper.produced(source_groups, desired)
        managed = early | {g for d in desired for g in d.groups}
        if managed != early:
            caps, actual = _read_target(name, config, managed, mapped.result(), progress)
    except (ConnectorError, MappingError) as exc:
        return TargetRun(TargetPlan(target=name, type=settings.type, error=str(exc)))
    policy = DiffPolicy(
        match=tuple(config.match),
        deprovision=config.policy.deprovision,
        protected_users=tuple(config.policy.protected_users),
        owner_group=config.policy.owner_group,
        create_groups=config.policy.create_groups,
        sync_fields=tuple(config.policy.sync_fields),
        managed_groups=managed,
    )
    planned = diff(name, settings.type, desired, actual, policy, caps, remembered.links)
    counts = summarize(planned.operations)
    log.info(
        "plan %s: %s, %d groups to create",
        name,
        counts.line().removeprefix("Plan: ").rstrip("."),
        counts.groups,
        extra={"fields": {"phase": "plan", "target": name, "operations": len(planned.operations)}},
    )
    existing = {caps.name_key(g) for g in actual.groups}
    rule_groups = {
        t: tuple(sorted(now | {g for g in earlier.get(t, ()) if caps.name_key(g) in existing}))
        for t, now in produced.items()
    }
    notices = tuple(Notice(name, u.username, "incomplete", cause) for u, cause in skipped)
    warnings = []
    if "email" in config.match and not caps.shows_email:
        # Confluence before 10.0 never shows emails (reference §2.3): say so rather than
        # let `match: [..., email]` look as if it were used there.
        warnings.append(
            f"target '{name}': matching by email is unavailable ({caps.reason} does not show emails); "
            "accounts are matched by the other keys, and email changes are not planned"
        )
    return TargetRun(
        dataclasses.replace(planned, rule_groups=rule_groups, notices=planned.notices + notices),
        desired,
        tuple(warnings),
        actual,
        policy,
        caps,
        remembered.links,
    )


class _Awaited(Iterable[tuple[str, str]]):
    """The mapped (username, email) pairs, handed to a target read before the mapping ends.

    Iterating waits for the mapping, so a target that never looks at them reads at once.
    """

    def __init__(self, mapped: Future[list[tuple[str, str]]]) -> None:
        self._mapped = mapped

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._mapped.result())


def _read_target(
    name: str,
    config: Config,
    managed: frozenset[str],
    wanted: Iterable[tuple[str, str]],
    progress: Progress,
) -> tuple[Capabilities, TargetDirectory]:
    """Read one target: its capabilities, its accounts and the members of ``managed``."""
    target = build_target(name, config.targets[name], config.http_settings())
    try:
        with runstats.current().timed(f"read target {name}") as took:
            caps = target.capabilities()
            actual = target.read(managed, progress=progress, wanted=wanted)
    finally:
        target.close()
    log.info(
        "read target %s: %d accounts in %.1f s",
        name,
        len(actual.accounts),
        took.seconds,
        extra={"fields": {"phase": "read target", "target": name, "seconds": round(took.seconds, 3)}},
    )
    return caps, actual


def _desired(
    mapper: TargetMapper, users: Sequence[User], directory: SourceDirectory
) -> tuple[tuple[DesiredAccount, ...], list[tuple[User, str]]]:
    """Map every user; an INACTIVE user whose templates fail is skipped with a notice.

    One incomplete leaver record must not stop everyone's sync (SPEC §6). An active user
    whose username cannot be rendered still fails the target: skipping them would make
    their account look like a leaver's.
    """
    groups: Mapping[str, Group] = {key(g.name): g for g in directory.groups}
    desired, skipped = [], []
    for user in users:
        try:
            desired.append(mapper.desired(user, groups))
        except MappingError as exc:
            if user.active:
                raise
            skipped.append((user, f"inactive source user skipped: {exc.where}: {exc.cause}"))
    return tuple(desired), skipped


def guard_error(plan: Plan) -> GuardError:
    """Build the exit-3 error naming each guard, its count and its limit."""
    lines = [f"safety guard: {g.message}" for g in plan.guards]
    lines.append("nothing was written")
    return GuardError("\n".join(lines))


def revert(
    config: Config,
    audit_log: Path,
    *,
    run: str | None = None,
    targets: Sequence[str] = (),
    progress: Progress = no_progress,
) -> Plan:
    """Build the plan that undoes one run of the audit log (None: the last run). Never writes."""
    names = select_targets(config, targets) if targets else ()  # none named: every target the run wrote to
    return build_revert(config, audit_log, run_id=run, targets=names, progress=progress)


def apply(
    config: Config,
    plan: Plan,
    *,
    recheck: bool,
    progress: Progress = no_progress,
    stop: threading.Event | None = None,
    recorder: Recorder | None = None,
) -> ApplyResult:
    """Carry out a plan. ``recheck`` re-reads each account first (saved plans, SPEC §6)."""
    if plan.guards:
        raise guard_error(plan)
    names = [tp.target for tp in plan.targets if tp.error is None and tp.operations]
    if recorder is None and config.audit_log is not None:
        audit = AuditLog(
            config.audit_log,
            run_id=runstats.audit_run_id(),  # the CLI's run id: joins it with the logs
            urls={name: t.url for name, t in config.targets.items()},  # revert checks the instance
        )
        audit.open()
        recorder = audit
    targets: dict[str, Target] = {
        n: build_target(n, config.targets[n], config.http_settings()) for n in names
    }
    options = ApplyOptions(
        owner_group=config.policy.owner_group,
        protected_users=tuple(config.policy.protected_users),
        concurrency=config.http.concurrency,
        recheck=recheck,
        failures_exceeded=config.policy.write_failures_exceeded,
        budget_text=str(config.policy.max_write_failures),
        recorder=runstats.LoggedRecorder(recorder),  # -v: one line per operation
        progress=progress,
        stop=stop or threading.Event(),
    )
    try:
        with runstats.current().timed("apply"):
            result = apply_plan(plan, targets, options)
    finally:
        for target in targets.values():
            target.close()
    remember(config, plan, result)
    return result


def remember(config: Config, plan: Plan, result: ApplyResult | None = None) -> None:
    """Keep the plan's links and rule groups, and the accounts created, in the state file (SPEC §5)."""
    if config.state_file is None:
        return
    state, _ = load_state(config.state_file)
    created = {r.target: r.created for r in result.targets} if result else {}
    for tp in plan.targets:
        if tp.error is not None:
            continue
        url = config.targets[tp.target].url
        before = state.target(tp.target) if state.target(tp.target).url in ("", url) else TargetState()
        # Merged, not replaced: an older saved plan must not forget what a newer run learnt,
        # nor a person out of scope for a while lose their link.
        links = {k: v for k, v in before.links.items() if k not in tp.unlinked}
        links |= {**tp.links, **created.get(tp.target, {})}
        state = state.with_target(tp.target, TargetState(links, tp.rule_groups, url))
    save_state(config.state_file, state)


def save_plan(plan: Plan, path: Path) -> None:
    """Write a plan file with mode 0600: it holds personal data."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(to_dict(plan), fh, indent=2)
        fh.write("\n")


def read_plan(path: Path) -> Plan:
    """Read a saved plan file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanFileError(f"cannot read plan file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise PlanFileError(f"plan file {path} is not JSON: {exc}") from None
    except RecursionError:
        raise PlanFileError(f"plan file {path} is not a scimsync plan: nested too deeply") from None
    if not isinstance(data, dict):
        raise PlanFileError(f"plan file {path} is not a scimsync plan")
    if "filter" in data:
        # `plan --format json --op ...` shows part of a plan: applying it would skip the rest.
        raise PlanFileError(
            f"plan file {path} is a filtered view of a plan (--op/--account), not a whole plan; "
            "save one with `scimsync plan --out FILE`"
        )
    try:
        return from_dict(data)
    except PlanFileError as exc:
        raise PlanFileError(f"plan file {path}: {exc}") from None


def load_plan(path: Path, config: Config, *, targets: Sequence[str] = ()) -> Plan:
    """Read a saved plan to apply it: refuse one made with another config; keep only ``targets``."""
    plan = read_plan(path)
    if plan.config_digest != config_digest(config):
        raise PlanFileError(
            f"plan file {path} was made with another config (or the config changed since); "
            "run `scimsync plan` again"
        )
    unknown = sorted({tp.target for tp in plan.targets} - set(config.targets))
    if unknown:
        raise PlanFileError(
            f"plan file {path} names target '{unknown[0]}', which is not in the config "
            f"(targets: {', '.join(config.targets)})"
        )
    names = select_targets(config, targets)
    kept = tuple(tp for tp in plan.targets if tp.target in names)
    recounted = check_saved_plan(
        kept, active_source_users=plan.source_users, limits=_limits(config, plan.allow_deactivations)
    )
    saved = [g for g in plan.guards if g.target in names]
    seen = {(g.guard, g.target) for g in saved}
    return dataclasses.replace(
        plan, targets=kept, guards=(*saved, *(g for g in recounted if (g.guard, g.target) not in seen))
    )


def check(config: Config, *, targets: Iterable[str] = ()) -> list[tuple[str, str, bool, str]]:
    """Make one cheap authenticated read per system; return (system, type, ok, detail) rows."""
    rows: list[tuple[str, str, bool, str]] = []
    source = build_source(config)
    rows.append(_check_one("source", config.source.type, source.check))
    source.close()
    for name in select_targets(config, list(targets)):
        target = build_target(name, config.targets[name], config.http_settings())
        rows.append(_check_one(name, config.targets[name].type, target.check))
        target.close()
    return rows


def _check_one(system: str, kind: str, probe: Callable[[], str]) -> tuple[str, str, bool, str]:
    try:
        detail = probe()
    except ConnectorError as exc:
        return (system, kind, False, exc.cause)
    return (system, kind, True, str(detail))
