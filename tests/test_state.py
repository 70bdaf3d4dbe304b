"""The state file (SPEC §5 Links): read, written atomically, and harmless when damaged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from scimsync.state import State, TargetState, load_state, save_state


def test_round_trip_keeps_links_and_rule_groups(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = State(
        {"jira": TargetState({"00u1": "JIRAUSER10412"}, {"jira-{{ group.name }}": ("jira-b", "jira-a")})}
    )
    save_state(path, state)
    loaded, warning = load_state(path)
    assert warning is None
    assert loaded.target("jira").links == {"00u1": "JIRAUSER10412"}
    assert loaded.target("jira").rule_groups == {"jira-{{ group.name }}": ("jira-a", "jira-b")}
    assert loaded.target("wiki") == TargetState()
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_with_target_replaces_one_target_only() -> None:
    state = State({"jira": TargetState({"a": "1"}), "wiki": TargetState({"b": "2"})})
    changed = state.with_target("jira", TargetState({"c": "3"}))
    assert changed.target("jira").links == {"c": "3"} and changed.target("wiki").links == {"b": "2"}
    assert state.target("jira").links == {"a": "1"}  # a value: the original is unchanged


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[]",
        json.dumps({"format_version": 2, "targets": {}}),
        json.dumps({"format_version": 1, "targets": {"jira": {"links": {"a": 5}}}}),
        json.dumps({"format_version": 1, "targets": {"jira": {"links": {"a": ""}}}}),
        json.dumps({"format_version": 1, "targets": {"jira": {"rule_groups": {"t": [None]}}}}),
        json.dumps({"format_version": 1, "targets": []}),
    ],
    ids=["garbage", "list", "version", "number", "empty", "null group", "targets list"],
)
def test_a_corrupt_state_file_is_a_warning_and_no_links(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text, encoding="utf-8")
    state, warning = load_state(path)
    assert state == State()
    assert warning is not None and str(path) in warning
    assert "matched by username and email" in warning


def test_a_missing_state_file_is_a_warning(tmp_path: Path) -> None:
    state, warning = load_state(tmp_path / "nope.json")
    assert state == State() and warning is not None and "not found" in warning


def test_a_missing_state_file_on_a_first_run_is_expected(tmp_path: Path) -> None:
    assert load_state(tmp_path / "nope.json", first_run=True) == (State(), None)


def test_no_state_file_configured_is_silent() -> None:
    assert load_state(None) == (State(), None)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    save_state(path, State({"jira": TargetState({"a": "1"})}))

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        save_state(path, State({"jira": TargetState({"a": "2"})}))
    assert load_state(path)[0].target("jira").links == {"a": "1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
