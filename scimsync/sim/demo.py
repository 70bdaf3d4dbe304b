"""``scimsync demo``: a simulated IdP and Atlassian products, a made-up company, plan -> apply -> plan.

The IdP comes from ``demo_sources.SOURCES`` (a CSV file by default), the targets from
``demo_targets.TARGETS`` (Jira and Confluence Data Center by default). Everything is
started inside one ``ExitStack``: whatever happens, including an error or Ctrl-C (or
SIGTERM) while ``--keep`` holds the servers up, each server is stopped and the demo's
temporary folder removed on the way out.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from scimsync import api
from scimsync.config import Config
from scimsync.render import Consoles, progress, render_apply, render_plan
from scimsync.sim import demo_sources, demo_targets
from scimsync.sim.company import make_people
from scimsync.sim.demo_sources import DemoSource
from scimsync.sim.demo_targets import DemoTarget

CONFIG = """\
# Written by `scimsync demo`. Every key is documented in config.example.yaml.
version: 1
source:
{source}  include_groups: ["atlassian-*"]      # only people in an atlassian-* group get accounts
mapping:
  username: "{{{{ user.email | localpart | lower }}}}"
  email: "{{{{ user.email | lower }}}}"
  display_name: "{{{{ user.first_name }}}} {{{{ user.last_name }}}}"
targets:
{targets}policy:
  protected_users: [admin]
  max_deactivations: 5
