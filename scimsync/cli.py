"""The command line: a thin shell over ``scimsync.api``.

This is the one place where exceptions become user messages and exit codes
(SPEC §2): 0 ok, 1 error, 2 changes (plan --detailed-exitcode), 3 safety guard,
130/143 interrupted.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from scimsync import __version__, api, render
from scimsync.audit import verify
from scimsync.config import Config
from scimsync.engine.plan import Plan, TargetPlan
from scimsync.errors import ApprovalError, RunInterruptedError, ScimsyncError
from scimsync.lock import run_lock
from scimsync.render import Consoles
from scimsync.secrets import redact

log = logging.getLogger("scimsync")

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


@dataclass
class State:
    """Global options, shared by every command."""

    config_path: Path
    verbose: int
    consoles: Consoles

    def config(self) -> Config:
        """Load the config named by -c/--config; print its warnings on stderr."""
        config = api.load(self.config_path)
        # Not redacted: a warning quotes only a variable-looking name such as `$JIRA_PAT`,
        # which is also the whole "secret" when a token was written that way by mistake.
        for warning in config.warnings:
            click.echo(f"warning: {self.config_path}: {warning}", err=True)
        return config


class RedactingFormatter(logging.Formatter):
    """Format log lines as text or JSON, with every known secret masked."""

    def __init__(self, fmt: str) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        """Return the redacted line."""
        if self.json:
            line = json.dumps(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
                    "level": record.levelname.lower(),
                    "logger": record.name,
                    "message": record.getMessage(),
                }
            )
        else:
            line = super().format(record)
        return redact(line)


def _setup_logging(verbose: int, quiet: bool, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(fmt))
    root = logging.getLogger("scimsync")
    root.handlers[:] = [handler]
    root.setLevel(logging.ERROR if quiet else [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)])


class ScimsyncGroup(click.Group):
    """A click group that turns exceptions into one clear line and a deliberate exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the CLI; a usage error exits 1, not click's 2 (2 means "changes", SPEC §2)."""
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            exc.show()
            code = EXIT_ERROR
        except click.exceptions.Abort:
            click.echo("error: interrupted", err=True)
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code or 0)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; map errors to messages and exit codes."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise  # click's own exits and usage errors carry their codes already
        except ScimsyncError as exc:
            _fail(ctx, str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail(ctx, "interrupted", 130)
        except OSError as exc:
            _fail(ctx, f"{exc.filename or 'system'}: {exc.strerror or exc}", EXIT_ERROR)
        except Exception as exc:
            _fail(ctx, f"internal error: {type(exc).__name__}: {exc} (run with -v for details)", EXIT_ERROR)


def _fail(ctx: click.Context, message: str, code: int) -> NoReturn:
    state = ctx.find_object(State)
    if state is not None and state.verbose:
        traceback.print_exc(file=sys.stderr)
    click.echo(redact(f"error: {message}"), err=True)
    ctx.exit(code)


@click.group(cls=ScimsyncGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="scimsync.yaml",
    envvar="SCIMSYNC_CONFIG",
    show_default=True,
    help="Config file (env SCIMSYNC_CONFIG).",
)
@click.option("-v", "--verbose", count=True, help="More log output; tracebacks on errors. Repeat for debug.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress bars.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", help="Log line format.")
@click.option("--no-color", is_flag=True, help="No colour in output.")
@click.version_option(__version__, prog_name="scimsync")
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path, verbose: int, quiet: bool, log_format: str, no_color: bool
) -> None:
    """Keep Jira and Confluence user directories in step with your identity provider."""
    _setup_logging(verbose, quiet, log_format)
    ctx.obj = State(config_path, verbose, render.make_consoles(no_color=no_color, quiet=quiet))


pass_state = click.make_pass_decorator(State)

_format = click.option(
    "--format",
    "fmt",
    type=click.Choice(render.FORMATS),
    default="table",
    show_default=True,
    help="Output format.",
)
_targets = click.option(
    "--target", "targets", multiple=True, metavar="NAME", help="Only this target (repeatable)."
)
_allow = click.option(
    "--allow-deactivations",
    type=click.IntRange(min=0),
    metavar="N",
    help="Raise this run's deactivation limit to N (also acknowledges an empty source).",
)


@cli.command()
@pass_state
def validate(state: State) -> None:
    """Validate the config: schema, ${ENV} references, templates, group rules. No network."""
    config = state.config()
    targets = ", ".join(f"{n} ({t.type})" for n, t in config.targets.items())
    click.echo(f"config OK: {state.config_path}: source {config.source.type}; targets {targets}")


@cli.command()
@_targets
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


def _failed_targets(plan: Plan) -> list[TargetPlan]:
    return [tp for tp in plan.targets if tp.error]


def _report_target_errors(plan: Plan) -> bool:
    failed = _failed_targets(plan)
    for tp in failed:
        click.echo(redact(f"error: {tp.error}"), err=True)
    return bool(failed)


def _make_plan(state: State, config: Config, targets: tuple[str, ...], allow: int | None) -> Plan:
    with render.progress(state.consoles) as progress:
        made = api.make_plan(config, targets=targets, allow_deactivations=allow, progress=progress)
    for warning in made.warnings:
        click.echo(f"warning: {warning}", err=True)
    return made


@cli.command()
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Save the plan to FILE (mode 0600)."
)
@_format
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are.")
@_targets
@_allow
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
    result = _make_plan(state, config, targets, allow_deactivations)
    render.render_plan(result, state.consoles, fmt)
    if result.guards:
        raise api.guard_error(result)
    if out is not None:
        api.save_plan(result, out)
        click.echo(f"Saved the plan to {out}; apply it with: scimsync apply {out}", err=True)
    if _report_target_errors(result):
        raise click.exceptions.Exit(EXIT_ERROR)
    if detailed_exitcode and result.has_changes:
        raise click.exceptions.Exit(EXIT_CHANGES)


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
@_targets
@_allow
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
            the_plan = _make_plan(state, config, targets, allow_deactivations)
            render.render_plan(the_plan, state.consoles)
            if the_plan.guards:
                raise api.guard_error(the_plan)
            if the_plan.has_changes:
                _confirm(auto_approve)
        planning_failed = _report_target_errors(the_plan)
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


@cli.command()
@click.argument("planfile", type=click.Path(dir_okay=False, path_type=Path))
@_format
@pass_state
def show(state: State, planfile: Path, fmt: str) -> None:
    """Render a saved plan."""
    render.render_plan(api.read_plan(planfile), state.consoles, fmt)


@cli.group()
def audit() -> None:
    """Work with the audit log."""


@audit.command("verify")
@click.argument("audit_log", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def audit_verify(audit_log: Path) -> None:
    """Check the audit log's hash chain; name the first line changed or removed."""
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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="scimsync")
