"""`scimsync apply`: plan (or load a saved plan), confirm, write."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from scimsync import api, render
from scimsync.cli.app import EXIT_ERROR, EXIT_OK, State, allow_option, cli, pass_state, targets_option
from scimsync.cli.plan import make_plan, report_target_errors
from scimsync.errors import ApprovalError, RunInterruptedError, ScimsyncError
from scimsync.lock import run_lock


@dataclass
class Signals:
    """The stop flag that SIGINT/SIGTERM set, and which signal came first."""

    stop: threading.Event
    received: list[int]


@contextmanager
def _stop_on_signals() -> Iterator[Signals]:
    """Turn SIGINT/SIGTERM into a stop flag: operations in flight finish, none start.

    On the way out (after the apply summary was shown) the run exits 130 or 143.
    """
    signals = Signals(threading.Event(), [])

    def handler(signum: int, frame: object) -> None:
        signals.received.append(signum)
        signals.stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield signals
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if signals.received:
        raise RunInterruptedError(signals.received[0])


@cli.command()
@click.argument("planfile", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-y", "--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@targets_option
@allow_option
@pass_state
def apply(
    state: State,
    planfile: Path | None,
    auto_approve: bool,
    targets: tuple[str, ...],
    allow_deactivations: int | None,
) -> None:
    """Plan, confirm and apply; or apply exactly a saved PLANFILE (re-checked, no question)."""
    config = state.config()
    if planfile is not None and allow_deactivations is not None:
        raise ScimsyncError(
            "--allow-deactivations acts when planning: run `scimsync plan --allow-deactivations N --out FILE`"
        )
    with run_lock(config.lock_file):
        if planfile is not None:
            the_plan = api.load_plan(planfile, config, targets=targets)
            if the_plan.guards:
                raise api.guard_error(the_plan)
        else:
            the_plan = make_plan(state, config, targets, allow_deactivations)
            render.render_plan(the_plan, state.consoles)
            if the_plan.guards:
                raise api.guard_error(the_plan)
            if the_plan.has_changes:
                _confirm(auto_approve)
        planning_failed = report_target_errors(the_plan)
        if not the_plan.has_changes:
            api.remember(config, the_plan)  # links of accounts already in step
            raise click.exceptions.Exit(EXIT_ERROR if planning_failed else EXIT_OK)
        with _stop_on_signals() as received:
            with render.progress(state.consoles) as progress:
                result = api.apply(
                    config, the_plan, recheck=planfile is not None, progress=progress, stop=received.stop
                )
            render.render_apply(result, state.consoles)
    if planning_failed or not result.ok:
        raise click.exceptions.Exit(EXIT_ERROR)


def _confirm(auto_approve: bool) -> None:
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise ApprovalError(
            "apply needs confirmation, and this run is not interactive: pass -y/--auto-approve, "
            "or apply a reviewed plan file (scimsync plan --out FILE; scimsync apply FILE)"
        )
    if not click.confirm("Apply these changes?", default=False, err=True):
        raise ApprovalError("apply cancelled; nothing was written")
