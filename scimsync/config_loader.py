"""The steps of loading a config that know nothing of its schema (SPEC §3).

Read the YAML (refusing duplicate keys), substitute ``${NAME}`` / ``${NAME:-default}``
in every string value, and turn pydantic's errors into "key.path: message" lines,
naming the closest valid key when a key is unknown. No message quotes an input
value, so a secret cannot leak through one.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, ValidationError

from scimsync.config_types import SubkeyError
from scimsync.errors import ConfigError

_REF = re.compile(r"\$(\$\{)|\$\{([^}]*)\}|(\$\{)")
_REF_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
# Keys the loader fills in itself; a config file may not set them.
LOADER_ONLY_KEYS = frozenset({"base_dir"})


# --- reading YAML ----------------------------------------------------------------


def read_yaml(file: Path) -> Any:
    """Read and parse the YAML file at ``file``; every failure is a ConfigError naming it."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(["file not found"], path=str(file)) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"cannot read the file: {reason}"], path=str(file)) from None
    return _parse_yaml(text, file)


def _parse_yaml(text: str, file: Path) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            [f"YAML syntax error{where}: {exc.problem or exc.context}"], path=str(file)
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"YAML syntax error: {exc}"], path=str(file)) from None


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys, which plain YAML silently overwrites."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            k = self.construct_object(key_node, deep=deep)
            if k in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{k}'", key_node.start_mark
                )
            seen.add(k)
        return super().construct_mapping(node, deep=deep)


# --- ${NAME} substitution --------------------------------------------------------


def substitute(value: Any, where: str, env: Mapping[str, str], problems: list[str]) -> Any:
    """Return ``value`` with every ``${...}`` replaced from ``env``; append problems found."""
    if isinstance(value, dict):
        return {k: substitute(v, _join(where, k), env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, f"{where}[{i}]", env, problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def replace(m: re.Match[str]) -> str:
        if m[1]:
            return "${"  # `$${` escapes a literal `${`
        body = _REF_BODY.fullmatch(m[2] or "")
        if body is None:
            problems.append(f"{where}: invalid reference '${{...}}' (use ${{NAME}} or ${{NAME:-default}})")
            return ""
        name, default = body[1], body[2]
        found = env.get(name)
        if found is None or (found == "" and default is not None):
            if default is None:
                problems.append(f"{where}: environment variable {name} is not set")
                return ""
            return default
        return found

    return _REF.sub(replace, value)


def _join(where: str, k: Any) -> str:
    return f"{where}.{k}" if where else str(k)


# --- turning pydantic errors into "key.path: message" ------------------------------

_MESSAGES = {
    "missing": "required key is missing",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "path_type": "must be a path",
    "string_too_short": "must not be empty",
    "union_tag_not_found": "required key is missing",
    "too_short": "must not be empty",
}


def describe_errors(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    """Return one "key.path: message" line per error of validating the model ``root``."""
    return [_describe(err, root) for err in exc.errors(include_input=False, include_url=False)]


def _describe(err: Any, root: type[BaseModel]) -> str:
    loc, kind, ctx = tuple(err["loc"]), err["type"], err.get("ctx") or {}
    path, _ = _walk(loc, root)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        path = _join(path, "type")
    if kind == "extra_forbidden":
        return f"{path}: {_unknown_key(loc, root)}"
    if kind == "value_error" and isinstance(ctx.get("error"), SubkeyError):
        return f"{_join(path, ctx['error'].key)}: {ctx['error']}"
    return f"{path}: {_message(kind, ctx, err['msg'])}"


def _message(kind: str, ctx: Mapping[str, Any], default: str) -> str:
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind in ("literal_error", "union_tag_invalid"):
        options = re.findall(r"'([^']*)'|(\d+)", ctx.get("expected") or ctx.get("expected_tags") or "")
        names = [a or b for a, b in options]
        return f"must be {names[0]}" if len(names) == 1 else f"must be one of {', '.join(names)}"
    if kind == "value_error":
        return str(ctx["error"])
    if kind in ("greater_than", "greater_than_equal", "less_than_equal"):
        op = {"greater_than": "greater than", "greater_than_equal": "at least", "less_than_equal": "at most"}
        bound = ctx.get("gt", ctx.get("ge", ctx.get("le")))
        return f"must be {op[kind]} {bound:g}"
    return default[:1].lower() + default[1:]


def _unknown_key(loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    valid = _keys_of(_walk(loc[:-1], root)[1])
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
    return f"unknown key (did you mean '{close[0]}'?)" if close else "unknown key"


def _walk(loc: tuple[Any, ...], root: type[BaseModel]) -> tuple[str, Any]:
    """Return the key path people write for ``loc`` (union tags left out), and the type there."""
    path, tp = "", root
    for part in loc:
        tp, is_tag = _step(tp, part)
        if not is_tag:
            path = f"{path}[{part}]" if isinstance(part, int) else _join(path, part)
    return path, tp


def _step(tp: Any, part: Any) -> tuple[Any, bool]:
    """Return the type one step down ``tp`` at ``part``, and whether ``part`` was a union tag."""
    tp = _unwrap(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, field in tp.model_fields.items():
            if part in (name, field.alias):
                return field.annotation, False
    elif origin is list and args:
        return args[0], False
    elif origin is dict and args:
        return args[1], False
    elif origin in (Union, types.UnionType):
        for member in args:
            tag = getattr(member, "model_fields", {}).get("type")
            if tag is not None and part in typing.get_args(tag.annotation):
                return member, True
    return None, False


def _unwrap(tp: Any) -> Any:
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        args = typing.get_args(tp)
        if typing.get_origin(tp) in (Union, types.UnionType) and type(None) in args and len(args) == 2:
            tp = next(a for a in args if a is not type(None))
            continue
        return tp


def _keys_of(tp: Any) -> list[str]:
    tp = _unwrap(tp)
    if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return []
    return [f.alias or n for n, f in tp.model_fields.items() if n not in LOADER_ONLY_KEYS]
