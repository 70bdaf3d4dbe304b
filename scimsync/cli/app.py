"""The command line's frame: the click group, its global options, and the one place where
exceptions become user messages and exit codes (SPEC §2): 0 ok, 1 error, 2 changes
(plan --detailed-exitcode), 3 safety guard, 130/143 interrupted.

The commands live beside this module (plan.py, apply.py, admin.py, ...) and register
themselves on ``cli``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click

from scimsync import __version__, api, interrupt, render, runstats
from scimsync.cli.logs import REPORT_KEY, json_logs, setup_logging
from scimsync.config import Config
from scimsync.engine.apply import ApplyResult
from scimsync.engine.plan import Plan
from scimsync.errors import ScimsyncError
from scimsync.render import Consoles
from scimsync.report import RunOutcome, build_report, write_report
from scimsync.runstats import RunStats

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


@dataclass
class State:
    """Global options, shared by every command (given before or after the command's name)."""

    config_path: Path
    verbose: int = 0
    quiet: bool = False
    log_format: str = "text"
    no_color: bool = False
    consoles: Consoles = field(init=False)
    # What the run did, for the --report file: its statistics, and what the command kept.
    stats: RunStats = field(init=False)
    plan: Plan | None = field(default=None, init=False)
    result: ApplyResult | None = field(default=None, init=False)
    error: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.stats = runstats.begin()
        self.configure()

    def configure(self) -> None:
        """(Re)build logging and the consoles from the options as they stand now."""
        setup_logging(self.verbose, self.quiet, self.log_format)
        consoles = render.make_consoles(no_color=self.no_color, quiet=self.quiet)
        self.consoles = render.for_json_logs(consoles) if self.log_format == "json" else consoles

    def config(self) -> Config:
        """Load the config named by -c/--config; print its warnings on stderr."""
        config = api.load(self.config_path)
        # Not masked: a warning quotes only a variable-looking name such as `$JIRA_PAT`,
        # which is also the whole "secret" when a token was written that way by mistake.
        for warning in config.warnings:
            render.say(f"warning: {self.config_path}: {warning}", level=logging.WARNING, masked=False)
        return config

    def write_report(self, path: Path, *, command: str, exit_code: int) -> None:
        """Write the --report file: what this run planned and did, and how it ended."""
        outcome = RunOutcome(command, exit_code, self.plan, self.result, self.error)
        write_report(path, build_report(self.stats, outcome))


def _late_option(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """A callback that applies a global option given after the command's name."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        state = ctx.find_object(State)
        given = ctx.get_parameter_source(param.name or "") is click.core.ParameterSource.COMMANDLINE
        if state is None or not given:
            return
        setattr(state, attr, state.verbose + value if attr == "verbose" else value)
        state.configure()

    return callback


def _global_params() -> list[click.Parameter]:
    """The global options again, hidden, so that `scimsync plan -q -c x.yaml` works too."""
    late: dict[str, Any] = {"expose_value": False, "hidden": True}
    return [
        click.Option(
            ["-c", "--config", "config_path"],
            type=click.Path(dir_okay=False, path_type=Path),
            callback=_late_option("config_path"),
            **late,
        ),
        click.Option(["-v", "--verbose"], count=True, callback=_late_option("verbose"), **late),
        click.Option(["-q", "--quiet"], is_flag=True, callback=_late_option("quiet"), **late),
        click.Option(
            ["--log-format"], type=click.Choice(["text", "json"]), callback=_late_option("log_format"), **late
        ),
        click.Option(["--no-color"], is_flag=True, callback=_late_option("no_color"), **late),
    ]


class ScimsyncCommand(click.Command):
    """A command that also accepts the global options after its name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_params())


class ScimsyncGroup(click.Group):
    """A click group that turns exceptions into one clear line and a deliberate exit code."""

    command_class = ScimsyncCommand

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the CLI; a usage error exits 1, not click's 2 (2 means "changes", SPEC §2)."""
        setup_logging(0, False, "text")  # until the options are read; nothing left from an earlier run
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            if json_logs():
                render.say(f"error: {exc.format_message()}", level=logging.ERROR, exit_code=EXIT_ERROR)
            else:
                exc.show()
            code = EXIT_ERROR
        except click.exceptions.Abort:
            render.say("error: interrupted", level=logging.ERROR, exit_code=130)
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code or 0)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command and write the --report file, whatever the exit code (SPEC §2)."""
        try:
            value = self._run(ctx)
        except click.exceptions.Exit as exc:
            _finish(ctx, exc.exit_code)
            raise
        except click.ClickException as exc:
            state = ctx.find_object(State)
            if state is not None:
                state.error = exc.format_message()
            _finish(ctx, EXIT_ERROR)
            raise
        except click.exceptions.Abort:
            _finish(ctx, 130)
            raise
        _finish(ctx, EXIT_OK)
        return value

    def _run(self, ctx: click.Context) -> Any:
        """Run the command; map errors to messages and exit codes."""
        try:
            with interrupt.handled():
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
    """Say the error in one line (JSON with --log-format json; a traceback too with -v); exit."""
    state = ctx.find_object(State)
    if state is not None:
        state.error = message
    trace = state is not None and bool(state.verbose)
    render.say(f"error: {message}", level=logging.ERROR, exc_info=trace, exit_code=code)
    ctx.exit(code)


def _finish(ctx: click.Context, code: int) -> None:
    """Write the --report file of the run that ends with ``code`` (the outermost group only)."""
    path = ctx.meta.get(REPORT_KEY)
    state = ctx.find_object(State)
    if ctx.parent is not None or path is None or state is None:
        return
    try:
        state.write_report(path, command=ctx.invoked_subcommand or "", exit_code=code)
    except OSError as exc:
        render.say(f"error: report {path}: cannot write: {exc.strerror or exc}", level=logging.ERROR)
        if code == EXIT_OK:
            raise click.exceptions.Exit(EXIT_ERROR) from None


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
@click.option("--no-color", is_flag=True, help="No colour in output (NO_COLOR and TERM=dumb work too).")
@click.version_option(__version__, prog_name="scimsync")
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path, verbose: int, quiet: bool, log_format: str, no_color: bool
) -> None:
    """Keep Jira and Confluence user directories in step with your identity provider.

    Global options may come before or after the command: `scimsync plan -q -c prod.yaml`.
    """
    ctx.obj = State(config_path, verbose, quiet, log_format, no_color)


ScimsyncGroup.group_class = ScimsyncGroup
pass_state = click.make_pass_decorator(State)

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(render.FORMATS),
    default="table",
    show_default=True,
    help="Output format.",
)
targets_option = click.option(
    "--target", "targets", multiple=True, metavar="NAME", help="Only this target (repeatable)."
)
allow_option = click.option(
    "--allow-deactivations",
    type=click.IntRange(min=0),
    metavar="N",
    help="Raise this run's deactivation limit to N (also acknowledges an empty source).",
)
