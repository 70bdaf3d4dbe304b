"""YAML config -> validated, frozen models; every problem reported at once with its key path.

Loading (SPEC §3): parse YAML, substitute ``${NAME}`` / ``${NAME:-default}`` in every
string value, validate the schema (unknown keys are errors naming the closest valid
key), then run the checks that span sections. Secrets become ``Secret`` values, and
no error message ever quotes a secret. What is allowed but probably a mistake (``$NAME``
where ``${NAME}`` was meant) becomes a warning carried on the config.

The schema-free steps (YAML, substitution, error wording) live in ``config_loader``,
the field types in ``config_types`` and the ``source`` models in ``config_sources``;
every config name is still imported from here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, field_validator, model_validator

from scimsync.config.loader import (
    LOADER_ONLY_KEYS,
    bare_reference_warnings,
    describe_errors,
    exposure,
    literal_secret_paths,
    read_yaml,
    secret_keys,
    substitute,
)
from scimsync.config.sources import (
    EntraSourceConfig,
    FileSourceConfig,
    GoogleSourceConfig,
    KeycloakSourceConfig,
    LdapSourceConfig,
    OktaSourceConfig,
    OneLoginSourceConfig,
    ScimSourceConfig,
    SourceConfig,
)
from scimsync.config.types import (
    SECRET_MARKER,
    Bool,
    ConfigModel,
    ConfigPath,
    LdapUrl,
    Limit,
    MatchKeys,
    NonEmpty,
    RuleTemplate,
    SecretStr,
    SubkeyError,
    SyncFields,
    Url,
    UserTemplate,
    check_one_credential,
)
from scimsync.errors import ConfigError
from scimsync.http import HttpSettings

__all__ = [
    "DEFAULT_PRIVILEGED_GROUPS",
    "SECRET_MARKER",
    "Bool",
    "Config",
    "ConfigPath",
    "EntraSourceConfig",
    "FileSourceConfig",
    "GoogleSourceConfig",
    "GroupRule",
    "HttpConfig",
    "KeycloakSourceConfig",
    "LdapSourceConfig",
    "LdapUrl",
    "Limit",
    "MappingConfig",
    "MappingOverride",
    "MatchKeys",
    "NonEmpty",
    "OktaSourceConfig",
    "OneLoginSourceConfig",
    "PolicyConfig",
    "RuleTemplate",
    "ScimSourceConfig",
    "SecretStr",
    "SourceConfig",
    "SubkeyError",
    "SyncFields",
    "TargetConfig",
    "Url",
    "UserTemplate",
    "config_digest",
    "load_config",
    "parse_config",
]

DEFAULT_PRIVILEGED_GROUPS = [
    "jira-administrators",
    "jira-system-administrators",
    "confluence-administrators",
    "system-administrators",
    "site-admins",
]


# --- models ----------------------------------------------------------------------


class MappingConfig(ConfigModel):
    """Templates turning a source user into a target account."""

    username: UserTemplate = "{{ user.username }}"
    email: UserTemplate = "{{ user.email }}"
    display_name: UserTemplate = "{{ user.display_name }}"


class MappingOverride(ConfigModel):
    """A target's overrides of the mapping; None inherits the top-level template."""

    username: UserTemplate | None = None
    email: UserTemplate | None = None
    display_name: UserTemplate | None = None


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class GroupRule(ConfigModel):
    """Source groups matching ``from`` (a glob) -> target groups ``to`` (templates)."""

    from_: NonEmpty = Field(alias="from")
    to: Annotated[list[RuleTemplate], BeforeValidator(_as_list), Field(min_length=1)]
    privileged: Bool = False


class TargetConfig(ConfigModel):
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
        check_one_credential(self.token, self.username, self.password)
        if self.type == "atlassian-cloud" and self.token is None:
            raise SubkeyError("token", "required: atlassian-cloud takes an API token, not a password")
        return self


class PolicyConfig(ConfigModel):
    """What the tool may do to accounts, and when it must stop."""

    deprovision: Literal["deactivate", "delete", "none"] = "deactivate"
    max_deactivations: Limit = 25
    max_write_failures: Limit = "20%"
    protected_users: list[str] = []
    owner_group: NonEmpty = "scimsync-managed"
    create_groups: Bool = True
    sync_fields: SyncFields = ["email", "display_name"]
    privileged_groups: list[str] = DEFAULT_PRIVILEGED_GROUPS

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


class HttpConfig(ConfigModel):
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


