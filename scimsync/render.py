"""Everything the user sees: plan tables, JSON, markdown, apply summaries, progress.

The only module that imports rich. Data goes to stdout; messages and progress to stderr.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from scimsync.engine.apply import ApplyResult, Status
from scimsync.engine.plan import Operation, OpKind, Plan, TargetPlan, summarize, to_dict

FORMATS = ("table", "json", "markdown")

_VERB = {
    OpKind.CREATE_GROUP: "+ create group",
    OpKind.CREATE_USER: "+ create",
    OpKind.REACTIVATE_USER: "~ reactivate",
    OpKind.UPDATE_USER: "~ update",
    OpKind.ADD_MEMBER: "+ add member",
    OpKind.REMOVE_MEMBER: "- remove member",
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
    if op.kind is OpKind.UPDATE_USER:
        text = "; ".join(f"{c.field}: {c.old!r} -> {c.new!r}" for c in op.changes)
    elif op.kind is OpKind.CREATE_USER:
        text = ", ".join(f"{c.field}={c.new}" for c in op.changes if c.field != "username")
    elif op.kind in (OpKind.ADD_MEMBER, OpKind.REMOVE_MEMBER):
        text = f"{op.group}"
    else:
        text = ""
    return f"{text} ({op.reason})" if text and op.reason else text or op.reason


def plan_json(plan: Plan) -> str:
    """Return the plan's stable JSON form."""
    return json.dumps(to_dict(plan), indent=2, sort_keys=False)


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


def _target_table(tp: TargetPlan) -> Table:
    table = Table(title=f"{tp.target} ({tp.type})", title_justify="left", expand=False)
    table.add_column("operation", no_wrap=True)
    table.add_column("account", no_wrap=True)
    table.add_column("detail")
    for op in tp.operations:
        verb = _VERB[op.kind]
        table.add_row(f"[{_STYLE[verb[0]]}]{verb}[/]", escape(op.account), escape(detail(op)))
    return table


def render_plan(plan: Plan, consoles: Consoles, fmt: str = "table") -> None:
    """Print a plan in ``fmt`` (table, json or markdown) to stdout."""
    if fmt == "json":
        consoles.out.print(plan_json(plan), markup=False, highlight=False, soft_wrap=True)
        return
    if fmt == "markdown":
        consoles.out.print(plan_markdown(plan), markup=False, highlight=False, soft_wrap=True)
        return
    out = consoles.out
    for tp in plan.targets:
        if tp.error:
            out.print(f"[bold]{escape(tp.target)}[/] ({tp.type}): [red]not planned[/]: {escape(tp.error)}")
            continue
        if tp.operations:
            out.print(_target_table(tp))
        else:
            out.print(f"[bold]{escape(tp.target)}[/] ({tp.type}): no changes")
        for c in tp.collisions:
            out.print(
                f"  [red]collision[/] on {c.field} {escape(c.value)!r}: source users "
                f"{escape(', '.join(c.source_users))} — neither is created or changed"
            )
        for n in tp.notices:
            out.print(f"  [yellow]note[/] {escape(n.account)}: {escape(n.message)}")
    for line in summary_lines(plan):
        out.print(line, markup=False)


def plan_markdown(plan: Plan) -> str:
    """Return the plan as GitHub-flavoured markdown (CI job summaries, PR comments)."""
    lines = ["## scimsync plan", ""]
    for tp in plan.targets:
        lines.append(f"### {tp.target} ({tp.type})")
        lines.append("")
        if tp.error:
            lines += [f"**Not planned:** {tp.error}", ""]
            continue
        if not tp.operations:
            lines += ["No changes.", ""]
        else:
            lines += ["| operation | account | detail |", "|---|---|---|"]
            lines += [f"| {op.kind.value} | {_md(op.account)} | {_md(detail(op))} |" for op in tp.operations]
            lines.append("")
        lines += [
            f"- **collision** on {c.field} `{c.value}`: {', '.join(c.source_users)}" for c in tp.collisions
        ]
        lines += [f"- note `{n.account}`: {_md(n.message)}" for n in tp.notices]
        if tp.collisions or tp.notices:
            lines.append("")
    for guard in plan.guards:
        lines.append(f"> **Blocked by a safety guard:** {guard.message}")
    lines += ["", *summary_lines(plan)]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_apply(result: ApplyResult, consoles: Consoles) -> None:
    """Print the done / failed / stale table and every failure with its cause."""
    table = Table(title="apply", title_justify="left")
    for column in ("target", "done", "failed", "stale", "skipped"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for tr in result.targets:
        table.add_row(
            escape(tr.target),
            *(str(tr.count(s)) for s in (Status.DONE, Status.FAILED, Status.STALE, Status.SKIPPED)),
        )
    consoles.out.print(table)
    for tr in result.targets:
        for r in tr.results:
            if r.status in (Status.FAILED, Status.STALE) or (
                r.status is Status.SKIPPED and r.message.startswith("not manageable")
            ):
                consoles.err.print(
                    f"{r.status.value}: {tr.target} {r.op.kind.value} {r.op.account}: {r.message}",
                    markup=False,
                )
        if tr.stopped:
            consoles.err.print(tr.stopped, markup=False)
    if result.stale:
        plural = "s were" if result.stale != 1 else " was"
        consoles.err.print(
            f"{result.stale} operation{plural} stale: the target changed since the plan was made. "
            "Run `scimsync plan` again.",
            markup=False,
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
def progress(consoles: Consoles) -> Iterator[Callable[[str, int, int | None], None]]:
    """Yield a progress callback; bars only on a terminal and never with -q."""
    if consoles.quiet or not consoles.err.is_terminal:
        yield lambda what, done, total: None
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
