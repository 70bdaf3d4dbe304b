"""The steps of loading a config that know nothing of its schema (SPEC §3).

Read the YAML (refusing duplicate keys, bounding what aliases expand to, and taking
only true/false as booleans), substitute ``${NAME}`` / ``${NAME:-default}`` in every
string value, warn about ``$NAME`` written without braces, and turn pydantic's errors
into "key.path: message" lines, naming the closest valid key when a key is unknown
and the closest valid choice when a value is not one of a fixed set. No message
quotes a value except a wrong choice (which no secret field has), so a secret cannot
leak through one.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, ValidationError

from scimsync.config.types import EnvText, SubkeyError
from scimsync.errors import ConfigError
from scimsync.secrets import Secret

_REF = re.compile(r"\$(\$\{)|\$\{([^}]*)\}|(\$\{)")
_REF_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
# `$NAME` where `${NAME}` was meant; `$$` is left alone, as is `${`.
_BARE_REF = re.compile(r"(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)")
# In a secret only a whole value that is clearly a variable name is worth a warning;
# anything else may be a real password that happens to hold a `$`, never to be quoted.
_SECRET_BARE_REF = re.compile(r"\$([A-Z_][A-Z0-9_]*)")
# Keys the loader fills in itself; a config file may not set them.
LOADER_ONLY_KEYS = frozenset({"base_dir", "warnings"})
# What the aliases of a config may expand it to, counted in YAML values (a billion
# laughs is 10**9); a real config with thousands of protected users stays far below.
MAX_YAML_VALUES = 100_000
MAX_YAML_DEPTH = 50  # levels of nesting; a config needs about six


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
        kind = "YAML alias error" if isinstance(exc, _AliasError) else "YAML syntax error"
        raise ConfigError([f"{kind}{where}: {exc.problem or exc.context}"], path=str(file)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"YAML syntax error: {exc}"], path=str(file)) from None
    except RecursionError:
        raise ConfigError(["YAML syntax error: the document is nested too deeply"], path=str(file)) from None


class _AliasError(yaml.MarkedYAMLError):
    """Aliases that refer to themselves, or expand the document past ``MAX_YAML_VALUES``."""


class _StrictLoader(yaml.SafeLoader):
    """A safe loader for configs: no duplicate keys, bounded aliases and nesting, true/false booleans.

    Plain YAML silently overwrites a duplicate key. Its aliases share one value, so a
    small file can stand for a billion values (and a recursive alias for infinitely
    many): they are counted before anything walks the values. And YAML 1.1 reads
    ``yes``, ``no``, ``on`` and ``off`` as booleans, so a group named ``off`` would
    become ``False``; here, as in YAML 1.2, only true and false are booleans.
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # Deep nesting is no config, and PyYAML would only stop it with a RecursionError.
        if self._depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"values are nested more than {MAX_YAML_DEPTH} levels deep",
                parent.start_mark if parent is not None else self.get_mark(),
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            _count_values(node, {}, set())
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            k = self.construct_object(key_node, deep=deep)
            if not isinstance(k, Hashable):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a single value, not a list or mapping", key_node.start_mark
                )
            if k in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{k}'", key_node.start_mark
                )
            seen.add(k)
        return super().construct_mapping(node, deep=deep)


