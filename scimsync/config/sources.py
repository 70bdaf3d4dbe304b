"""The ``source`` section: one model per identity-provider type, picked by ``type``."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from scimsync.config.types import (
    Bool,
    ConfigModel,
    ConfigPath,
    LdapUrl,
    NonEmpty,
    SecretStr,
    SubkeyError,
    Url,
    check_one_credential,
)
from scimsync.models import USER_FIELDS


class _SourceBase(ConfigModel):
    include_groups: list[str] = []
    exclude_users: list[str] = []


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: Any) -> Any:
    """Read "90s", "30m", "24h" or "7d" as seconds."""
    text = value.strip() if isinstance(value, str) else ""
    number, unit = text[:-1], text[-1:]
    if unit not in _DURATION_UNITS or not number.isdigit() or int(number) == 0:
        raise ValueError("must be a duration such as 30m, 24h or 7d (a whole number and s, m, h or d)")
    return float(int(number) * _DURATION_UNITS[unit])


class OktaIncrementalConfig(ConfigModel):
    """``source.incremental``: read only what changed since the last read (idp-apis §1.7).

    ``full_every`` (a duration: 30m, 24h, 7d; default 24h) is how often a full read runs
    anyway. Between two, a read lists the users changed since the last one, the group list
    and the members of the changed groups, and merges them into a snapshot kept beside the
    link state, ``<state_file>.okta.json`` (so ``state_file`` must be set). Anything odd (no
    or a damaged snapshot, another org, a deleted user, a refused filter) makes a full read.
    """

    full_every: Annotated[float, BeforeValidator(_duration)] = 86400.0


class OktaSourceConfig(_SourceBase):
    """Okta: ``url`` is the org URL; ``token`` an SSWS API token; ``incremental``: see above."""

    type: Literal["okta"]
    url: Url
    token: SecretStr
    incremental: OktaIncrementalConfig | None = None

    @model_validator(mode="after")
    def _incremental_reads_everyone(self) -> OktaSourceConfig:
        if self.incremental is not None and self.include_groups:
            # A scoped read lists other users and groups than the snapshot holds (okta.py).
            raise SubkeyError("incremental", "cannot be combined with include_groups")
        return self


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
    """Keycloak admin REST API with a confidential client.

    ``page_size`` is the ``max`` asked per page of users, groups and members: Keycloak
    documents no cap (idp §5.2); each page repeats the previous page's last entry, so it
    must be at least 2.
    """

    type: Literal["keycloak"]
    url: Url
    realm: NonEmpty
    client_id: NonEmpty
    client_secret: SecretStr
    page_size: int = Field(default=500, ge=2)


class ScimSourceConfig(_SourceBase):
    """Any SCIM 2.0 service provider; ``url`` is the SCIM base (``/Users``, ``/Groups`` appended).

    Credentials: ``token`` (sent as a bearer token), or ``username`` + ``password`` (HTTP
    basic) for a service that announces ``httpbasic``. ``page_size`` is the ``count``
    asked per page; default: the service's ``filter.maxResults``, else 100, and never
    more than that maximum.
    """

    type: Literal["scim"]
    url: Url
    token: SecretStr | None = None
    username: NonEmpty | None = None
    password: SecretStr | None = None
    page_size: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_credential(self) -> ScimSourceConfig:
        check_one_credential(self.token, self.username, self.password)
        return self


class LdapSourceConfig(_SourceBase):
    """An LDAP directory: OpenLDAP or Active Directory, read with a simple bind.

    ``attributes`` maps an LDAP attribute to a user field (``employeeNumber: id``) and
    replaces the flavor's default attribute for that field; every other attribute read is
    in ``user.attributes``. ``flavor``: ``auto`` (Active Directory when the rootDSE says
    so, else OpenLDAP), ``openldap`` or ``active_directory``; it picks the default filters
    and attributes. ``start_tls`` upgrades an ``ldap://`` connection (default true; false
    sends the password in clear: only for a loopback test server). ``ca_file``: the CA
    bundle that signed the directory's certificate (default ``http.ca_bundle``, else the
    system's); TLS is always verified. ``disabled_filter``: an LDAP filter; a user matching
    it is inactive (on Active Directory, so is one with userAccountControl bit 2).
    ``group_member_attribute``: ``member`` or ``uniqueMember``; unset reads both.
    ``page_size``: entries per page of the paged-results control (RFC 2696); 0 turns
    paging off, and a search the server cuts at its size limit is then an error.
    """

    FIELDS: ClassVar[tuple[str, ...]] = ("id", "username", "email", "first_name", "last_name", "display_name")

    type: Literal["ldap"]
    url: LdapUrl
    bind_dn: NonEmpty
    password: SecretStr
    base_dn: NonEmpty
    user_filter: str | None = None
    group_filter: str | None = None
    attributes: dict[NonEmpty, str] = {}
    flavor: Literal["auto", "openldap", "active_directory"] = "auto"
    start_tls: Bool = True
    ca_file: ConfigPath | None = None
    disabled_filter: str | None = None
    group_member_attribute: Literal["member", "uniqueMember"] | None = None
    page_size: int = Field(default=500, ge=0)

    @field_validator("user_filter", "group_filter", "disabled_filter")
    @classmethod
    def _filter_syntax(cls, value: str | None) -> str | None:
        # Imported when used: only a config with an LDAP filter pays for loading ldap3.
        from scimsync.ldap_lib import filter_problem

        problem = None if value is None else filter_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("attributes")
    @classmethod
    def _known_fields(cls, attributes: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for attribute, name in attributes.items():
            if name not in cls.FIELDS:
                close = difflib.get_close_matches(name.lower(), cls.FIELDS, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else f"the fields are {', '.join(cls.FIELDS)}"
                raise SubkeyError(attribute, f"'{name}' is not a user field ({hint})")
            if name in seen:
                raise SubkeyError(attribute, f"'{name}' is already mapped from {seen[name]}")
            seen[name] = attribute
        return attributes


class FileSourceConfig(_SourceBase):
    """A CSV, JSON or YAML file of user records, such as an HR system's export.

    ``columns`` maps a user field to the file's own column (or JSON/YAML key);
    ``active_values`` / ``inactive_values`` are the export's status words (compared
    case-insensitively); ``group_columns`` are columns whose values are group names.
    """

    FIELDS: ClassVar[tuple[str, ...]] = USER_FIELDS

    type: Literal["file"]
    path: ConfigPath
    columns: dict[str, NonEmpty] = {}
    active_values: list[str] = []
    inactive_values: list[str] = []
    group_columns: list[NonEmpty] = []
    group_separator: NonEmpty = ";"
    delimiter: str | None = None
    encoding: NonEmpty = "utf-8"

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        for name, column in columns.items():
            if name in cls.FIELDS:
                continue
            if column in cls.FIELDS:
                hint = f"the user field comes first: {column}: {name}"
            elif close := difflib.get_close_matches(name.lower(), cls.FIELDS, n=1, cutoff=0.6):
                hint = f"did you mean '{close[0]}'?"
            else:
                hint = f"the fields are {', '.join(cls.FIELDS)}"
            raise SubkeyError(name, f"not a user field ({hint})")
        return columns

    @field_validator("active_values", "inactive_values", mode="before")
    @classmethod
    def _words_are_text(cls, values: Any) -> Any:
        if isinstance(values, list) and any(isinstance(v, bool) for v in values):
            # A status word left unquoted: YAML reads yes/no/on/off/true/false as booleans.
            raise ValueError("must be a list of strings; put yes, no, on, off, true and false in quotes")
        return values

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 1 or value in '"\r\n'):
            raise ValueError("must be one character such as ',', ';', '|' or \"\\t\" (a tab)")
        return value

    @field_validator("encoding")
    @classmethod
    def _text_codec(cls, value: str) -> str:
        try:
            "".encode(value)  # LookupError for an unknown codec and for non-text ones (hex, rot13)
        except LookupError:
            raise ValueError(
                "not a text encoding Python knows (e.g. utf-8, cp1252, latin-1, utf-16)"
            ) from None
        return value

    @model_validator(mode="after")
    def _statuses_differ(self) -> FileSourceConfig:
        active = {v.strip().casefold() for v in self.active_values}
        both = [v for v in self.inactive_values if v.strip().casefold() in active]
        if both:
            raise SubkeyError("inactive_values", f"'{both[0].strip()}' is also in active_values")
        return self


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
