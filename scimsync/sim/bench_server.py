"""The benchmark's simulators, each in a process of its own: their CPU is not the client's.

``SimProcess`` starts one system (``bench_systems.SYSTEMS``) in a child process that serves
it on loopback (``SimServer``: a thread per connection, so the injected latency does not
serialize requests) and answers JSON-line commands on its stdin: seed a fresh simulator,
clear and read the request log, churn an IdP, put a rate limit in front (``sim.ratelimit``).
The server's port never changes: a reseed swaps the simulator behind it.
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import traceback
from collections import Counter
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from scimsync.sim.bench_company import Churn, Person, churn, make_company
from scimsync.sim.bench_systems import SYSTEMS, System
from scimsync.sim.ratelimit import RateLimited
from scimsync.sim.server import SimServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class _Current:
    """A WSGI app that serves whichever simulator was seeded last, behind its rate limit if any."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.front: RateLimited | None = None

    def serve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        result: Iterable[bytes] = self.sim.app(environ, start_response)
        return result

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return (self.front or self.serve)(environ, start_response)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _okta_churn(sim: Any, churned: Churn, before: dict[str, Person]) -> None:
    """Make an Okta org show the churned company (the file source just gets a new file)."""
    after = {p.id: p for p in churned.people}
    groups = {g.name: g.id for g in sim.directory.groups.values()}
    for pid in churned.joiners:
        p = after[pid]
        sim.add_user(p.email, p.email, p.first_name, p.last_name, id=p.id)
        for group in p.groups:
            sim.add_member(groups[group], p.id)
    for pid in churned.leavers:
        sim.set_status(pid, "DEPROVISIONED")
    for pid in churned.renames:
        p = after[pid]
        sim.update_profile(pid, login=p.email, email=p.email, lastName=p.last_name)
    for pid in churned.movers:
        old, new = set(before[pid].groups), set(after[pid].groups)
        for group in old - new:
            sim.remove_member(groups[group], pid)
        for group in new - old:
            sim.add_member(groups[group], pid)


class _Child:
    """The child's side: the simulator, its server, and the command handlers."""

    def __init__(self, system: System, latency: float) -> None:
        self.system = system
        self.latency = latency
        self.size = 0
        self.current = _Current(system.build(0))
        self.server = SimServer(self.current)
        self.cpu_mark = _cpu()

    def seed(self, size: int, converged: bool) -> dict[str, str]:
        sim = self.system.build(size)
        links = self.system.seed(sim, make_company(size)) if converged else {}
        sim.faults.latency = self.latency
        self.current.sim, self.size = sim, size
        return links

    def churn(self) -> None:
        company = make_company(self.size)
        _okta_churn(self.current.sim, churn(company), {p.id: p for p in company})

    def limit(self, capacity: int | None, fill_per_second: float) -> None:
        """Put a token bucket in front of the simulator (atlassian §1.11); None takes it away."""
        front = None
        if capacity:
            front = RateLimited(
                self.current.serve, capacity=capacity, fill_per_second=fill_per_second, latency=self.latency
            )
        self.current.front = front

    def clear(self) -> None:
        self.current.sim.log.clear()
        if self.current.front is not None:
            self.current.front.clear()
        self.cpu_mark = _cpu()

    def log(self) -> dict[str, Any]:
        counts: Counter[tuple[str, str, int]] = Counter()
        for entry in self.current.sim.log.entries:
            counts[(entry.method, self.system.endpoint(entry.path), entry.status)] += 1
        front = self.current.front
        for (method, path), n in front.refused.items() if front is not None else ():
            counts[(method, self.system.endpoint(path), 429)] += n  # refused before the app logs it
        rows = [[method, path, status, n] for (method, path, status), n in sorted(counts.items())]
        return {"requests": rows, "cpu": _cpu() - self.cpu_mark}

    def handle(self, command: str, args: dict[str, Any]) -> Any:
        if command == "seed":
            return self.seed(args["size"], args["converged"])
        if command == "churn":
            return self.churn()
        if command == "clear":
            return self.clear()
        if command == "log":
            return self.log()
        if command == "limit":
            return self.limit(args["capacity"], args["fill_per_second"])
        raise ValueError(f"unknown command {command!r}")


def serve(kind: str, latency: float) -> None:
    """The child process: serve the system; answer JSON-line commands on stdin until told to stop."""
    child = _Child(SYSTEMS[kind], latency)
    url = child.server.start()
    answer = sys.stdout
    answer.write(json.dumps(["ok", url + child.system.base_path]) + "\n")
    answer.flush()
    try:
        for line in sys.stdin:
            command, args = json.loads(line)
            if command == "stop":
                break
            try:
                reply = ["ok", child.handle(command, args)]
            except Exception:  # the child's top level: the parent raises it, traceback included
                reply = ["error", traceback.format_exc()]
            answer.write(json.dumps(reply) + "\n")
            answer.flush()
    finally:
        child.server.stop()


class SimProcessError(RuntimeError):
    """A command failed in the simulator process (the message holds its traceback)."""


class SimProcess:
    """A system served from a child process (``python -m scimsync.sim.bench_server KIND LATENCY``)."""

    def __init__(self, kind: str, *, latency: float) -> None:
        self.kind = kind
        self.system = SYSTEMS[kind]
        self._process = subprocess.Popen(
            [sys.executable, "-m", "scimsync.sim.bench_server", kind, repr(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = str(self._answer())

    def _answer(self) -> Any:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise SimProcessError(f"{self.kind} simulator: the process ended (exit {self._process.wait()})")
        status, value = json.loads(line)
        if status != "ok":
            raise SimProcessError(f"{self.kind} simulator: {value}")
        return value

    def call(self, command: str, **args: Any) -> Any:
        """Run a command in the simulator process and return its answer."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps([command, args]) + "\n")
        self._process.stdin.flush()
        return self._answer()

    def seed(self, size: int, *, converged: bool) -> dict[str, str]:
        """Replace the simulator by a fresh one, empty or holding the converged company."""
        links: dict[str, str] = self.call("seed", size=size, converged=converged)
        return links

    def stop(self) -> None:
        """Stop the server and the process."""
        if self._process.poll() is None and self._process.stdin is not None:
            with contextlib.suppress(OSError):  # the child is gone already
                self._process.stdin.write(json.dumps(["stop", {}]) + "\n")
                self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


if __name__ == "__main__":
    serve(sys.argv[1], float(sys.argv[2]))
