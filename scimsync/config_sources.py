"""The ``source`` section: one model per identity-provider type, picked by ``type``."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from scimsync.config_types import ConfigModel, ConfigPath, LdapUrl, NonEmpty, SecretStr, SubkeyError, Url
from scimsync.models import USER_FIELDS


class _SourceBase(ConfigModel):
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
