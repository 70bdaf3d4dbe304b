"""Everything the user sees: plan tables, JSON, markdown, apply summaries, progress.

The only module that imports rich. Data goes to stdout; messages and progress to stderr.
"""

from __future__ import annotations

import html
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from scimsync import planview, runstats
from scimsync.engine.apply import ApplyResult, OpResult, Status
from scimsync.engine.plan import Operation, OpKind, Plan, TargetPlan, summarize, to_dict
from scimsync.errors import ScimsyncError
from scimsync.planview import SHOW_ALL, PlanFilter, Row, TargetCounts

FORMATS = ("table", "json", "markdown")

_VERB = {
    OpKind.CREATE_GROUP: "+ create group",
    OpKind.CREATE_USER: "+ create",
    OpKind.REACTIVATE_USER: "~ reactivate",
    OpKind.UPDATE_USER: "~ update",
    OpKind.ADD_MEMBER: "+ groups",
    OpKind.REMOVE_MEMBER: "- groups",
    OpKind.DEACTIVATE_USER: "- deactivate",
    OpKind.DELETE_USER: "- delete",
}
_STYLE = {"+": "green", "~": "yellow", "-": "red"}


@dataclass(frozen=True)
class Consoles:
    """The stdout console (data) and the stderr console (messages, progress)."""

    out: Console
    err: Console
    quiet: bool = False

    def on_stderr(self) -> Consoles:
        """Return consoles that print data on stderr (when stdout carries JSON, `plan --out -`)."""
        wide = None if self.err.is_terminal else 160
        out = Console(stderr=True, no_color=self.err.no_color, highlight=False, width=wide, soft_wrap=False)
        return replace(self, out=out)


def make_consoles(*, no_color: bool = False, quiet: bool = False) -> Consoles:
    """Build consoles; colour only on a terminal, never with --no-color, NO_COLOR or TERM=dumb.

    ``no_color=None`` lets rich read NO_COLOR (https://no-color.org); False would override it.
    """
    wide = None if sys.stdout.isatty() else 160
    plain = True if no_color else None
    return Consoles(
        out=Console(no_color=plain, highlight=False, width=wide, soft_wrap=False),
        err=Console(stderr=True, no_color=plain, highlight=False, soft_wrap=True),
        quiet=quiet,
    )


def detail(op: Operation) -> str:
    """Describe what an operation changes, in one line."""
    return planview.op_detail(op)


def plan_json(plan: Plan, *, only: PlanFilter = SHOW_ALL) -> str:
    """Return the plan's stable JSON form; filtered, only the operations shown and a marker."""
    return json.dumps(planview.view_dict(plan, only) if only.active else to_dict(plan), indent=2)


def summary_json(plan: Plan, *, only: PlanFilter = SHOW_ALL) -> str:
    """Return the ``--summary`` view as JSON."""
    return json.dumps(planview.summary_dict(plan, only), indent=2)


def summary_lines(plan: Plan) -> list[str]:
    """Return the closing line scripts read, and the group count after it."""
    summary = summarize(plan.operations)
    lines = [summary.line()]
    if summary.groups:
        lines.append(f"Groups: {summary.groups} to create.")
    failed = [tp.target for tp in plan.targets if tp.error]
    if failed:
        # SPEC §7: never "no changes" while a target is missing from the plan.
        lines.append(f"Not planned (could not be read): {', '.join(failed)}; see the error above.")
    elif not plan.has_changes:
        lines.append("No changes: every target matches the source.")
    return lines


def closing_lines(plan: Plan, *, only: PlanFilter = SHOW_ALL) -> list[str]:
    """Return the closing lines, then how many operations a filter hides."""
    hidden = planview.filter_line(only, plan, only.apply(plan))
    return [*summary_lines(plan), *([hidden] if hidden else [])]


def _label(row: Row) -> str:
    """Name a row: ``+ create``, ``~ reactivate, update``, ``~ groups``..."""
    kinds = row.kinds
    if set(kinds) == planview.MEMBERSHIP:
        return "~ groups"
    return ", ".join([_VERB[kinds[0]], *(_VERB[k][2:] for k in kinds[1:])])


def _target_table(tp: TargetPlan) -> Table:
    """One row per account with all its changes, and one per group to create."""
    table = Table(title=f"{escape(tp.target)} ({escape(tp.type)})", title_justify="left", expand=False)
    table.add_column("operation", no_wrap=True)
    table.add_column("account", no_wrap=True)
    table.add_column("detail")
    for row in planview.rows(tp.operations):
        label = _label(row)
        table.add_row(
            f"[{_STYLE[label[0]]}]{label}[/]", escape(row.account), escape(planview.row_detail(row))
        )
    return table


