"""`scimsync apply`: plan (or load a saved plan), confirm, write."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from scimsync import api, interrupt, render
from scimsync.cli.app import EXIT_ERROR, EXIT_OK, State, allow_option, cli, pass_state, targets_option
from scimsync.cli.logs import report_option
from scimsync.cli.plan import make_plan, report_target_errors
from scimsync.engine.apply import ApplyResult
from scimsync.errors import ApprovalError, ScimsyncError
from scimsync.lock import run_lock

lock_timeout_option = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=0,
    metavar="SECONDS",
    help="Wait up to SECONDS for another run's lock instead of exiting at once.",
)


@contextmanager
def stop_on_signals() -> Iterator[interrupt.Interrupts]:
    """While writing: a signal lets the operations in flight finish and starts none.

    On the way out (after the apply summary was shown) the run exits 130 or 143.
    """
    signals = interrupt.active()
    signals.applying = True
    yield signals
    signals.raise_if_received()


@cli.command()
@click.argument("planfile", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-y", "--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@lock_timeout_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format of the result (json: per target, every operation with its status and message).",
)
@targets_option
@allow_option
@report_option
@pass_state
def apply(
    state: State,
    planfile: Path | None,
    auto_approve: bool,
    lock_timeout: float,
    fmt: str,
    targets: tuple[str, ...],
    allow_deactivations: int | None,
) -> None:
    """Plan, confirm and apply; or apply exactly a saved PLANFILE (re-checked, no question)."""
    config = state.config()
    if planfile is not None and allow_deactivations is not None:
        raise ScimsyncError(
            "--allow-deactivations acts when planning: run `scimsync plan --allow-deactivations N --out FILE`"
        )
    with run_lock(config.lock_file, timeout=lock_timeout):
        if planfile is not None:
            the_plan = state.plan = api.load_plan(planfile, config, targets=targets)
            if the_plan.guards:
                raise api.guard_error(the_plan)
        else:
            the_plan = make_plan(state, config, targets, allow_deactivations)
            if fmt == "table":
                render.render_plan(the_plan, state.consoles)
            elif the_plan.has_changes and not auto_approve and sys.stdin.isatty():
                render.render_plan(the_plan, state.consoles.on_stderr())  # for the question; stdout: JSON
            if the_plan.guards:
                raise api.guard_error(the_plan)
            if the_plan.has_changes:
                confirm(auto_approve)
        planning_failed = report_target_errors(the_plan)
        if not the_plan.has_changes:
            api.remember(config, the_plan)  # links of accounts already in step
            if fmt == "json":
                render.render_apply(ApplyResult(()), state.consoles, fmt, plan=the_plan)
            raise click.exceptions.Exit(EXIT_ERROR if planning_failed else EXIT_OK)
        with stop_on_signals() as signals:
            with render.progress(state.consoles) as progress:
                result = state.result = api.apply(
                    config, the_plan, recheck=planfile is not None, progress=progress, stop=signals.stop
                )
            render.render_apply(result, state.consoles, fmt, plan=the_plan)
    if planning_failed or not result.ok:
        raise click.exceptions.Exit(EXIT_ERROR)


def confirm(
    auto_approve: bool,
    *,
    command: str = "apply",
    review: str = "apply a reviewed plan file (scimsync plan --out FILE; scimsync apply FILE)",
) -> None:
    """Ask before writing; refuse a non-interactive run without -y (``review`` says what else to do)."""
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise ApprovalError(
            f"{command} needs confirmation, and this run is not interactive: "
            f"pass -y/--auto-approve, or {review}"
        )
    signals = interrupt.active()
    signals.prompting = True  # Ctrl-C at the question ends it: nothing was written
    try:
        answer = click.confirm("Apply these changes?", default=False, err=True)
    finally:
        signals.prompting = False
    if not answer:
        raise ApprovalError(f"{command} cancelled; nothing was written")
