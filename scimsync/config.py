"""YAML config -> validated, frozen models; every problem reported at once with its key path.

Loading (SPEC §3): parse YAML, substitute ``${NAME}`` / ``${NAME:-default}`` in every
string value, validate the schema (unknown keys are errors naming the closest valid
key), then run the checks that span sections. Secrets become ``Secret`` values, and
no error message ever quotes an input value, so a secret cannot leak through one.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import types
import typing
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from scimsync.errors import ConfigError
from scimsync.http import HttpSettings
from scimsync.mapping import RULE_NAMES, USER_NAMES, template_problem
from scimsync.secrets import Secret

SECRET_MARKER = "<secret>"
DEFAULT_PRIVILEGED_GROUPS = [
    "jira-administrators",
    "jira-system-administrators",
    "confluence-administrators",
    "system-administrators",
    "site-admins",
]


class SubkeyError(ValueError):
    """A validation problem about one sub-key of the model being validated."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


# --- field types -----------------------------------------------------------------


def _to_secret(value: Any) -> Secret:
    # Never quote `value` in a message: it is a credential.
    if isinstance(value, Secret):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("must be a string")
    if not str(value):
        raise ValueError("must not be empty")
    return Secret(str(value))


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


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


SyncFields = Annotated[list[Literal["email", "display_name", "username"]], AfterValidator(_no_duplicates)]
MatchKeys = Annotated[list[Literal["username", "email"]], Field(min_length=1), AfterValidator(_no_duplicates)]


# --- models ----------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _SourceBase(_Model):
    include_groups: list[str] = []
    exclude_users: list[str] = []


class OktaSourceConfig(_SourceBase):
    """Okta: ``url`` is the org URL; ``token`` an SSWS API token."""

    type: Literal["okta"]
    url: Url
    token: SecretStr


class EntraSourceConfig(_SourceBase):
    """Microsoft Entra ID through Microsoft Graph with client credentials."""

    type: Literal["entra"]
    tenant_id: NonEmpty
    client_id: NonEmpty
    client_secret: SecretStr
    login_url: Url = "https://login.microsoftonline.com"
    graph_url: Url = "https://graph.microsoft.com"


class GoogleSourceConfig(_SourceBase):
    """Google Workspace Directory API with a service account impersonating an admin."""

    type: Literal["google"]
    credentials_file: ConfigPath
    subject: NonEmpty
    customer: NonEmpty = "my_customer"
    url: Url = "https://admin.googleapis.com"
    token_url: Url = "https://oauth2.googleapis.com/token"


class OneLoginSourceConfig(_SourceBase):
    """OneLogin API v2 with client credentials."""

    type: Literal["onelogin"]
    url: Url
    client_id: NonEmpty
    client_secret: SecretStr


class KeycloakSourceConfig(_SourceBase):
    """Keycloak admin REST API with a confidential client."""

    type: Literal["keycloak"]
    url: Url
    realm: NonEmpty
    client_id: NonEmpty
    client_secret: SecretStr


class ScimSourceConfig(_SourceBase):
    """Any SCIM 2.0 service provider; ``url`` is the SCIM base."""

    type: Literal["scim"]
    url: Url
    token: SecretStr


class LdapSourceConfig(_SourceBase):
    """An LDAP directory; ``attributes`` maps LDAP attribute -> model field."""

    type: Literal["ldap"]
    url: LdapUrl
    bind_dn: NonEmpty
    password: SecretStr
    base_dn: NonEmpty
    user_filter: str | None = None
    group_filter: str | None = None
    attributes: dict[str, str] = {}


class FileSourceConfig(_SourceBase):
    """A CSV, JSON or YAML file of user records."""

    type: Literal["file"]
    path: ConfigPath


SourceConfig = Annotated[
    OktaSourceConfig
    | EntraSourceConfig
    | GoogleSourceConfig
    | OneLoginSourceConfig
    | KeycloakSourceConfig
    | ScimSourceConfig
    | LdapSourceConfig
    | FileSourceConfig,
    Field(discriminator="type"),
]


class MappingConfig(_Model):
    """Templates turning a source user into a target account."""

    username: UserTemplate = "{{ user.username }}"
    email: UserTemplate = "{{ user.email }}"
    display_name: UserTemplate = "{{ user.display_name }}"


