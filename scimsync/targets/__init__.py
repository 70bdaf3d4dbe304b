"""Target connectors and the registry of the implemented target types."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scimsync.errors import ConfigError
from scimsync.http import Auth, BasicAuth, BearerAuth, ErrorParser, HttpClient, HttpSettings
from scimsync.http.scim import MEDIA_TYPE as SCIM_MEDIA_TYPE
from scimsync.http.scim import parse_error as parse_scim_error
from scimsync.secrets import Secret
from scimsync.targets.atlassian_cloud import AtlassianCloudTarget
from scimsync.targets.atlassian_cloud import parse_error as parse_atlassian_error
from scimsync.targets.base import Target
from scimsync.targets.confluence import ConfluenceTarget
from scimsync.targets.confluence_errors import parse_error as parse_confluence_error
from scimsync.targets.jira import JiraTarget
from scimsync.targets.jira import parse_error as parse_jira_error
from scimsync.targets.scim import ScimTarget

if TYPE_CHECKING:
    from scimsync.config import TargetConfig


@dataclass(frozen=True)
class TargetType:
    """How to build one type of target: the connector and the parser of its error bodies."""

    factory: Callable[[str, HttpClient], Target]
    error_parser: ErrorParser
    headers: Mapping[str, str] = field(default_factory=dict)  # sent with every request
    bearer_only: bool = False  # takes a token, never a username and password


# RFC 7644 §3.1, §8.1: SCIM requests and answers are application/scim+json.
_SCIM_HEADERS = {"Accept": SCIM_MEDIA_TYPE, "Content-Type": SCIM_MEDIA_TYPE}

TARGET_TYPES: dict[str, TargetType] = {
    "jira": TargetType(JiraTarget, parse_jira_error),
    "confluence": TargetType(ConfluenceTarget, parse_confluence_error),
    "scim": TargetType(ScimTarget, parse_scim_error, _SCIM_HEADERS),
    # reference §3.1: a directory API key, as a bearer token.
    "atlassian-cloud": TargetType(
        AtlassianCloudTarget, parse_atlassian_error, _SCIM_HEADERS, bearer_only=True
    ),
}


def implemented_target_types() -> frozenset[str]:
    """Return the target types this version can build."""
    return frozenset(TARGET_TYPES)


def auth_from(token: Secret | None, username: str | None, password: Secret | None) -> Auth:
    """Return bearer auth for a token, basic auth for a username and password, else None."""
    if token:
        return BearerAuth(token)
    if username and password:
        return BasicAuth(username, password)
    return None


def build_target(name: str, config: TargetConfig, settings: HttpSettings) -> Target:
    """Build the connector for target ``name``, with its own HTTP client."""
    kind = TARGET_TYPES.get(config.type)
    if kind is None:
        available = ", ".join(sorted(TARGET_TYPES))
        problem = f"'{config.type}' is not available in this version (available: {available})"
        raise ConfigError([f"targets.{name}.type: {problem}"])
    auth = auth_from(config.token, config.username, config.password)
    if auth is None:
        raise ConfigError([f"targets.{name}: credentials missing: set token, or username and password"])
    if kind.bearer_only and not isinstance(auth, BearerAuth):
        problem = f"{config.type} takes an API token (token), not a username and password"
        raise ConfigError([f"targets.{name}.token: {problem}"])
    client = HttpClient(
        name,
        config.url,
        auth=auth,
        settings=settings,
        error_parser=kind.error_parser,
        headers=kind.headers or None,
    )
    return kind.factory(name, client)