audit_log: audit.jsonl
lock_file: .scimsync.lock
"""
INDENT = " " * len("scimsync demo: ")


def make_company() -> list[dict[str, Any]]:
    """Return the made-up company, with one person who left yesterday (still active in Jira)."""
    people = make_people(40)
    jira_users = [p for p in people if "atlassian-jira-users" in p["groups"]]
    jira_users[4]["active"] = False
    return people


def run_demo(
    consoles: Consoles, *, source: str = demo_sources.DEFAULT, targets: Sequence[str] = (), keep: bool = False
) -> None:
    """Start the IdP and the targets, write a config, and run plan, apply, plan."""
    start_source = demo_sources.pick(source)
    names = demo_targets.pick(targets)
    people = make_company()
    with _sigterm_interrupts(), ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scimsync-demo-")))
        idp = stack.enter_context(start_source(people, folder))
        systems = [stack.enter_context(demo_targets.TARGETS[name](people)) for name in names]
        config = _write_config(folder, idp, systems)
        _intro(consoles, folder, idp, systems, len(people))
        _plan_apply_plan(consoles, config, systems)
        _next_steps(consoles, folder, idp, flags=_flags(source, names), keep=keep)
        if keep:
            _serve_until_stopped(consoles)
    if keep:
        consoles.out.print(f"Stopped the simulators and removed {folder}.")


def _write_config(folder: Path, idp: DemoSource, systems: Sequence[DemoTarget]) -> Config:
    blocks = "".join(textwrap.indent(t.block, "  ") for t in systems)
    text = CONFIG.format(source=textwrap.indent(idp.block, "  "), targets=blocks)
    (folder / "scimsync.yaml").write_text(text, encoding="utf-8")
    return api.load(folder / "scimsync.yaml")


def _intro(
    consoles: Consoles, folder: Path, idp: DemoSource, systems: Sequence[DemoTarget], people: int
) -> None:
    out = consoles.out
    for n, system in enumerate(systems):
        lead = "[bold]scimsync demo[/]: " if n == 0 else INDENT + ("and " if n == len(systems) - 1 else "")
        out.print(f"{lead}{system.title}")
    out.print(f"source: {idp.title} ({people} people); config: {folder / 'scimsync.yaml'}\n")


def _plan_apply_plan(consoles: Consoles, config: Config, systems: Sequence[DemoTarget]) -> None:
    out = consoles.out
    out.print("[bold]1. scimsync plan[/]  (reads only)")
    with progress(consoles) as report:
        plan = api.make_plan(config, progress=report)
    render_plan(plan, consoles)

    out.print("\n[bold]2. scimsync apply -y[/]")
    _clear_logs(systems)
    with progress(consoles) as report:
        result = api.apply(config, plan, recheck=False, progress=report, stop=threading.Event())
    render_apply(result, consoles)
    first, *rest = systems
    sent = [f"{len(first.log.writes())} write requests sent to {first.label}"]
    out.print(", ".join(sent + [f"{len(s.log.writes())} to {s.label}" for s in rest]) + ".")

    out.print("\n[bold]3. scimsync plan[/]  (again: nothing left to do)")
    _clear_logs(systems)
    render_plan(api.make_plan(config), consoles)
    writes = sum(len(s.log.writes()) for s in systems)
    out.print(f"{writes} write requests sent by the second plan.\n")


def _clear_logs(systems: Sequence[DemoTarget]) -> None:
    for system in systems:
        system.log.clear()


def _flags(source: str, names: Sequence[str]) -> list[str]:
    """Return the options that start this demo again: what differs from the defaults."""
    flags = [f"--source {source}"] if source != demo_sources.DEFAULT else []
    if list(names) != list(demo_targets.DEFAULT):
        flags += [f"--target {name}" for name in names]
    return flags


def _next_steps(
    consoles: Consoles, folder: Path, idp: DemoSource, *, flags: Sequence[str], keep: bool
) -> None:
    """Print what to try next, with commands that work as printed.

    Without --keep the simulators and the folder are gone when this is read: point to --keep.
    """
    out, me = consoles.out, command_name()
    out.print("[bold]What to try next[/]")
    if not keep:
        again = " ".join([me, "demo --keep", *flags])
        out.print(f"  {again}     keeps the simulators running and shows commands to try against them")
    else:
        out.print("  In another shell, while this one keeps the simulators running:")
        out.print(f"  {idp.hint}")
        out.print(f"  {me} -c {folder / 'scimsync.yaml'} plan")
        out.print(f"  {me} -c {folder / 'scimsync.yaml'} plan --format markdown --out plan.json")
        out.print(f"  {me} -c {folder / 'scimsync.yaml'} apply plan.json")
    example = Path("config.example.yaml")
    if example.is_file():
        out.print(f"  cp {example} scimsync.yaml   then point it at your own IdP and Jira")
    else:
        out.print("  write scimsync.yaml for your own IdP and Jira (README: Configuration)")
    activate = Path(me).parent / "activate"
    if me != "scimsync" and activate.is_file():
        out.print(f"  (or activate the virtual environment, `source {activate}`, and type scimsync)")


def command_name(argv0: str | None = None) -> str:
    """Return how to type this scimsync again: `scimsync` when that is on PATH, else its path.

    `make demo` runs `.venv/bin/scimsync`, which a new shell does not find by name.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    on_path = shutil.which("scimsync")
    if Path(argv0).name != "scimsync":  # python -m scimsync
        return "scimsync" if on_path else f"{Path(sys.executable)} -m scimsync"
    if on_path and Path(on_path).resolve() == Path(argv0).resolve():
        return "scimsync"
    return os.path.relpath(argv0) if not os.path.isabs(argv0) else argv0


def _serve_until_stopped(consoles: Consoles) -> None:
    """Block until Ctrl-C or SIGTERM: the caller's ``with`` blocks then stop everything."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # A flag, not KeyboardInterrupt: an exception raised inside a print can leave the
    # console's lock held, and the goodbye line would then hang.
    main = threading.current_thread() is threading.main_thread()
    signals = (signal.SIGINT, signal.SIGTERM) if main else ()
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        consoles.out.print("\nThe simulators keep running until Ctrl-C.")
        while not stop.wait(0.5):
            pass
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Make SIGTERM unwind like Ctrl-C, so that servers stop and folders go (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        # Once: a second SIGTERM must not cut short the cleanup the first one started.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
