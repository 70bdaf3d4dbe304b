"""The one HTTP layer: client (session, retries), errors, rate limiting, pagination, tokens, SCIM."""

from scimsync.http.client import (
    RETRY_STATUSES,
    Auth,
    BasicAuth,
    BearerAuth,
    ErrorParser,
    HttpClient,
    HttpSettings,
    default_error_parser,
)
from scimsync.http.tokens import ClientCredentials, TokenAuth, TokenSource

__all__ = [
    "RETRY_STATUSES",
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "ClientCredentials",
    "ErrorParser",
    "HttpClient",
    "HttpSettings",
    "TokenAuth",
    "TokenSource",
    "default_error_parser",
]
