"""The ``source`` section: one model per identity-provider type, picked by ``type``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from scimsync.config_types import ConfigModel, ConfigPath, LdapUrl, NonEmpty, SecretStr, Url


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