class MappingOverride(_Model):
    """A target's overrides of the mapping; None inherits the top-level template."""

    username: UserTemplate | None = None
    email: UserTemplate | None = None
    display_name: UserTemplate | None = None


class GroupRule(_Model):
    """Source groups matching ``from`` (a glob) -> target groups ``to`` (templates)."""

    from_: NonEmpty = Field(alias="from")
    to: Annotated[list[RuleTemplate], BeforeValidator(_as_list), Field(min_length=1)]
    privileged: bool = False


class TargetConfig(_Model):
    """One target system and the groups its users get."""

    type: Literal["jira", "confluence", "atlassian-cloud", "scim"]
    url: Url
    token: SecretStr | None = None
    username: NonEmpty | None = None
    password: SecretStr | None = None
    default_groups: list[str] = []
    groups: list[GroupRule] = []
    mapping: MappingOverride = MappingOverride()

    @model_validator(mode="after")
    def _one_credential(self) -> TargetConfig:
        if self.token is not None and (self.username is not None or self.password is not None):
            raise ValueError("set either token, or username and password, not both")
        if self.username is not None and self.password is None:
            raise SubkeyError("password", "required when username is set")
        if self.password is not None and self.username is None:
            raise SubkeyError("username", "required when password is set")
        if self.token is None and self.username is None:
            raise ValueError("credentials missing: set token, or username and password")
        if self.type == "atlassian-cloud" and self.token is None:
            raise SubkeyError("token", "required: atlassian-cloud takes an API token, not a password")
        return self


class PolicyConfig(_Model):
    """What the tool may do to accounts, and when it must stop."""

    deprovision: Literal["deactivate", "delete", "none"] = "deactivate"
    max_deactivations: Limit = 25
    max_write_failures: Limit = "20%"
    protected_users: list[str] = []
    owner_group: NonEmpty = "scimsync-managed"
    create_groups: bool = True
    sync_fields: SyncFields = ["email", "display_name"]
    privileged_groups: list[str] = DEFAULT_PRIVILEGED_GROUPS

    def deactivation_limit(self, owned: int) -> int:
        """Return how many accounts may be deactivated or deleted on a target with ``owned``."""
        return _apply_limit(self.max_deactivations, owned)

    def write_failures_exceeded(self, failed: int, attempted: int) -> bool:
        """Tell whether the error budget is spent (only once 10 writes have finished)."""
        if attempted < 10:
            return False
        if isinstance(self.max_write_failures, int):
            return failed > self.max_write_failures
        return failed > _percent(self.max_write_failures) * attempted / 100


def _percent(limit: str) -> Fraction:
    # Fraction keeps "7%" of 100 exactly 7, where floats can land on 7.000000000000001.
    return Fraction(limit.rstrip("%"))


def _apply_limit(limit: int | str, total: int) -> int:
    return limit if isinstance(limit, int) else int(_percent(limit) * total / 100)


class HttpConfig(_Model):
    """HTTP behaviour shared by every system (SPEC §8)."""

    timeout: float = Field(default=30.0, gt=0)
    retries: int = Field(default=5, ge=0)
    concurrency: int = Field(default=8, ge=1, le=64)
    rate_limit: float | None = Field(default=None, gt=0)
    ca_bundle: ConfigPath | None = None


_TARGET_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _check_target_names(targets: dict[str, TargetConfig]) -> dict[str, TargetConfig]:
    bad = [name for name in targets if not _TARGET_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"target name '{bad[0]}' may only use letters, digits, '_' and '-'")
    return targets


class Config(_Model):
    """The whole validated configuration."""

    version: Literal[1]
    source: SourceConfig
    mapping: MappingConfig = MappingConfig()
    match: MatchKeys = ["username", "email"]
    targets: Annotated[dict[str, TargetConfig], Field(min_length=1), AfterValidator(_check_target_names)]
    policy: PolicyConfig = PolicyConfig()
    http: HttpConfig = HttpConfig()
    audit_log: ConfigPath | None
    lock_file: ConfigPath
    base_dir: Path

    @field_validator("version", mode="before")
    @classmethod
    def _version_from_env(cls, value: Any) -> Any:
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    def http_settings(self) -> HttpSettings:
        """Return the HTTP layer's settings."""
        h = self.http
        ca = str(h.ca_bundle) if h.ca_bundle else None
        return HttpSettings(h.timeout, h.retries, h.concurrency, h.rate_limit, ca)


