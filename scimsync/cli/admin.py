"""The commands around a sync: validate, check, audit verify, demo."""

from __future__ import annotations

import json
from pathlib import Path

import click

from scimsync import api, render
from scimsync.audit import verify
from scimsync.cli.app import EXIT_ERROR, State, cli, pass_state, targets_option
from scimsync.errors import ScimsyncError


@cli.command()
@pass_state
def validate(state: State) -> None:
    """Validate the config: schema, ${ENV} references, templates, group rules. No network."""
    config = state.config()
    targets = ", ".join(f"{n} ({t.type})" for n, t in config.targets.items())
    click.echo(f"config OK: {state.config_path}: source {config.source.type}; targets {targets}")


@cli.command()
@targets_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help="Output format.")
@pass_state
def check(state: State, targets: tuple[str, ...], fmt: str) -> None:
    """Make one authenticated read against the source and every target; OK/FAIL each."""
    rows = api.check(state.config(), targets=targets)
    if fmt == "json":
        data = [{"system": s, "type": t, "ok": ok, "detail": d} for s, t, ok, d in rows]
        click.echo(json.dumps(data, indent=2))
    else:
        render.render_checks(rows, state.consoles)
    if not all(ok for _, _, ok, _ in rows):
        raise click.exceptions.Exit(EXIT_ERROR)


@cli.group()
def audit() -> None:
    """Work with the audit log."""


@audit.command("verify")
@click.argument("audit_log", required=False, type=click.Path(dir_okay=False, path_type=Path))
@pass_state
def audit_verify(state: State, audit_log: Path | None) -> None:
    """Check the audit log's hash chain; name the first line changed or removed.

    Without AUDIT_LOG: the config's `audit_log`.
    """
    if audit_log is None:
        audit_log = state.config().audit_log
        if audit_log is None:
            raise ScimsyncError(f"audit verify: {state.config_path} sets no audit_log; name the file")
    if not audit_log.is_file():
        raise ScimsyncError(f"audit log {audit_log}: no such file")
    count, problem = verify(audit_log)
    if problem:
        raise ScimsyncError(f"audit log {audit_log}: {problem}")
    click.echo(f"audit log OK: {count} lines, hash chain intact")


@cli.command()
@click.option(
    "--source",
    metavar="NAME",
    default="file",
    show_default=True,
    help="The IdP to simulate: file (a CSV file), ldap (a real OpenLDAP slapd), scim (a SCIM 2.0 "
    "service), okta, entra, google, onelogin or keycloak.",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="NAME",
    help="A target to simulate: jira, confluence, atlassian-cloud or all "
    "(repeatable; default: jira and confluence).",
)
@click.option("--keep", is_flag=True, help="Keep the simulators running until Ctrl-C, to explore.")
@pass_state
def demo(state: State, source: str, targets: tuple[str, ...], keep: bool) -> None:
    """Run plan, apply and plan again against built-in simulators. Needs no account anywhere."""
    # Imported here: the simulators load only for the demo. It checks the names (its registries').
    from scimsync.sim.demo import run_demo

    run_demo(state.consoles, source=source, targets=targets, keep=keep)