def _print_target(tp: TargetPlan, out: Console, *, hidden: int = 0) -> None:
    """Print one target's table; ``hidden`` operations are left out by a filter."""
    if tp.error:
        out.print(
            f"[bold]{escape(tp.target)}[/] ({escape(tp.type)}): [red]not planned[/]: {escape(tp.error)}"
        )
        return
    if tp.operations:
        out.print(_target_table(tp))
    else:
        none = f"{_count(hidden, 'change')}, none shown by the filter" if hidden else "no changes"
        out.print(f"[bold]{escape(tp.target)}[/] ({escape(tp.type)}): {none}")
    for c in tp.collisions:
        out.print(f"  [red]collision[/] {escape(planview.collision_text(c))}")
    for n in tp.notices:
        out.print(f"  [yellow]note[/] {escape(n.account)}: {escape(planview.notice_text(n))}")


def _count_table(counts: Sequence[TargetCounts]) -> Table | None:
    """Counts per operation (rows) and target (columns), or None when all are zero."""
    planned, rows = planview.count_rows(counts)
    if not rows:
        return None
    table = Table(title="summary", title_justify="left")
    table.add_column("operation")
    for c in planned:
        table.add_column(f"{escape(c.target)} ({escape(c.type)})", justify="right")
    if len(planned) > 1:
        table.add_column("total", justify="right")
    for name, values in rows:
        table.add_row(name, *(str(v) for v in _with_total(values)))
    return table


def _with_total(values: list[int]) -> list[int]:
    return [*values, sum(values)] if len(values) > 1 else values


def _print_summary(plan: Plan, out: Console) -> None:
    """Print counts per target and operation, the guards that block, the targets not planned."""
    counts = planview.count(plan)
    table = _count_table(counts)
    if table is not None:
        out.print(table)
    for g in plan.guards:
        out.print(f"[red]blocked[/] by a safety guard: {escape(g.message)}")
    for c in counts:
        if c.error:
            error = escape(planview.first_line(c.error))
            out.print(f"{escape(c.target)} ({escape(c.type)}): [red]not planned[/]: {error}")


def render_plan(
    plan: Plan,
    consoles: Consoles,
    fmt: str = "table",
    *,
    summary: bool = False,
    only: PlanFilter = SHOW_ALL,
) -> None:
    """Print a plan in ``fmt`` (table, json or markdown) to stdout.

    ``summary`` prints counts instead of rows; ``only`` narrows what is shown, never the
    closing line, which counts the whole plan (scripts read it).
    """
    out = consoles.out
    if fmt == "json":
        text = summary_json(plan, only=only) if summary else plan_json(plan, only=only)
        out.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    if fmt == "markdown":
        text = plan_markdown(plan, summary=summary, only=only)
        out.print(text, markup=False, highlight=False, soft_wrap=True, end="")
        return
    shown = only.apply(plan)
    if summary:
        _print_summary(shown, out)
    else:
        for tp, whole in zip(shown.targets, plan.targets, strict=True):
            _print_target(tp, out, hidden=len(whole.operations) - len(tp.operations))
    for line in closing_lines(plan, only=only):
        out.print(line, markup=False)


# --- markdown ------------------------------------------------------------------------------

MARKDOWN_LIMIT = 60_000  # a GitHub comment holds 65,536 characters; room for a heading around it

_SEE_ALL = "see them with `scimsync show PLANFILE --account GLOB` or `--format json`"


def plan_markdown(
    plan: Plan, *, summary: bool = False, only: PlanFilter = SHOW_ALL, limit: int = MARKDOWN_LIMIT
) -> str:
    """Return the plan as GitHub-flavoured markdown (CI job summaries, PR comments).

    The summary first; then a collapsed section per target with one row per account. The
    document stays under ``limit`` characters: rows past it are left out, each target
    keeping the same share of its own, with a line saying how many and how to see them.
    """
    shown = only.apply(plan)
    head = _markdown_summary(plan, shown, only)
    if summary:
        return head.rstrip("\n") + "\n"
    sections = [
        (tp, _markdown_rows(tp))
        for tp in shown.targets
        if tp.error is None and (tp.operations or tp.collisions or tp.notices)
    ]
    frames = sum(len(_markdown_details(tp, [], len(rows), limit)) for tp, rows in sections)
    kept = planview.fit([rows for _, rows in sections], limit - len(head) - frames)
    details = [
        _markdown_details(tp, rows[:n], len(rows), limit)
        for (tp, rows), n in zip(sections, kept, strict=True)
    ]
    return (head + "".join(details)).rstrip("\n") + "\n"


