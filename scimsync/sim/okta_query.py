"""Okta ``filter`` and ``search`` expressions, parsed strictly, evaluated on JSON (idp-apis §1.4, §1.5).

``filter`` takes only a few properties, ``eq`` (and the date comparisons on ``lastUpdated``-like
properties) and ``and`` / ``or``; ``search`` takes any property with ``eq``, ``sw``, ``co``
(``co`` only on a few) and the comparisons. ``ne`` and ``not`` are refused (§1.4). Property
names are case-sensitive; operators and values are not. Anything else is 400 E0000031.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from scimsync.sim.okta_common import INVALID_SEARCH, OktaError

_TOKEN = re.compile(r'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|([^\s()"]+))')
_COMPARE = frozenset({"eq", "sw", "co", "gt", "ge", "lt", "le"})
_DATES = frozenset({"gt", "ge", "lt", "le", "eq"})

Node = tuple[Any, ...]  # ("and"|"or", left, right) or ("cmp", property, operator, value)


@dataclass(frozen=True)
class Dialect:
    """What one parameter of one list accepts: property -> its operators (None: any property)."""

    name: str
    properties: Mapping[str, frozenset[str]] | None
    contains: frozenset[str] = frozenset()  # properties ``co`` works on (search)


USER_FILTER = Dialect(
    "filter",
    {
        "status": frozenset({"eq"}),
        "lastUpdated": _DATES,
        "id": frozenset({"eq"}),
        "profile.login": frozenset({"eq"}),
        "profile.email": frozenset({"eq"}),
        "profile.firstName": frozenset({"eq"}),
        "profile.lastName": frozenset({"eq"}),
    },
)
USER_SEARCH = Dialect(
    "search",
    None,
    frozenset({"profile.firstName", "profile.lastName", "profile.email", "profile.login"}),
)
GROUP_FILTER = Dialect(
    "filter",
    {
        "id": frozenset({"eq"}),
        "type": frozenset({"eq"}),
        "lastUpdated": _DATES,
        "lastMembershipUpdated": _DATES,
    },
)
GROUP_SEARCH = Dialect("search", None, frozenset({"profile.name", "profile.description"}))

Predicate = Callable[[Mapping[str, Any]], bool]


def compile_expression(text: str, dialect: Dialect) -> Predicate:
    """Parse ``text`` in ``dialect``; return a predicate over a rendered user or group."""
    tokens = _tokens(text)
    parser = _Parser(tokens, dialect)
    node = parser.expression()
    if parser.position != len(tokens):
        raise _invalid(f"{dialect.name}: unexpected '{tokens[parser.position][1]}'")
    return lambda item: _evaluate(node, item)


def _invalid(cause: str) -> OktaError:
    return OktaError(400, INVALID_SEARCH, causes=[cause])


def _tokens(text: str) -> list[tuple[str, str]]:
    """Split into ("(" | ")" | "str" | "word", text) tokens."""
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise _invalid("an unterminated string")
        position = match.end()
        if match[1]:
            tokens.append(("(", "("))
        elif match[2]:
            tokens.append((")", ")"))
        elif match[3] is not None:
            tokens.append(("str", re.sub(r"\\(.)", r"\1", match[3])))
        else:
            tokens.append(("word", match[4]))
    if not tokens:
        raise _invalid("an empty expression")
    return tokens


class _Parser:
    """Recursive descent: or binds looser than and; parentheses group."""

    def __init__(self, tokens: list[tuple[str, str]], dialect: Dialect) -> None:
        self.tokens = tokens
        self.dialect = dialect
        self.position = 0

    def _peek_word(self) -> str:
        if self.position < len(self.tokens) and self.tokens[self.position][0] == "word":
            return self.tokens[self.position][1].lower()
        return ""

    def _next(self, what: str) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise _invalid(f"{self.dialect.name}: {what} expected at the end")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expression(self) -> Node:
        node = self._conjunction()
        while self._peek_word() == "or":
            self.position += 1
            node = ("or", node, self._conjunction())
        return node

    def _conjunction(self) -> Node:
        node = self._atom()
        while self._peek_word() == "and":
            self.position += 1
            node = ("and", node, self._atom())
        return node

    def _atom(self) -> Node:
        kind, text = self._next("a comparison")
        if kind == "(":
            node = self.expression()
            if self._next("')'")[0] != ")":
                raise _invalid(f"{self.dialect.name}: ')' expected")
            return node
        if kind != "word" or text.lower() in ("and", "or", "not"):
            raise _invalid(f"{self.dialect.name}: a property expected, not '{text}'")
        operator = self._next("an operator")[1].lower()
        self._check(text, operator)
        kind, value = self._next("a value")
        if kind == "word" and value.lower() in ("true", "false"):
            return ("cmp", text, operator, value.lower() == "true")
        if kind != "str":
            raise _invalid(f"{self.dialect.name}: the value of {text} must be quoted")
        return ("cmp", text, operator, value)

    def _check(self, prop: str, operator: str) -> None:
        dialect = self.dialect
        if operator not in _COMPARE:
            # `ne` is not supported; use (status lt "X" or status gt "X") (§1.4).
            raise _invalid(f"{dialect.name}: unsupported operator '{operator}'")
        if dialect.properties is not None:
            allowed = dialect.properties.get(prop)
            if allowed is None:
                raise _invalid(f"{dialect.name}: '{prop}' cannot be filtered on")
            if operator not in allowed:
                raise _invalid(f"{dialect.name}: '{operator}' is not supported on '{prop}'")
        elif operator == "co" and prop not in dialect.contains:
            raise _invalid(f"{dialect.name}: 'co' is not supported on '{prop}'")


def _lookup(item: Mapping[str, Any], prop: str) -> Any:
    value: Any = item
    for part in prop.split("."):  # property names are case-sensitive (§1.4)
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _evaluate(node: Node, item: Mapping[str, Any]) -> bool:
    if node[0] == "and":
        return _evaluate(node[1], item) and _evaluate(node[2], item)
    if node[0] == "or":
        return _evaluate(node[1], item) or _evaluate(node[2], item)
    _, prop, operator, wanted = node
    actual = _lookup(item, prop)
    if actual is None:
        return False
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return operator == "eq" and bool(actual == wanted)
    have, want = str(actual).lower(), str(wanted).lower()  # values compare ignoring case (§1.4)
    if operator == "eq":
        return have == want
    if operator == "sw":
        return have.startswith(want)
    if operator == "co":
        return want in have
    # Okta timestamps and statuses compare as text: ISO dates sort in time order.
    return {"gt": have > want, "ge": have >= want, "lt": have < want, "le": have <= want}[operator]