class Config(ConfigModel):
    """The whole validated configuration."""

    version: Literal[1]
    source: SourceConfig
    mapping: MappingConfig = MappingConfig()
    match: MatchKeys = ["id", "username", "email"]
    targets: Annotated[dict[str, TargetConfig], Field(min_length=1), AfterValidator(_check_target_names)]
    policy: PolicyConfig = PolicyConfig()
    http: HttpConfig = HttpConfig()
    audit_log: ConfigPath | None
    lock_file: ConfigPath
    state_file: ConfigPath | None
    base_dir: Path
    # Set by the loader, not a YAML key; not part of the config's value (dump, digest).
    warnings: tuple[str, ...] = Field(default=(), exclude=True, repr=False)

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

_SECRET_KEYS = secret_keys(Config)


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read, substitute and validate the config file at ``path``."""
    file = Path(path)
    data = read_yaml(file)
    # Not resolve(): a symlinked config (a Kubernetes ConfigMap) keeps the folder it is named in.
    base = Path(os.path.abspath(file)).parent
    try:
        config = parse_config(data, base_dir=base, env=os.environ if env is None else env)
    except ConfigError as exc:
        raise ConfigError(exc.problems, path=str(file)) from None
    exposed = _exposed_secrets(file, data, config)
    return config.model_copy(update={"warnings": (*config.warnings, *exposed)}) if exposed else config


def _exposed_secrets(file: Path, data: Any, config: Config) -> list[str]:
    """Warn about secrets other accounts of this machine may read: written in the config, or Google's key."""
    warnings: list[str] = []
    shown = exposure(_mode(file))
    if shown:
        warnings += [
            f"{path} holds a literal secret and the file is {shown}: use ${{ENV}} or chmod 600"
            for path in literal_secret_paths(data, "", _SECRET_KEYS)
        ]
    if isinstance(config.source, GoogleSourceConfig):
        key_file = config.source.credentials_file
        shown = exposure(_mode(key_file))
        if shown:
            warnings.append(
                f"source.credentials_file: the service-account key {key_file} is {shown}: chmod 600"
            )
    return warnings


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode
    except OSError:
        return 0  # unreadable: the source says so when it reads the file


def parse_config(data: Any, *, base_dir: Path, env: Mapping[str, str]) -> Config:
    """Validate already-parsed YAML ``data`` for a config file in ``base_dir``."""
    if data is None:
        raise ConfigError(["the file is empty; it needs at least version, source and targets"])
    if not isinstance(data, dict):
        raise ConfigError(["the top level must be a mapping of keys such as version, source, targets"])
    problems: list[str] = []
    warnings = bare_reference_warnings(data, "", _SECRET_KEYS)
    data = substitute(data, "", env, problems)
    problems += [f"{k}: unknown key" for k in LOADER_ONLY_KEYS if k in data]
    data = {k: v for k, v in data.items() if k not in LOADER_ONLY_KEYS}
    data.setdefault("audit_log", "scimsync-audit.jsonl")
    data.setdefault("lock_file", ".scimsync.lock")
    data.setdefault("state_file", "scimsync-state.json")
    data["base_dir"] = base_dir
    data["warnings"] = tuple(warnings)
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        # An unset variable was replaced by "": its own problem says it better than the schema.
        env_paths = {p.split(": ", 1)[0] for p in problems}
        problems += [p for p in describe_errors(exc, Config) if p.split(": ", 1)[0] not in env_paths]
        raise ConfigError(list(dict.fromkeys(problems))) from None
    problems += _semantic_problems(config)
    if problems:
        raise ConfigError(problems)
    return config


def _semantic_problems(config: Config) -> list[str]:
    privileged = {g.casefold() for g in config.policy.privileged_groups}
    problems = [
        f"targets.{name}.default_groups: '{group}' is a privileged group; "
        "grant it through a rule with privileged: true"
        for name, target in config.targets.items()
        for group in target.default_groups
        if group.casefold() in privileged
    ]
    # SPEC §5: every account the tool creates or adopts joins the owner group.
    if config.policy.owner_group.casefold() in privileged:
        problems.append(
            f"policy.owner_group: '{config.policy.owner_group}' is a privileged group; "
            "the owner marker must never grant privileges"
        )
    if getattr(config.source, "incremental", None) is not None and config.state_file is None:
        problems.append(
            "source.incremental: needs state_file (the snapshot is kept beside it as <state_file>.okta.json)"
        )
    return problems


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
