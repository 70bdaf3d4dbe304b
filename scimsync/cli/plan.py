"""`scimsync plan` and `scimsync show`: read, diff and print; never write."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from scimsync import api, planview, render
from scimsync.cli.app import (
    EXIT_CHANGES,
    EXIT_ERROR,
    State,
    allow_option,
    cli,
    format_option,
    pass_state,
    targets_option,
)
from scimsync.cli.logs import report_option
from scimsync.config import Config
from scimsync.engine.plan import Plan, TargetPlan
from scimsync.planview import PlanFilter


def _failed_targets(plan: Plan) -> list[TargetPlan]:
    return [tp for tp in plan.targets if tp.error]


def report_target_errors(plan: Plan) -> bool:
    failed = _failed_targets(plan)
    for tp in failed:
        render.say(f"error: {tp.error}", level=logging.ERROR, target=tp.target)
    return bool(failed)


def make_plan(state: State, config: Config, targets: tuple[str, ...], allow: int | None) -> Plan:
    with render.progress(state.consoles) as progress:
        made = api.make_plan(config, targets=targets, allow_deactivations=allow, progress=progress)
    state.plan = made  # for the --report file
    for warning in made.warnings:
        render.say(f"warning: {warning}", level=logging.WARNING)
    return made


F = TypeVar("F", bound=Callable[..., Any])


def view_options(command: F) -> F:
    """Add --summary, --op and --account: what `plan` and `show` display (never what is saved)."""
    command = click.option(
        "--account",
        "accounts",
        multiple=True,
        metavar="GLOB",
        help="Show only accounts matching GLOB, any case (repeatable).",
    )(command)
    command = click.option(
        "--op",
        "kinds",
        multiple=True,
        metavar="KIND",
        type=click.Choice(planview.KIND_CHOICES, case_sensitive=False),
        help="Show only operations of KIND (repeatable): create_user, update_user, add_member... "
        "or create, update, reactivate, deactivate, delete, add, remove.",
    )(command)
    return click.option(
        "--summary", is_flag=True, help="Show counts per target and operation, guards and failures."
    )(command)


@cli.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="Save the whole plan to FILE (mode 0600); `-` writes its JSON to stdout, the view to stderr.",
)
@format_option
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are.")
@targets_option
@allow_option
@view_options
@report_option
@pass_state
def plan(
    state: State,
    out: Path | None,
    fmt: str,
    detailed_exitcode: bool,
    targets: tuple[str, ...],
    allow_deactivations: int | None,
    summary: bool,
    kinds: tuple[str, ...],
    accounts: tuple[str, ...],
) -> None:
    """Read the source and the targets and print the plan. Never writes to any system."""
    config = state.config()
    result = make_plan(state, config, targets, allow_deactivations)
    piped = out is not None and str(out) == "-"  # stdout holds exactly the plan's JSON (for jq)
    if not (piped and state.quiet):
        consoles = state.consoles.on_stderr() if piped else state.consoles
        render.render_plan(result, consoles, fmt, summary=summary, only=PlanFilter.of(kinds, accounts))
    if result.guards:
        raise api.guard_error(result)
    if piped:
        click.echo(render.plan_json(result))
    elif out is not None:
        api.save_plan(result, out)
        render.say(f"Saved the plan to {out}; apply it with: scimsync apply {out}", plan_file=str(out))
    if report_target_errors(result):
        raise click.exceptions.Exit(EXIT_ERROR)
    if detailed_exitcode and result.has_changes:
        raise click.exceptions.Exit(EXIT_CHANGES)


@cli.command()
@click.argument("planfile", type=click.Path(dir_okay=False, path_type=Path))
@format_option
@view_options
@pass_state
def show(
    state: State, planfile: Path, fmt: str, summary: bool, kinds: tuple[str, ...], accounts: tuple[str, ...]
) -> None:
    """Render a saved plan."""
    only = PlanFilter.of(kinds, accounts)
    render.render_plan(api.read_plan(planfile), state.consoles, fmt, summary=summary, only=only)
