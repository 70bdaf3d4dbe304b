"""The `--report FILE` summary of a run, for monitoring: what was planned and done, how long
each phase took, how many requests each system got, and the exit code.

Its JSON form is stable (``FORMAT_VERSION``); counts are per target and operation kind,
every kind and status always present, so that a dashboard never meets a missing key.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scimsync.engine.apply import ApplyResult, Status
from scimsync.engine.plan import Operation, OpKind, Plan, TargetPlan
from scimsync.runstats import RunStats
from scimsync.secrets import redact

FORMAT_VERSION = 1
COUNTS = ("planned", *(s.value for s in Status))  # planned, done, failed, stale, skipped
OUTCOMES = {0: "ok", 1: "error", 2: "changes", 3: "guard", 130: "interrupted", 143: "interrupted"}


@dataclass(frozen=True)
class RunOutcome:
    """What a command ended with: its plan and apply result (if it got that far), error, exit code."""

    command: str
    exit_code: int
    plan: Plan | None = None
    result: ApplyResult | None = None
    error: str | None = None


def build_report(stats: RunStats, outcome: RunOutcome, *, finished: float | None = None) -> dict[str, Any]:
    """Return the report of one run as a JSON-ready dict."""
    finished = time.time() if finished is None else finished
    plan, result = outcome.plan, outcome.result
    targets = plan.targets if plan is not None else ()
    applied = {tr.target: tr for tr in result.targets} if result is not None else {}
    per_target = {tp.target: _target_entry(tp, applied) for tp in targets}
    totals = Counter[str]()
    for entry in per_target.values():
        totals.update(entry["totals"])
    requests = dict.fromkeys(["source", *per_target], 0) if plan is not None else {}
    requests |= dict(sorted(stats.requests.items()))
    return {
        "format_version": FORMAT_VERSION,
        "run_id": stats.run_id,
        "command": outcome.command,
        "started": _iso(stats.started),
        "finished": _iso(finished),
        "seconds": round(finished - stats.started, 3),
        "exit_code": outcome.exit_code,
        "outcome": OUTCOMES.get(outcome.exit_code, "error"),
        "error": redact(outcome.error) if outcome.error else None,
        "totals": {c: totals[c] for c in COUNTS},
        "targets": per_target,
        "failures": _failures(targets, applied),
        "stale": result.stale if result is not None else 0,
        "guards": [
            {"guard": g.guard, "target": g.target, "count": g.count, "limit": g.limit, "message": g.message}
            for g in (plan.guards if plan is not None else ())
        ],
        "durations": {name: round(seconds, 3) for name, seconds in stats.phases.items()},
        "requests": requests,
    }


def _target_entry(tp: TargetPlan, applied: Mapping[str, Any]) -> dict[str, Any]:
    counts = {kind.value: dict.fromkeys(COUNTS, 0) for kind in OpKind}
    for op in tp.operations:
        counts[op.kind.value]["planned"] += 1
    tr = applied.get(tp.target)
    for r in tr.results if tr is not None else ():
        counts[r.op.kind.value][r.status.value] += 1
    return {
        "type": tp.type,
        "error": redact(tp.error) if tp.error else None,
        "stopped": redact(tr.stopped) if tr is not None and tr.stopped else None,
        "collisions": len(tp.collisions),
        "notices": len(tp.notices),
        "totals": {c: sum(kind[c] for kind in counts.values()) for c in COUNTS},
        "operations": counts,
    }


def _failures(targets: tuple[TargetPlan, ...], applied: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return every failure: targets not planned, targets that stopped writing, failed operations."""
    failures: list[dict[str, Any]] = []
    for tp in targets:
        if tp.error:
            failures.append(_failure(tp.target, "not planned", tp.error))
        tr = applied.get(tp.target)
        if tr is None:
            continue
        if tr.stopped:
            failures.append(_failure(tp.target, "stopped", tr.stopped))
        failures += [
            _failure(tp.target, "failed", r.message, r.op) for r in tr.results if r.status is Status.FAILED
        ]
    return failures


def _failure(target: str, status: str, message: str, op: Operation | None = None) -> dict[str, Any]:
    return {
        "target": target,
        "status": status,
        "kind": op.kind.value if op else None,
        "account": op.account if op else None,
        "group": op.group if op else None,
        "message": redact(message),
    }


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """Write the report atomically with mode 0600 (it names people's accounts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)  # also when the file was left behind with other bits
            json.dump(report, fh, indent=2)
            fh.write("\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
