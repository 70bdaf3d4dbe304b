"""The audit log's hash chain and the run lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scimsync.audit import AuditLog, verify
from scimsync.engine.plan import FieldChange, Operation, OpKind
from scimsync.errors import LockError
from scimsync.lock import run_lock

OP = Operation(
    kind=OpKind.UPDATE_USER,
    target="jira",
    account="amara",
    reason="r",
    account_id="K1",
    changes=(FieldChange("email", "a@old.test", "a@new.test"),),
)


def test_audit_lines_carry_the_change_and_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path, run_id="run1").record(OP, "done")
    AuditLog(path, run_id="run2").record(OP, "failed", "jira: user amara: HTTP 400")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["run"] for line in lines] == ["run1", "run2"]
    assert lines[0]["changes"] == [{"field": "email", "old": "a@old.test", "new": "a@new.test"}]
    assert lines[1]["prev"] == lines[0]["hash"]
    assert verify(path) == (2, None)
    assert path.stat().st_mode & 0o777 == 0o600


def test_verify_names_the_first_changed_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for _ in range(3):
        log.record(OP, "done")
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"done"', '"failed"')
    path.write_text("\n".join(lines) + "\n")
    assert verify(path) == (1, "line 2: content changed after it was written")
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    assert verify(path)[1] == "line 2: chain broken (a line before it was changed or removed)"


def test_second_run_is_refused_while_the_lock_is_held(tmp_path: Path) -> None:
    lock = tmp_path / "run.lock"
    with run_lock(lock), pytest.raises(LockError, match="another scimsync run is writing"), run_lock(lock):
        pass
    with run_lock(lock):  # released: the next run goes ahead
        pass


@pytest.mark.parametrize(
    ("garbage", "problem"),
    [
        (b"[1, 2]\n", "line 2: not an audit record"),
        (b"\xff\xfe\n", "line 2: not JSON"),
        (b"{oops\n", "line 2: not JSON"),
    ],
    ids=["list", "not-utf8", "broken"],
)
def test_verify_reports_garbage_lines(tmp_path: Path, garbage: bytes, problem: str) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).record(OP, "done")
    with path.open("ab") as fh:
        fh.write(garbage)
    assert verify(path) == (1, problem)


def test_unwritable_audit_log_is_refused_before_any_write(tmp_path: Path) -> None:
    from scimsync.errors import ScimsyncError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ScimsyncError, match=r"audit_log .*/file/audit\.jsonl: cannot write"):
        AuditLog(blocker / "audit.jsonl").open()