# --- loading ---------------------------------------------------------------------

_REF = re.compile(r"\$(\$\{)|\$\{([^}]*)\}|(\$\{)")
_REF_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_LOADER_ONLY = {"base_dir"}


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read, substitute and validate the config file at ``path``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(["file not found"], path=str(file)) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"cannot read the file: {reason}"], path=str(file)) from None
    data = _parse_yaml(text, file)
    # Not resolve(): a symlinked config (a Kubernetes ConfigMap) keeps the folder it is named in.
    base = Path(os.path.abspath(file)).parent
    try:
        return parse_config(data, base_dir=base, env=os.environ if env is None else env)
    except ConfigError as exc:
        raise ConfigError(exc.problems, path=str(file)) from None


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


def parse_config(data: Any, *, base_dir: Path, env: Mapping[str, str]) -> Config:
    """Validate already-parsed YAML ``data`` for a config file in ``base_dir``."""
    if data is None:
        raise ConfigError(["the file is empty; it needs at least version, source and targets"])
    if not isinstance(data, dict):
        raise ConfigError(["the top level must be a mapping of keys such as version, source, targets"])
    problems: list[str] = []
    data = _substitute(data, "", env, problems)
    problems += [f"{k}: unknown key" for k in _LOADER_ONLY if k in data]
    data = {k: v for k, v in data.items() if k not in _LOADER_ONLY}
    data.setdefault("audit_log", "scimsync-audit.jsonl")
    data.setdefault("lock_file", ".scimsync.lock")
    data["base_dir"] = base_dir
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        # An unset variable was replaced by "": its own problem says it better than the schema.
        env_paths = {p.split(": ", 1)[0] for p in problems}
        problems += [p for p in _describe_errors(exc) if p.split(": ", 1)[0] not in env_paths]
        raise ConfigError(list(dict.fromkeys(problems))) from None
    problems += _semantic_problems(config)
    if problems:
        raise ConfigError(problems)
    return config


def _substitute(value: Any, where: str, env: Mapping[str, str], problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, _join(where, k), env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, f"{where}[{i}]", env, problems) for i, v in enumerate(value)]
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


def _semantic_problems(config: Config) -> list[str]:
    privileged = {g.casefold() for g in config.policy.privileged_groups}
    return [
        f"targets.{name}.default_groups: '{group}' is a privileged group; "
        "grant it through a rule with privileged: true"
        for name, target in config.targets.items()
        for group in target.default_groups
        if group.casefold() in privileged
    ]


def config_digest(config: Config) -> str:
    """Return a sha256 over the substituted config, secret values left out (SPEC §6)."""
    dumped = config.model_dump(mode="python", by_alias=True, exclude={"base_dir"})
    canonical = json.dumps(_portable(dumped, config.base_dir), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _portable(value: Any, base: Path) -> Any:
    # Paths inside the config folder count relative to it, so a checkout elsewhere matches.
    if isinstance(value, dict):
        return {str(k): _portable(v, base) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_portable(v, base) for v in value]
    if isinstance(value, Path):
        return value.relative_to(base).as_posix() if value.is_relative_to(base) else str(value)
    return value


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


def _describe_errors(exc: ValidationError) -> list[str]:
    return [_describe(err) for err in exc.errors(include_input=False, include_url=False)]


def _describe(err: Any) -> str:
    loc, kind, ctx = tuple(err["loc"]), err["type"], err.get("ctx") or {}
    path, _ = _walk(loc)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        path = _join(path, "type")
    if kind == "extra_forbidden":
        return f"{path}: {_unknown_key(loc)}"
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


def _unknown_key(loc: tuple[Any, ...]) -> str:
    valid = _keys_of(_walk(loc[:-1])[1])
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
    return f"unknown key (did you mean '{close[0]}'?)" if close else "unknown key"


def _walk(loc: tuple[Any, ...]) -> tuple[str, Any]:
    """Return the key path people write for ``loc`` (union tags left out), and the type there."""
    path, tp = "", Config
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
    return [f.alias or n for n, f in tp.model_fields.items() if n not in _LOADER_ONLY]
