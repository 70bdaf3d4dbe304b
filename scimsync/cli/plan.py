"""`scimsync plan` and `scimsync show`: read, diff and print; never write."""

from __future__ import annotations

from pathlib import Path

import click

from scimsync import api, render
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
from scimsync.config import Config
from scimsync.engine.plan import Plan, TargetPlan
from scimsync.secrets import redact


def _failed_targets(plan: Plan) -> list[TargetPlan]:
    return [tp for tp in plan.targets if tp.error]


def report_target_errors(plan: Plan) -> bool:
    failed = _failed_targets(plan)
    for tp in failed:
        click.echo(redact(f"error: {tp.error}"), err=True)
    return bool(failed)


def make_plan(state: State, config: Config, targets: tuple[str, ...], allow: int | None) -> Plan:
    with render.progress(state.consoles) as progress:
        made = api.make_plan(config, targets=targets, allow_deactivations=allow, progress=progress)
    for warning in made.warnings:
        click.echo(f"warning: {warning}", err=True)
    return made


@cli.command()
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Save the plan to FILE (mode 0600)."
)
@format_option
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are.")
@targets_option
@allow_option
@pass_state
def plan(
    state: State,
    out: Path | None,
    fmt: str,
    detailed_exitcode: bool,
    targets: tuple[str, ...],
    allow_deactivations: int | None,
) -> None:
    """Read the source and the targets and print the plan. Never writes to any system."""
    config = state.config()
    result = make_plan(state, config, targets, allow_deactivations)
    render.render_plan(result, state.consoles, fmt)
    if result.guards:
        raise api.guard_error(result)
    if out is not None:
        api.save_plan(result, out)
        click.echo(f"Saved the plan to {out}; apply it with: scimsync apply {out}", err=True)
    if report_target_errors(result):
        raise click.exceptions.Exit(EXIT_ERROR)
    if detailed_exitcode and result.has_changes:
        raise click.exceptions.Exit(EXIT_CHANGES)


@cli.command()
@click.argument("planfile", type=click.Path(dir_okay=False, path_type=Path))
@format_option
@pass_state
def show(state: State, planfile: Path, fmt: str) -> None:
    """Render a saved plan."""
    render.render_plan(api.read_plan(planfile), state.consoles, fmt)
