"""The fault matrix (issue 11 item 4): every fault, on each IdP and target, over real sockets.

Each case syncs a small company, changes it, breaks one system (tests/fault_matrix_support.py
says how) and applies. It must either recover (exit 0, and the plan right after is empty) or
end with one-line errors naming the system and the object (exit 1, no traceback); the
simulator must hold no wrong write (checked in its own state, not in scimsync's output); and
with the fault cleared the next run converges. The outcomes make docs/reliability.md:

    SCIMSYNC_RELIABILITY_DOC=docs/reliability.md .venv/bin/python -m pytest tests/test_fault_matrix.py
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from fault_matrix_support import (
    AFTER,
    BEFORE,
    COMMAND,
    Case,
    Outcome,
    Rig,
    documented_cases,
    matrix,
    render,
    run_case,
)

import scimsync.http.client
from scimsync.sim.faults import DROPPED, WRITES, Faults
from scimsync.sim.server import SimServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

DOC = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
ROWS = matrix()


@pytest.fixture(scope="module")
def recorded() -> Iterator[list[Outcome]]:
    """Collect every case's outcome; write docs/reliability.md when asked to and all cases ran."""
    outcomes: list[Outcome] = []
    yield outcomes
    path = os.environ.get("SCIMSYNC_RELIABILITY_DOC")
    if path and len(outcomes) == len(ROWS):
        Path(path).write_text(render(outcomes), encoding="utf-8")


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the HTTP layer's waits (Retry-After, backoff) instead of sleeping them."""
    waits: list[float] = []
    monkeypatch.setattr(scimsync.http.client, "_sleep", waits.append)
    return waits


@pytest.mark.parametrize(("system", "case"), ROWS, ids=[f"{s}-{c.phase}-{c.id}" for s, c in ROWS])
def test_fault(system: str, case: Case, tmp_path: Path, slept: list[float], recorded: list[Outcome]) -> None:
    rig = Rig(tmp_path, system, case)
    try:
        outcome, result = run_case(rig)
        assert "Traceback" not in result.stdout + result.stderr, result.stderr
        if outcome.exit_code == 0:
            outcome.converged, plan = rig.converged()
        else:
            calm = rig.run("apply", "-y")
            outcome.converged, plan = rig.converged()
            outcome.converged &= calm.exit_code == 0
            outcome.wrong_writes += rig.wrong_writes(rig.before)  # the calm run wrote no wrong either
        recorded.append(outcome)

        assert rig.unfired == 0, "the fault never fired: the case proves nothing"
        assert outcome.wrong_writes == []
        assert outcome.converged, plan
        if case.expect_error(rig.source):
            _assert_one_line_errors(rig, outcome, result.stderr)
        else:
            assert outcome.exit_code == 0, result.output
        if case.id == "429-retry-after":
            assert any(wait >= 1 for wait in slept), slept  # Retry-After: 1 was honoured
        if case.id == "token-expiry":
            assert 401 in {e.status for e in rig.faults.log.entries}  # the token did expire
    finally:
        rig.close()


def _assert_one_line_errors(rig: Rig, outcome: Outcome, stderr: str) -> None:
    """Exit 1; every error line names the broken system and an object; a failed read wrote nothing."""
    assert outcome.exit_code == 1, stderr
    assert outcome.errors, stderr
    name = rig.target.name if rig.target_faulted else rig.source.config_name
    for line in outcome.errors:
        # "error: jira: GET /rest/api/2/user/list: ..." / "failed: jira add_member chen: jira: membership ..."
        assert re.match(
            rf"^(error: |failed: {re.escape(name)} \S+ \S+: ){re.escape(name)}: [^:]+: \S", line
        ), line
    if rig.case.phase == "read":
        assert rig.faulted_writes == [], "a run whose read failed wrote"
        assert not any(line.startswith("failed: ") for line in outcome.errors), stderr


def test_the_checks_see_every_kind_of_wrong_write(tmp_path: Path) -> None:
    # The matrix's oracle must be able to fail: plant each wrong write in the simulator.
    case = next(c for s, c in ROWS if s == "jira" and c.id == "503-burst" and c.phase == "write")
    rig = Rig(tmp_path, "jira", case)
    try:
        rig.publish(BEFORE)
        assert rig.run("apply", "-y").exit_code == 0
        rig.publish(AFTER)
        before = rig.untouchable()
        assert rig.wrong_writes(before) == []
        sim = rig.target.harness.sim
        sim.update_user("amara", active=False)  # in the source, deactivated
        sim.add_user("amara2", "bruno@acme.test", "Bruno Twice")  # a second account for one email
        sim.update_user("contractor", displayName="Renamed")  # not ours, changed
        assert sorted(rig.wrong_writes(before)) == [
            "amara is in the source but was deactivated",
            "contractor (not ours) was changed",
            "two accounts with the email bruno@acme.test",
        ]
    finally:
        rig.close()


# --- the fault kinds themselves -------------------------------------------------------


class Echo:
    """A tiny JSON app that answers its query string and counts the requests it served."""

    def __init__(self) -> None:
        self.served = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        """Answer {"page": <the query string>, "items": [...]}."""
        self.served += 1
        query = str(environ.get("QUERY_STRING", ""))
        payload = json.dumps({"page": query, "items": list(range(8))}).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        )
        return [payload]


def test_the_new_fault_kinds_answer_as_documented() -> None:
    app = Echo()
    faults = Faults(app)
    with SimServer(faults) as server:
        url = server.url
        faults.html(200, method=WRITES)
        page = requests.post(url + "/x", timeout=5)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert "<html>" in page.text and app.served == 0  # a proxy's page: the app never saw it
        assert requests.get(url + "/x", timeout=5).json()["page"] == ""  # WRITES spares a GET

        faults.truncate(method="GET")
        cut = requests.get(url + "/x", timeout=5)
        assert cut.status_code == 200 and app.served == 2  # the app acted
        with pytest.raises(ValueError):
            cut.json()
        assert len(cut.content) == int(cut.headers["Content-Length"])

        faults.slow(1.0, method="POST")
        with pytest.raises(requests.Timeout):
            requests.post(url + "/x", timeout=0.3)

        faults.repeat_page("/list", query={"filter": None}, page=2)
        assert requests.get(url + "/list", params={"filter": "x"}, timeout=5).json()["page"] == "filter=x"
        assert requests.get(url + "/list", timeout=5).json()["page"] == ""
        assert (
            requests.get(url + "/list", params={"after": "c1"}, timeout=5).json()["page"] == ""
        )  # page 1 again
        assert requests.get(url + "/list", params={"after": "c1"}, timeout=5).json()["page"] == "after=c1"
        assert faults.pending() == 0

        gone: list[bool] = []
        faults.go_away(1, method="GET", on_gone=lambda: gone.append(True))
        assert faults.pending() == 1
        assert requests.get(url + "/x", timeout=5).status_code == 200  # the last answer
        assert gone == [True] and faults.pending() == 0
        with pytest.raises(requests.ConnectionError):
            requests.post(url + "/x", timeout=5)
        assert faults.log.entries[-1].status == DROPPED
        faults.clear()
        assert requests.get(url + "/x", timeout=5).status_code == 200


# --- docs/reliability.md --------------------------------------------------------------


def test_reliability_doc_lists_exactly_the_matrix() -> None:
    # Generated by the run (see the module docstring); this keeps it from going stale when a
    # case is added, renamed or dropped.
    expected = [(s, c.title, c.phase) for s, c in ROWS]
    assert DOC.exists(), f"generate it: {COMMAND}"
    assert documented_cases(DOC.read_text(encoding="utf-8")) == expected
