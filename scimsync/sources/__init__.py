"""Source connectors, one module per IdP, and the registry that builds them from the config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scimsync.config import Config
from scimsync.config.sources import OktaSourceConfig
from scimsync.errors import ConfigError
from scimsync.http import HttpSettings
from scimsync.sources.base import Source
from scimsync.sources.entra import EntraSource
from scimsync.sources.file import FileSource
from scimsync.sources.google import GoogleSource
from scimsync.sources.keycloak import KeycloakSource
from scimsync.sources.ldap import LdapSource
from scimsync.sources.okta import OktaSource
from scimsync.sources.okta_incremental import snapshot_path
from scimsync.sources.onelogin import OneLoginSource
from scimsync.sources.scim import ScimSource

# type name -> connector class, called as cls(name, source_config, http_settings)
SOURCE_TYPES: dict[str, Callable[[str, Any, HttpSettings], Source]] = {
    "entra": EntraSource,
    "file": FileSource,
    "google": GoogleSource,
    "keycloak": KeycloakSource,
    "ldap": LdapSource,
    "okta": OktaSource,
    "onelogin": OneLoginSource,
    "scim": ScimSource,
}


def implemented_source_types() -> frozenset[str]:
    """Return the source types this version can read."""
    return frozenset(SOURCE_TYPES)


def build_source(config: Config) -> Source:
    """Build the connector for ``config.source``; refuse a type not implemented yet."""
    kind = config.source.type
    factory = SOURCE_TYPES.get(kind)
    if factory is None:
        available = ", ".join(sorted(SOURCE_TYPES))
        raise ConfigError(
            [f"source.type: '{kind}' is not available in this version (available: {available})"]
        )
    source = config.source
    if isinstance(source, OktaSourceConfig) and source.incremental is not None and config.state_file:
        # The snapshot of an incremental read is kept beside the link state.
        snapshot = snapshot_path(config.state_file)
        return OktaSource("source", source, config.http_settings(), snapshot_file=snapshot)
    return factory("source", config.source, config.http_settings())
