"""Sandboxed Jinja2 templates: the environment, scimsync's filters, and compile-time checks.

The config validates every template with ``template_problem`` and the mapping renders them;
both take them from here, so neither imports the other for it.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable

import jinja2
from jinja2 import meta
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
    return _compile(source, where=where)[0]


def _compile(source: str, *, where: str) -> tuple[jinja2.Template, frozenset[str]]:
    """Parse ``source`` once; return its template and the variables it reads."""
    return compile_with_glob(source, where=where)[:2]


def compile_with_glob(source: str, *, where: str) -> tuple[jinja2.Template, frozenset[str], str | None]:
    """Parse ``source`` once; return its template, the variables it reads, and its glob."""
    try:
        ast = _ENV.parse(source)
        return _ENV.from_string(ast), frozenset(meta.find_undeclared_variables(ast)), glob_of(ast)
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
