"""The file source's fast readings give what the exact ones give, and errors still name their line."""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from scimsync.config import FileSourceConfig
from scimsync.errors import ConnectorError
from scimsync.sources import file_formats
from scimsync.sources.file import FileSource
from scimsync.sources.file_formats import FormatError, Record, load_json, load_yaml

TEXT = st.text(alphabet="aZ0 :#-&*!'\"é\n", max_size=6)
VALUES = st.recursive(
    TEXT | st.booleans() | st.none() | st.integers(-3, 3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


def shape(value: Any) -> Any:
    """Return ``value`` with each Record's line beside its items (== ignores lines)."""
    if isinstance(value, Record):
        return ("record", value.line, [(k, shape(v)) for k, v in value.items()])
    if isinstance(value, list):
        return [shape(v) for v in value]
    return (type(value).__name__, value)


def outcome(load: Any, text: str) -> Any:
    try:
        return "ok", shape(load(text))
    except FormatError as exc:
        return "error", exc.where, exc.cause


def exact_yaml(text: str) -> Any:
    return file_formats._load_yaml_exact(text)


YAML_CASES = [
    "",
    "---\n",
    "- username: a\n  groups: [x, y]\n- {username: b, active: 'no'}\n",
    "users:\n  - username: 012345\n    attributes: {a: {b: [1, 2]}}\n",
    "- &anchor {username: a}\n",  # an anchor alone is no alias
    "- &a {username: a}\n- *a\n",
    "- username: a\n  groups: *nowhere\n",
    "- username: a\n  username: b\n",
    "- {? [a, b] : c}\n",
    "- {? {a: b} : c}\n",
    "- a\n---\n- b\n",
    "- a\n--- [\n",
    "users:\n  - username: a\n   email: b\n",
    "# comment only\n",
    "!!map {a: !!str b, !custom c: !!int 1}\n",
    "- <<: {a: b}\n  c: d\n",
    "[" * 70 + "]" * 70,
    "[" * 5000 + "]" * 5000,
    "".join(" " * i + "- \n" for i in range(0, 400, 2)),
    "x: [a, {b: c}, [d]]\nx2: |\n  block\n  text\n",
    "- a: 1\n  b: 2\n  a: 3\n",
    "- {a: x}\n- {a: x, b: {a: y, a: z}}\n",
]


@pytest.fixture(params=["libyaml", "python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "python":
        monkeypatch.setattr(file_formats, "_TextLoader", file_formats._PyTextLoader)
    elif not yaml.__with_libyaml__:
        pytest.skip("libyaml is not installed")
    yield request.param


@pytest.mark.parametrize("text", YAML_CASES)
def test_yaml_fast_reading_matches_the_exact_one(loader: str, text: str) -> None:
    assert outcome(load_yaml, text) == outcome(exact_yaml, text)


def test_yaml_fast_reading_keeps_lines(loader: str) -> None:
    text = "users:\n  - username: a\n\n  - {username: b,\n     x: {y: z}}\n"
    assert shape(load_yaml(text)) == shape(exact_yaml(text))
    users = load_yaml(text)["users"]
    assert [users[0].line, users[1].line, users[1]["x"].line] == [2, 4, 5]


@settings(max_examples=150, deadline=None)
@given(data=VALUES, flow=st.sampled_from([True, False, None]), wrap=st.booleans())
def test_yaml_fast_reading_matches_the_exact_one_for_any_document(
    data: Any, flow: bool | None, wrap: bool
) -> None:
    text = yaml.safe_dump({"users": data} if wrap else data, default_flow_style=flow, allow_unicode=True)
    assert outcome(load_yaml, text) == outcome(exact_yaml, text)


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet="ab:-[]{}&*,!?#'\" \n", max_size=30))
def test_yaml_fast_reading_matches_the_exact_one_for_any_text(text: str) -> None:
    assert outcome(load_yaml, text) == outcome(exact_yaml, text)


def json_outcome(text: str, *, lines: bool) -> Any:
    try:
        value = load_json(text, lines=lines)
    except FormatError as exc:
        return "error", exc.where, exc.cause
    return "ok", shape(value) if lines else json.dumps(value)


@pytest.mark.parametrize(
    "text",
    [
        '[{"username": "a", "n": 1.5, "t": true, "z": null}]',
        '{"users": [{"a": {"b": [1, {"c": "d"}]}}]}',
        '[{"a": 1, "a": 2}]',
        '[{"a": {"b": 1, "b": 2}}]',
        '[{"username": "a",\n "email": }]',
        "",
        "[" * 5000 + "]" * 5000,
        '[{"a": NaN}]',
    ],
)
def test_json_fast_reading_matches_the_exact_one(text: str) -> None:
    fast, exact = json_outcome(text, lines=False), json_outcome(text, lines=True)
    if exact[0] == "error":
        assert fast == exact
    else:
        assert fast == ("ok", json.dumps(load_json(text)))
        assert all(r.line == 0 for r in records(load_json(text, lines=False)))


def records(value: Any) -> Iterator[Record]:
    if isinstance(value, Record):
        yield value
    for child in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        yield from records(child)


def source(tmp_path: Path, name: str, content: str) -> FileSource:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return FileSource("hr", FileSourceConfig(type="file", path=path))


def test_a_json_record_error_still_names_its_line(tmp_path: Path) -> None:
    text = (
        '[\n{"id": "a", "username": "a"},\n{"id": "b", "username": "b"},\n\n{"id": "a", "username": "c"}\n]'
    )
    with pytest.raises(ConnectorError) as caught:
        source(tmp_path, "u.json", text).read()
    assert caught.value.obj.endswith("u.json line 5")
    assert caught.value.cause == "duplicate id 'a' (also in line 2)"


@pytest.mark.parametrize("collecting", [True, False])
@pytest.mark.parametrize("content", ['[{"username": "a", "groups": ["G", "g", "H"]}]', '[{"email": 1}]'])
def test_reading_restores_garbage_collection(tmp_path: Path, collecting: bool, content: str) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if collecting else gc.disable)()
        with contextlib.suppress(ConnectorError):
            source(tmp_path, "u.json", content).read()
        assert gc.isenabled() is collecting
    finally:
        (gc.enable if was else gc.disable)()


def test_groups_take_their_first_spelling_once(tmp_path: Path) -> None:
    text = "username,groups\na,Eng;ENG;ops\nb,eng;Ops\nc,x\n"
    directory = source(tmp_path, "u.csv", text).read()
    assert [u.groups for u in directory.users] == [("Eng", "ops"), ("Eng", "ops"), ("x",)]
    assert [(g.id, g.name, g.member_ids) for g in directory.groups] == [
        ("Eng", "Eng", ("a", "b")),
        ("ops", "ops", ("a", "b")),
        ("x", "x", ("c",)),
    ]


def test_usual_files_never_need_the_exact_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any) -> Any:
        raise AssertionError("the exact reading ran")

    monkeypatch.setattr(file_formats, "_load_yaml_exact", refuse)
    monkeypatch.setattr(file_formats, "_JsonDecoder", refuse)
    text = "- &a {username: a, groups: [x, 'y'], dept: R&D *}\n- username: b\n"
    assert load_yaml(text) == [{"username": "a", "groups": ["x", "y"], "dept": "R&D *"}, {"username": "b"}]
    assert load_json('[{"username": "a"}]', lines=False) == [{"username": "a"}]