def _markdown_summary(plan: Plan, shown: Plan, only: PlanFilter) -> str:
    lines = ["## scimsync plan", ""]
    planned, rows = planview.count_rows(planview.count(shown))
    if rows:
        columns = [f"{_md(c.target)} ({_md(c.type)})" for c in planned]
        columns += ["total"] if len(planned) > 1 else []
        lines += [f"| operation | {' | '.join(columns)} |", "|---|" + "--:|" * len(columns)]
        lines += [f"| {name} | {' | '.join(str(v) for v in _with_total(values))} |" for name, values in rows]
        lines.append("")
    lines += [f"> **Blocked by a safety guard:** {_md(g.message)}\n" for g in plan.guards]
    lines += [
        f"**Not planned:** {_md(tp.target)} ({_md(tp.type)}): {_md(planview.first_line(tp.error))}\n"
        for tp in plan.targets
        if tp.error
    ]
    lines += [f"{_md(line)}\n" for line in closing_lines(plan, only=only)]
    return "\n".join(lines) + "\n"


def _markdown_rows(tp: TargetPlan) -> list[str]:
    """Collisions first (nobody is created), then one row per account, then notices."""
    return [
        *(_md_row("collision", c.value, planview.collision_text(c)) for c in tp.collisions),
        *(
            _md_row(", ".join(k.value for k in row.kinds), row.account, planview.row_detail(row))
            for row in planview.rows(tp.operations)
        ),
        *(_md_row("notice", n.account, planview.notice_text(n)) for n in tp.notices),
    ]


def _md_row(operation: str, account: str, text: str) -> str:
    return f"| {operation} | {_md(account)} | {_md(text)} |\n"


def _markdown_details(tp: TargetPlan, rows: list[str], total: int, limit: int) -> str:
    """A collapsed section; ``total`` rows exist, ``rows`` are shown (the frame alone with [])."""
    what = [_count(len(tp.operations), "change")]
    what += [_count(len(tp.collisions), "collision")] if tp.collisions else []
    what += [_count(len(tp.notices), "notice")] if tp.notices else []
    title = html.escape(f"{tp.target} ({tp.type}): {', '.join(what)}", quote=False)
    text = f"<details><summary>{title}</summary>\n\n| operation | account | detail |\n|---|---|---|\n"
    text += "".join(rows)
    if len(rows) < total:
        cut = total - len(rows)
        text += f"\n_{cut} of {total} rows left out to stay under {limit} characters; {_SEE_ALL}._\n"
    return text + "\n</details>\n\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


# Markdown and HTML characters that would break a table cell or inject markup, as entities or
# backslash escapes; "@" so that a display name never @mentions anyone in a PR comment.
_MD_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "@": "&#64;",
        "\n": " ",
        "\r": " ",
        **{c: "\\" + c for c in "\\`*_[]|~$#!"},
    }
)


def _md(text: str) -> str:
    """Escape text from a plan (names, messages) for a markdown table cell or paragraph."""
    return text.translate(_MD_ESCAPES)


def render_apply(
    result: ApplyResult, consoles: Consoles, fmt: str = "table", *, plan: Plan | None = None
) -> None:
    """Print the done / failed / stale table (or its JSON form) and every failure with its cause.

    ``plan`` names the targets that were not planned at all, in the JSON form.
    """
    if fmt == "json":
        text = json.dumps(apply_dict(result, plan=plan), indent=2)
        consoles.out.print(text, markup=False, highlight=False, soft_wrap=True)
    else:
        table = Table(title="apply", title_justify="left")
        for column in ("target", "done", "failed", "stale", "skipped"):
            table.add_column(column, justify="left" if column == "target" else "right")
        for tr in result.targets:
            table.add_row(escape(tr.target), *(str(tr.count(s)) for s in _STATUSES))
        consoles.out.print(table)
    for tr in result.targets:
        for r in tr.results:
            if r.status in (Status.FAILED, Status.STALE) or (
                r.status is Status.SKIPPED and r.message.startswith("not manageable")
            ):
                say(
                    f"{r.status.value}: {tr.target} {r.op.kind.value} {r.op.account}: {r.message}",
                    level=logging.ERROR if r.status is Status.FAILED else logging.WARNING,
                    target=tr.target,
                    kind=r.op.kind.value,
                    account=r.op.account,
                    group=r.op.group,
                    status=r.status.value,
                )
        if tr.stopped:
            say(tr.stopped, level=logging.ERROR, target=tr.target)
    if result.stale:
        plural = "s were" if result.stale != 1 else " was"
        say(
            f"{result.stale} operation{plural} stale: the target changed since the plan was made. "
            "Run `scimsync plan` again.",
            level=logging.WARNING,
            stale=result.stale,
        )


def render_checks(rows: Sequence[tuple[str, str, bool, str]], consoles: Consoles) -> None:
    """Print the check table: (system, type, ok, detail)."""
    table = Table()
    for column in ("system", "type", "status", "detail"):
        table.add_column(column)
    for system, kind, ok, text in rows:
        table.add_row(escape(system), kind, "[green]OK[/]" if ok else "[red]FAIL[/]", escape(text))
    consoles.out.print(table)


