"""Sandboxed Jinja2 templates: the environment, scimsync's filters, and compile-time checks.

The config validates every template with ``template_problem`` and the mapping renders them;
both take them from here, so neither imports the other for it.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from scimsync.errors import ConfigError
from scimsync.models import USER_FIELDS

# Names a template may use; a rule's `to` also sees the matched source group.
USER_NAMES = frozenset({"user"})
RULE_NAMES = frozenset({"user", "group"})

# What a filter or expression can raise while rendering, besides Jinja's own errors.
RENDER_ERRORS = (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError)


def localpart(value: object) -> str:
    """Return the part of an email address before the last '@' ("a.b@x.com" -> "a.b")."""
    text = str(value)
    return text.rpartition("@")[0] if "@" in text else text


def domain(value: object) -> str:
    """Return the part of an email address after the last '@' ("a.b@x.com" -> "x.com")."""
    return str(value).rpartition("@")[2] if "@" in str(value) else ""


def slug(value: object) -> str:
    """Return lowercase ASCII with accents dropped and runs of other characters as '-'."""
    decomposed = unicodedata.normalize("NFKD", str(value))
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")


def make_environment() -> SandboxedEnvironment:
    """Build the sandboxed environment every mapping template is compiled in."""
    # finalize: a profile field the IdP sends as null renders as "", not "None".
    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, finalize=lambda v: "" if v is None else v
    )
    env.filters.update({"localpart": localpart, "domain": domain, "slug": slug})
    return env


_ENV = make_environment()


def template_problem(source: str, *, names: frozenset[str] = USER_NAMES) -> str | None:
    """Return why ``source`` is not a usable template ("template error: ..."), or None."""
    try:
        ast = _ENV.parse(source)
        _ENV.compile(ast)
    except jinja2.TemplateSyntaxError as exc:
        return _syntax_problem(exc)
    read = meta.find_undeclared_variables(ast)
    unknown = sorted(read - names)
    if unknown:
        return f"template error: unknown name '{unknown[0]}' (available: {', '.join(sorted(names))})"
    return _unknown_field_problem(ast, read & names)


# The fields of each template variable (SPEC §3); below `user.attributes` any name goes.
_FIELDS = {"user": (*USER_FIELDS, "attributes"), "group": ("name", "id")}


def _unknown_field_problem(ast: jinja2.nodes.Template, variables: Iterable[str]) -> str | None:
    """Name the first ``user.x`` / ``user['x']`` (or ``group.x``) whose field does not exist.

    Without this, ``{{ user.firstname }}`` passes validation and fails for every user at
    plan time. Only a constant name is checked: ``user[field]`` is left to rendering.
    """
    for node in ast.find_all((jinja2.nodes.Getattr, jinja2.nodes.Getitem)):
        assert isinstance(node, jinja2.nodes.Getattr | jinja2.nodes.Getitem)
        variable = node.node
        if not (isinstance(variable, jinja2.nodes.Name) and variable.name in variables):
            continue
        field = _field_read(node)
        fields = _FIELDS.get(variable.name, ())
        if field is None or field in fields:
            continue
        close = difflib.get_close_matches(field.casefold(), fields, n=1, cutoff=0.6)
        hint = (
            f"did you mean '{variable.name}.{close[0]}'?"
            if close
            else "available: " + ", ".join(f"{variable.name}.{f}" for f in fields)
        )
        return f"template error: unknown name '{variable.name}.{field}' ({hint})"
    return None


def _field_read(node: jinja2.nodes.Getattr | jinja2.nodes.Getitem) -> str | None:
    if isinstance(node, jinja2.nodes.Getattr):
        return node.attr
    key = node.arg
    return key.value if isinstance(key, jinja2.nodes.Const) and isinstance(key.value, str) else None


def compile_template(source: str, *, where: str) -> jinja2.Template:
    """Compile ``source``; raise ConfigError naming ``where`` when it does not compile."""
    return compile_with_glob(source, where=where)[0].template


def compile_with_glob(source: str, *, where: str) -> tuple[Renderer, frozenset[str], str | None]:
    """Parse ``source`` once; return its renderer, the variables it reads, and its glob."""
    try:
        ast = _ENV.parse(source)
        # Read the tree before compiling it: the compiler's optimizer may rewrite it in place.
        parts, glob = simple_parts(ast), glob_of(ast)
        return Renderer(_ENV.from_string(ast), parts), frozenset(meta.find_undeclared_variables(ast)), glob
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError([f"{where}: {_syntax_problem(exc)}"]) from None


def glob_of(ast: jinja2.nodes.Template) -> str | None:
    """Return a glob every name the template renders fits ("jira-{{ group.name }}" -> "jira-*").

    None when the template has statements ({% if %}, loops): then nothing it produced
    earlier is trusted from memory.
    """
    parts = []
    for node in ast.body:
        if not isinstance(node, jinja2.nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, jinja2.nodes.TemplateData):
                parts.append(re.sub(r"([*?\[])", r"[\1]", child.data))
            else:
                parts.append("*")
    return re.sub(r"\*+", "*", "".join(parts)).strip()


def _syntax_problem(exc: jinja2.TemplateSyntaxError) -> str:
    message = (exc.message or "invalid syntax").rstrip(".")
    return f"template error: {message[:1].lower()}{message[1:]} (line {exc.lineno})"


# --- rendering -------------------------------------------------------------------

# Filters Jinja calls as ``f(value)``: no context, environment or argument passed.
PLAIN_FILTERS = frozenset(
    {"lower", "upper", "trim", "title", "capitalize", "string", "localpart", "domain", "slug"}
)
# Names of dict attributes (``items``, ``keys``): on a dict, the sandbox prefers them to its keys.
_DICT_ATTRIBUTES = frozenset(dir(dict))
_FINALIZE = cast("Callable[[Any], Any]", _ENV.finalize)
_MISSING = object()


@dataclass(frozen=True)
class Lookup:
    """One ``{{ user.email | lower }}``: a variable, the attributes and keys read, the filters."""

    name: str
    steps: tuple[tuple[bool, str], ...]  # (True, "a") is ``.a``, (False, "a") is ``["a"]``
    filters: tuple[Callable[[Any], Any], ...]

    def value(self, context: Mapping[str, Any]) -> str:
        """Return what Jinja's compiled code yields for it, through the same sandbox calls.

        The generated code is ``str(finalize(f2(f1(getattr(getattr(name, a), b)))))``;
        a name the context lacks is ``undefined(name=...)`` (its globals never hold
        ``user`` or ``group``).
        """
        value = context[self.name] if self.name in context else _ENV.undefined(name=self.name)
        for is_attribute, step in self.steps:
            if type(value) is dict and step not in _DICT_ATTRIBUTES:
                # What the sandbox's getattr and getitem both do for a plain dict's own key
                # (getattr without raising AttributeError first).
                found = value.get(step, _MISSING)
                if found is not _MISSING:
                    value = found
                    continue
            value = _ENV.getattr(value, step) if is_attribute else _ENV.getitem(value, step)
        for function in self.filters:
            value = function(value)
        return str(_FINALIZE(value))


Part = str | Lookup


class Renderer:
    """A compiled template that renders its simple shapes without Jinja's per-call set-up.

    A template of text and ``{{ user.a.b | filter }}`` lookups (``simple_parts``) is
    evaluated here with the sandbox's own ``getattr``, ``getitem``, filters and
    ``finalize``, so it gives the same text and raises the same errors as Jinja; a
    template of text alone is rendered once. Any other template goes to Jinja.
    """

    def __init__(self, template: jinja2.Template, parts: tuple[Part, ...] | None) -> None:
        self.template = template
        self.parts = parts
        texts = [p for p in parts or () if isinstance(p, str)]
        # Text alone (a constant group name) renders the same for everyone: join it once.
        self._text = "".join(texts) if parts is not None and len(texts) == len(parts) else None
        # One lookup alone (``{{ user.email | lower }}``, ``{{ group.name }}``): nothing to join.
        only = parts[0] if parts is not None and len(parts) == 1 else None
        self._only = only if isinstance(only, Lookup) else None

    def render(self, context: Mapping[str, Any]) -> str:
        """Render with ``context`` (the template's variables)."""
        if self._text is not None:
            return self._text
        if self._only is not None:
            return self._only.value(context)
        if self.parts is None:
            return self.template.render(context)
        return "".join([p if isinstance(p, str) else p.value(context) for p in self.parts])


def simple_parts(ast: nodes.Template) -> tuple[Part, ...] | None:
    """Return the template as text and lookups, or None when it holds anything else."""
    parts: list[Part] = []
    for node in ast.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            part = child.data if isinstance(child, nodes.TemplateData) else _lookup(child)
            if part is None:
                return None
            parts.append(part)
    return tuple(parts)


def _lookup(node: nodes.Node | None) -> Lookup | None:
    """Return ``node`` as a lookup of ``user`` or ``group``, or None for any other expression."""
    filters = []
    while isinstance(node, nodes.Filter):
        if node.name not in PLAIN_FILTERS or _has_arguments(node):
            return None
        filters.append(_ENV.filters[node.name])
        node = node.node
    steps = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            steps.append((True, node.attr))
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            steps.append((False, node.arg.value))
        else:
            return None
        node = node.node
    if not (isinstance(node, nodes.Name) and node.name in RULE_NAMES):
        return None
    return Lookup(node.name, tuple(reversed(steps)), tuple(reversed(filters)))


def _has_arguments(node: nodes.Filter) -> bool:
    return bool(node.args or node.kwargs or node.dyn_args or node.dyn_kwargs)
