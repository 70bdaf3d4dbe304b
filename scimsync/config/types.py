"""The field types and base model every config model is built from.

Each type validates one value and says what is wrong in words; no message ever
quotes an input value, so a secret cannot leak through one.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    ValidationInfo,
)

from scimsync.secrets import Secret
from scimsync.templates import RULE_NAMES, USER_NAMES, template_problem

SECRET_MARKER = "<secret>"


class SubkeyError(ValueError):
    """A validation problem about one sub-key of the model being validated."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class EnvText(str):
    """A string value that a ``${NAME}`` reference was substituted into.

    The loader marks these so that a boolean written as ``${FLAG}`` can still be a
    boolean; pydantic hands every validated field a plain ``str``, so the mark goes no
    further than the field validators.
    """

    __slots__ = ()


class ConfigModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _env_bool(value: Any) -> Any:
    # `${FLAG}` can only substitute text; exactly "true"/"false" from one is a boolean.
    # A literal 'yes' or "true" written in the file stays an error: a boolean is a boolean.
    if isinstance(value, EnvText) and value in ("true", "false"):
        return value == "true"
    return value


Bool = Annotated[StrictBool, BeforeValidator(_env_bool)]


def _to_secret(value: Any) -> Secret:
    # Never quote `value` in a message: it is a credential.
    if isinstance(value, Secret):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("must be a string")
    # A secret read from a file often ends in a newline; no credential has edge whitespace.
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("must not contain control characters (is it pasted from a file?)")
    return Secret(text)


SecretStr = Annotated[
    Secret, PlainValidator(_to_secret), PlainSerializer(lambda _: SECRET_MARKER, return_type=str)
]


def _check_url(value: str, schemes: tuple[str, ...] = ("http://", "https://")) -> str:
    if not value.lower().startswith(schemes) or len(value) <= len("https://"):
        raise ValueError(f"must be a URL starting with {' or '.join(schemes)}")
    # Connectors append API paths themselves (SPEC §3), so a trailing slash would double up.
    return value.rstrip("/")


Url = Annotated[str, AfterValidator(_check_url)]
LdapUrl = Annotated[str, AfterValidator(lambda v: _check_url(v, ("ldap://", "ldaps://")))]
NonEmpty = Annotated[str, Field(min_length=1)]


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = value.expanduser()
    return path if path.is_absolute() or base is None else Path(base) / path


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]


def _template_checker(names: frozenset[str]) -> AfterValidator:
    def check(value: str) -> str:
        problem = template_problem(value, names=names)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


UserTemplate = Annotated[str, _template_checker(USER_NAMES)]
RuleTemplate = Annotated[str, _template_checker(RULE_NAMES)]
_LIMIT = re.compile(r"(\d+(?:\.\d+)?)%")


def _parse_limit(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)  # `${MAX:-10}` substitutes a string
    if isinstance(value, str) and (m := _LIMIT.fullmatch(value.strip())) and Fraction(m[1]) <= 100:
        return value.strip()
    raise ValueError("must be a number >= 0 or a percentage such as '5%'")


Limit = Annotated[int | str, PlainValidator(_parse_limit)]


def _no_duplicates(values: list[str]) -> list[str]:
    seen = [v.casefold() for v in values]
    dupes = sorted({v for v in values if seen.count(v.casefold()) > 1})
    if dupes:
        raise ValueError(f"'{dupes[0]}' is listed more than once")
    return values


SyncFields = Annotated[list[Literal["email", "display_name", "username"]], AfterValidator(_no_duplicates)]
MatchKeys = Annotated[
    list[Literal["id", "username", "email"]], Field(min_length=1), AfterValidator(_no_duplicates)
]


def check_one_credential(token: Secret | None, username: str | None, password: Secret | None) -> None:
    """Require a token, or a username with a password, never both (targets and SCIM sources)."""
    if token is not None and (username is not None or password is not None):
        raise ValueError("set either token, or username and password, not both")
    if username is not None and password is None:
        raise SubkeyError("password", "required when username is set")
    if password is not None and username is None:
        raise SubkeyError("username", "required when password is set")
    if token is None and username is None:
        raise ValueError("credentials missing: set token, or username and password")
