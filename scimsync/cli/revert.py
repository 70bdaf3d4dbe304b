"""`scimsync revert`: the plan that undoes one run of the audit log, shown and applied like any."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from scimsync import api, render
from scimsync.cli.app import EXIT_ERROR, State, cli, format_option, pass_state, targets_option
from scimsync.cli.apply import confirm, lock_timeout_option, stop_on_signals
from scimsync.cli.logs import report_option
from scimsync.cli.plan import report_target_errors
from scimsync.config import Config
from scimsync.engine.plan import Plan
from scimsync.errors import ScimsyncError
from scimsync.lock import run_lock
from scimsync.revert import stale_notices


@cli.command()
@click.argument("audit_log", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--run", "run_id", metavar="ID", help="The run to undo (default: the last run in the log).")
@click.option("-y", "--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the revert plan to FILE (mode 0600) instead of applying it; then `scimsync apply FILE`.",
)
@format_option
@targets_option
@lock_timeout_option
@report_option
@pass_state
def revert(
    state: State,
    audit_log: Path,
    run_id: str | None,
    auto_approve: bool,
    out: Path | None,
    fmt: str,
    targets: tuple[str, ...],
    lock_timeout: float,
) -> None:
    """Undo one run: reactivate what it deactivated, put back the memberships it changed.

    Built from AUDIT_LOG, checked against the targets as they are now, then shown and applied
    like `apply` (confirmation unless -y); deletions, creations and updates are not undone.
    """
    config = state.config()
    if out is not None:
        if auto_approve:
            raise ScimsyncError("--out saves the revert plan without applying it: leave out -y")
        the_plan = _build(state, config, audit_log, run_id, targets, fmt)
        api.save_plan(the_plan, out)
        render.say(f"Saved the revert plan to {out}; apply it with: scimsync apply {out}", plan_file=str(out))
        if _unfinished(the_plan):
            raise click.exceptions.Exit(EXIT_ERROR)
        return
    with run_lock(config.lock_file, timeout=lock_timeout):
        the_plan = _build(state, config, audit_log, run_id, targets, fmt)
        unfinished = _unfinished(the_plan)
        if not the_plan.has_changes:
            raise click.exceptions.Exit(EXIT_ERROR if unfinished else 0)
        review = "save the plan for review (scimsync revert AUDIT_LOG --out FILE; scimsync apply FILE)"
        confirm(auto_approve, command="revert", review=review)
        with stop_on_signals() as received:
            with render.progress(state.consoles) as progress:
                result = state.result = api.apply(
                    config, the_plan, recheck=True, progress=progress, stop=received.stop
                )
            # Data on stdout stays one document: with json or markdown the summary goes to stderr.
            consoles = state.consoles if fmt == "table" else state.consoles.on_stderr()
            render.render_apply(result, consoles, plan=the_plan)
    if unfinished or not result.ok:
        raise click.exceptions.Exit(EXIT_ERROR)


def _build(
    state: State, config: Config, audit_log: Path, run_id: str | None, targets: tuple[str, ...], fmt: str
) -> Plan:
    """Build, show, and check the guards of the revert plan."""
    with render.progress(state.consoles) as progress:
        the_plan = state.plan = api.revert(config, audit_log, run=run_id, targets=targets, progress=progress)
    render.render_plan(the_plan, state.consoles, fmt)
    if the_plan.guards:
        raise api.guard_error(the_plan)
    return the_plan


def _unfinished(the_plan: Plan) -> bool:
    """Say what cannot be undone any more; tell whether anything is (targets unread, stale)."""
    failed = report_target_errors(the_plan)
    stale = stale_notices(the_plan)
    if stale:
        plural = "s" if len(stale) != 1 else ""
        render.say(
            f"warning: {len(stale)} change{plural} of the run cannot be undone: the accounts changed since "
            "(see the notices in the plan)",
            level=logging.WARNING,
        )
    return failed or bool(stale)
