"""The okta source: users and groups of an Okta org through its Management API (SPEC §3, idp-apis §1).

Authentication is an SSWS API token (``Authorization: SSWS <token>``, §1.1). It cannot be
refreshed: a token revoked or expired during a read fails the read with a line saying what
to check. The token acts with its admin's privileges; least privilege is the Read-Only
Administrator role (or a custom admin role that may view users and groups).

Without ``include_groups`` a read is: every user, every group, and each group's members,
all paged at 200 through the ``next`` links (§1.3), independent lists in parallel. A big org's
users are read as ``lastUpdated`` ranges in parallel plus a catch-up (``okta_partition``);
a small one's (or one whose size Everyone does not tell) as the plain list, which hides
DEPROVISIONED users, and ``filter=status eq "DEPROVISIONED"`` (§1.4).
With ``include_groups`` only the matching groups' members are read as users (see
``OktaReader.scoped``); the engine applies the scoping again, so correctness never depends
on it. Okta groups do not nest (§1.6): a user's groups are the groups that list it.
With ``incremental`` (off by default) a read lists only what changed since the last one
and merges it into a snapshot kept beside the link state (``okta_incremental``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from scimsync.config import OktaSourceConfig
from scimsync.errors import AuthError, ConfigError, NotFoundError, ResponseError
from scimsync.http import BearerAuth, HttpClient, HttpSettings, default_error_parser
from scimsync.models import SourceDirectory
from scimsync.sources.okta_incremental import IncrementalReader
from scimsync.sources.okta_model import parse_group
from scimsync.sources.okta_read import GROUPS, USERS, OktaReader
from scimsync.targets.base import Progress, no_progress

_URL_HINT = "check source.url: it must be the Okta org URL, such as https://acme.okta.com (no /api/v1)"
_TOKEN_HINT = (
    "check source.token: an SSWS API token (Security > API > Tokens); Okta refuses a token that "
    "was revoked, whose admin was deactivated, or that was not used for 30 days"
)  # idp-apis §1.1
_ROLE_HINT = (
    "the token's admin may not read users and groups: give that admin the Read-Only "
    "Administrator role, or a custom role that may view all users and groups"
)


def parse_error(response: requests.Response) -> str:
    """Return Okta's error as "summary (code, errorId …): causes" (idp-apis §1.2)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("errorCode"), str):
        return default_error_parser(response)
    text = f"{body.get('errorSummary') or 'no summary'} ({body['errorCode']}"
    if isinstance(body.get("errorId"), str):
        text += f", errorId {body['errorId']}"  # what Okta support asks for
    text += ")"
    causes = [c.get("errorSummary") for c in body.get("errorCauses") or () if isinstance(c, dict)]
    details = [str(c) for c in causes if c]
    return f"{text}: {'; '.join(details)}" if details else text


class OktaSource:
    """Read users and groups from an Okta org with an SSWS API token."""

    type = "okta"

    def __init__(
        self,
        name: str,
        config: OktaSourceConfig,
        settings: HttpSettings,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        snapshot_file: Path | None = None,
    ) -> None:
        # `sleep` and `clock` are the HTTP layer's, for tests that must not really wait.
        # `snapshot_file`: okta_incremental.snapshot_path(state_file), for `incremental`.
        self.name = name
        self.config = config
        self._incremental: IncrementalReader | None = None
        if config.incremental is not None:
            if snapshot_file is None:
                raise ConfigError(
                    ["source.incremental: needs state_file (the snapshot is kept beside the link state)"]
                )
            every = config.incremental.full_every
            self._incremental = IncrementalReader(snapshot_file, org=config.url, full_every=every)
        self._client = HttpClient(
            name,
            config.url,
            auth=BearerAuth(config.token, scheme="SSWS"),
            settings=settings,
            error_parser=parse_error,
            sleep=sleep,
            clock=clock,
        )

    def check(self) -> str:
        """Read one user, then the Everyone group's member count (one page each)."""
        label = f"GET {GROUPS}"
        with self._hints():
            self._client.get_json(USERS, params={"limit": 1}, obj=f"GET {USERS}")
            # §1.5: expand=stats counts a group's users; Everyone (BUILT_IN) holds them all.
            query = {"filter": 'type eq "BUILT_IN"', "expand": "stats", "limit": 200}
            body = self._client.get_json(GROUPS, params=query, obj=label)
            if not isinstance(body, list):
                raise ResponseError(self.name, label, "expected a JSON array in the response")
            counts = [parse_group(self.name, label, raw).users_count for raw in body]
        if len(counts) == 1 and counts[0] is not None:
            return f"Okta org with {counts[0]} user{'' if counts[0] == 1 else 's'}"
        # A Group Admin never sees Everyone (§1.5), and sees only its groups' users.
        return (
            "Okta org: users and groups readable, but not the Everyone group "
            "(a Group Administrator's token sees only part of the org)"
        )

    def read(self, *, progress: Progress = no_progress) -> SourceDirectory:
        """Read every user with its groups, and the groups; any failing page aborts the read."""
        with self._hints():
            reader = OktaReader(self._client, progress)
            if self.config.include_groups:
                return reader.scoped(self.config.include_groups, self.config.exclude_users)
            if self._incremental is not None:
                return self._incremental.read(reader)
            return reader.everyone()

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()

    @contextmanager
    def _hints(self) -> Iterator[None]:
        """Add what to check to a refused token, a wrong URL or an answer that is not the API's."""
        try:
            yield
        except AuthError as exc:
            hint = _ROLE_HINT if exc.status == 403 else _TOKEN_HINT
            raise AuthError(exc.system, exc.obj, f"{exc.cause}; {hint}", status=exc.status) from None
        except NotFoundError as exc:
            raise NotFoundError(exc.system, exc.obj, f"{exc.cause}; {_URL_HINT}", status=exc.status) from None
        except ResponseError as exc:
            if not exc.cause.startswith("expected JSON, got text/html"):
                raise
            # An HTML page is the org's web front (or a proxy), not the API.
            raise ResponseError(exc.system, exc.obj, f"{exc.cause}; {_URL_HINT}", status=exc.status) from None