_BOOL_TAG = "tag:yaml.org,2002:bool"
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _count_values(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Return how many values ``node`` stands for with every alias expanded, without expanding.

    An alias is the very node it names, so each node is counted once (``sizes``); a
    node met again while its own children are being counted is a recursive alias.
    """
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise _AliasError(
            None, None, "an alias refers to the value that contains it (a recursive alias)", node.start_mark
        )
    open_nodes.add(id(node))
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    total = 1
    for child in children:
        total += _count_values(child, sizes, open_nodes)
        if total > MAX_YAML_VALUES:
            raise _AliasError(
                None,
                None,
                f"aliases expand the document to more than {MAX_YAML_VALUES} values; "
                "write the values out instead",
                node.start_mark,
            )
    open_nodes.discard(id(node))
    sizes[id(node)] = total
    return total


# --- ${NAME} substitution --------------------------------------------------------


def substitute(value: Any, where: str, env: Mapping[str, str], problems: list[str]) -> Any:
    """Return ``value`` with every ``${...}`` replaced from ``env``; append problems found."""
    if isinstance(value, dict):
        return {k: substitute(v, _join(where, k), env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, f"{where}[{i}]", env, problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value
    substituted = False

    def replace(m: re.Match[str]) -> str:
        nonlocal substituted
        if m[1]:
            return "${"  # `$${` escapes a literal `${`
        body = _REF_BODY.fullmatch(m[2] or "")
        if body is None:
            problems.append(f"{where}: invalid reference '${{...}}' (use ${{NAME}} or ${{NAME:-default}})")
            return ""
        substituted = True
        name, default = body[1], body[2]
        found = env.get(name)
        if found is None or (found == "" and default is not None):
            if default is None:
                problems.append(f"{where}: environment variable {name} is not set")
                return ""
            return default
        return found

    result = _REF.sub(replace, value)
    return EnvText(result) if substituted else result


def bare_reference_warnings(
    value: Any, where: str, secret_keys: frozenset[str], key: Any = None
) -> list[str]:
    """Return a warning for each ``$NAME`` in ``value`` (as written, before substitution).

    ``$NAME`` is never substituted, so it is most likely a ``${NAME}`` written the shell
    way. The warning quotes only the variable-looking name; in a value under one of
    ``secret_keys`` only a whole value such as ``$JIRA_PAT`` counts, so no part of a
    real password is ever shown.
    """
    if isinstance(value, dict):
        return [
            w for k, v in value.items() for w in bare_reference_warnings(v, _join(where, k), secret_keys, k)
        ]
    if isinstance(value, list):
        return [
            w for i, v in enumerate(value) for w in bare_reference_warnings(v, f"{where}[{i}]", secret_keys)
        ]
    if not isinstance(value, str) or "$" not in value:
        return []
    if key in secret_keys:
        whole = _SECRET_BARE_REF.fullmatch(value.strip())
        names = [whole[1]] if whole else []
    else:
        names = list(dict.fromkeys(_BARE_REF.findall(value)))
    return [f"{where}: '${n}' looks like an environment reference; write ${{{n}}}" for n in names]


def literal_secret_paths(value: Any, where: str, secret_keys: frozenset[str]) -> list[str]:
    """Return the key path of each secret written out in ``value`` (the YAML before substitution).

    A value under one of ``secret_keys`` is literal when text is left beside its references,
    or when a reference has a non-empty default (``${TOKEN:-abc123}`` holds ``abc123``); a
    whole ``$TOKEN`` is a mistyped reference, warned about as such.
    """
    if isinstance(value, dict):
        return [
            p
            for k, v in value.items()
            for p in (
                [_join(where, k)]
                if k in secret_keys and _is_literal(v)
                else literal_secret_paths(v, _join(where, k), secret_keys)
            )
        ]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in literal_secret_paths(v, f"{where}[{i}]", secret_keys)]
    return []


def _is_literal(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return False  # not a secret at all: validation says so
    text = str(value)
    if _SECRET_BARE_REF.fullmatch(text.strip()):
        return False  # `$TOKEN`, a reference written the shell way: bare_reference_warnings says so
    for m in _REF.finditer(text):
        body = _REF_BODY.fullmatch(m[2] or "")
        if body is not None and body[2]:
            return True  # a default is written out in the file
    return bool(_REF.sub("", text).strip())


def exposure(mode: int) -> str | None:
    """Say who besides its owner may open a file of ``mode`` ("readable by others (mode 0644)").

    Only group and other bits count (``mode & 0o077``): a file only its owner can open keeps
    a secret as well as the environment would. None when no one else may open it.
    """
    if not mode & 0o077:
        return None
    who = " and ".join(w for w, bits in (("its group", 0o070), ("others", 0o007)) if mode & bits)
    access = "readable" if mode & 0o044 else "writable"
    return f"{access} by {who} (mode {mode & 0o777:04o})"


def secret_keys(root: type[BaseModel]) -> frozenset[str]:
    """Return the YAML keys that hold a ``Secret`` anywhere in the model ``root``."""
    found: set[str] = set()
    seen: set[Any] = set()

    def visit(tp: Any) -> None:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in seen:
                return
            seen.add(tp)
            for name, field in tp.model_fields.items():
                if _unwrap(field.annotation) is Secret:
                    found.add(field.alias or name)
                visit(field.annotation)
            return
        for arg in typing.get_args(tp):
            visit(arg)

    visit(root)
    return frozenset(found)


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
    errors = exc.errors(include_input=False, include_url=False)
    # The input only of a wrong choice: a choice is never a secret, any other value may be.
    chosen = [e.get("input") if e["type"] == "literal_error" else None for e in exc.errors(include_url=False)]
    return [_describe(err, root, given) for err, given in zip(errors, chosen, strict=True)]


def _describe(err: Any, root: type[BaseModel], given: Any = None) -> str:
    loc, kind, ctx = tuple(err["loc"]), err["type"], err.get("ctx") or {}
    path, _ = _walk(loc, root)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        path = _join(path, "type")
    if kind == "extra_forbidden":
        return f"{path}: {_unknown_key(loc, root)}"
    if kind == "value_error" and isinstance(ctx.get("error"), SubkeyError):
        return f"{_join(path, ctx['error'].key)}: {ctx['error']}"
    if kind == "union_tag_invalid":
        given = ctx.get("tag")
    return f"{path}: {_message(kind, ctx, err['msg'], given)}"


def _message(kind: str, ctx: Mapping[str, Any], default: str, given: Any = None) -> str:
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind in ("literal_error", "union_tag_invalid"):
        options = re.findall(r"'([^']*)'|(\d+)", ctx.get("expected") or ctx.get("expected_tags") or "")
        return _wrong_choice([a or b for a, b in options], given)
    if kind == "value_error":
        return str(ctx["error"])
    if kind in ("greater_than", "greater_than_equal", "less_than_equal"):
        op = {"greater_than": "greater than", "greater_than_equal": "at least", "less_than_equal": "at most"}
        bound = ctx.get("gt", ctx.get("ge", ctx.get("le")))
        return f"must be {op[kind]} {bound:g}"
    return default[:1].lower() + default[1:]


def _wrong_choice(names: list[str], given: Any) -> str:
    """Name the wrong choice ``given`` (when it is short, printable text) and the closest valid one."""
    if len(names) == 1:
        return f"must be {names[0]}"
    choices = ", ".join(names)
    if not isinstance(given, str) or not given.isprintable() or len(given) > 60:
        return f"must be one of {choices}"
    by_folded = {n.casefold(): n for n in names}
    close = difflib.get_close_matches(given.casefold(), list(by_folded), n=1, cutoff=0.6)
    hint = f" (did you mean '{by_folded[close[0]]}'?)" if close else ""
    return f"'{given}' is not one of {choices}{hint}"


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