@contextmanager
def progress(
    consoles: Consoles, *, interval: float | None = None, clock: Callable[[], float] = time.monotonic
) -> Iterator[Callable[[str, int, int | None], None]]:
    """Yield a progress callback: bars on a terminal; elsewhere a line per phase every ``interval``
    seconds on stderr (default 10, env SCIMSYNC_PROGRESS_INTERVAL), so a CI log never looks hung;
    nothing with -q. TERM=dumb is not a terminal for bars.
    """
    if consoles.quiet:
        yield lambda what, done, total: None
        return
    if not consoles.err.is_terminal or consoles.err.is_dumb_terminal:
        yield ProgressLines(progress_interval() if interval is None else interval, clock)
        return
    bars = RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=consoles.err,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}
    lock = threading.Lock()  # reports come from the worker threads

    def report(what: str, done: int, total: int | None) -> None:
        with lock:
            if what not in tasks:
                tasks[what] = bars.add_task(what, total=total)
            bars.update(tasks[what], completed=done, total=total)

    with bars:
        yield report


# --- lines for people on stderr, apply results as JSON, progress lines (no terminal) --------

CONSOLE_LOGGER = "scimsync.console"
PROGRESS_INTERVAL = 10.0  # seconds between two progress lines of one phase, without a terminal
_STATUSES = (Status.DONE, Status.FAILED, Status.STALE, Status.SKIPPED)


def say(
    message: str, *, level: int = logging.INFO, exc_info: bool = False, masked: bool = True, **fields: object
) -> None:
    """Print one line for people on stderr: as it is, or as JSON with ``fields`` (`--log-format json`).

    The line goes through logging (``scimsync.console``), which the CLI sets up to show it at
    every verbosity and to mask secrets (``masked=False``: a line that quotes no secret but
    a name that is one by mistake, such as a config warning about `$JIRA_PAT`).
    """
    extra = {"fields": fields, "unmasked": not masked}
    logging.getLogger(CONSOLE_LOGGER).log(level, message, exc_info=exc_info, extra=extra)


def for_json_logs(consoles: Consoles) -> Consoles:
    """Return consoles whose stderr is never a terminal: with JSON logs, progress comes as lines."""
    err = Console(stderr=True, no_color=True, highlight=False, soft_wrap=True, force_terminal=False)
    return replace(consoles, err=err)


def apply_dict(result: ApplyResult, *, plan: Plan | None = None) -> dict[str, object]:
    """Return the apply result's stable JSON form: per target its counts and every operation."""
    failed = [tp for tp in plan.targets if tp.error] if plan is not None else []
    not_planned = [{"target": tp.target, "error": tp.error} for tp in failed]
    return {
        "run_id": runstats.current().run_id,  # joins this output with the logs and the audit log
        "ok": result.ok and not not_planned,
        "stale": result.stale,
        "targets": [
            {
                "target": tr.target,
                **{s.value: tr.count(s) for s in _STATUSES},
                "stopped": tr.stopped,
                "operations": [
                    {**_op_fields(tr.target, r), "message": r.message}
                    for r in sorted(tr.results, key=lambda r: r.op.sort_key())
                ],
            }
            for tr in result.targets
        ],
        "not_planned": not_planned,
    }


def _op_fields(target: str, r: OpResult) -> dict[str, object]:
    return {
        "target": target,
        "kind": r.op.kind.value,
        "account": r.op.account,
        "group": r.op.group,
        "status": r.status.value,
    }


def progress_interval() -> float:
    """Return the seconds between progress lines: SCIMSYNC_PROGRESS_INTERVAL, or 10."""
    text = os.environ.get("SCIMSYNC_PROGRESS_INTERVAL", "").strip()
    try:
        seconds = float(text) if text else PROGRESS_INTERVAL
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise ScimsyncError(f"SCIMSYNC_PROGRESS_INTERVAL: not a number of seconds: {text!r}")
    return seconds


class ProgressLines:
    """A progress callback that says "<phase>: done/total (rate/s)" once per interval per phase.

    A phase shorter than the interval says nothing; with interval 0 every report is a line.
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.started: dict[str, float] = {}
        self.said: dict[str, float] = {}
        self.lock = threading.Lock()  # reports come from the worker threads

    def __call__(self, what: str, done: int, total: int | None) -> None:
        """Take one report; say it when the phase's last line is ``interval`` seconds old."""
        now = self.clock()
        with self.lock:
            started = self.started.setdefault(what, now)
            if now - self.said.get(what, started) < self.interval:
                return
            self.said[what] = now
        elapsed = now - started
        rate = round(done / elapsed, 1) if elapsed > 0 else None
        count = f"{done}/{total}" if total is not None else str(done)
        text = f"{what}: {count}" + (f" ({rate}/s)" if rate is not None else "")
        say(text, phase=what, done=done, total=total, rate=rate)
