"""What the Atlassian server targets (Jira, Confluence) share in reading their answers.

A refusal's wording is matched only after the names it quotes are taken out (a username
such as ``readonly.kim`` echoed in "already exists" says nothing about a directory), and a
site in read-only *mode* (maintenance) is not a read-only *directory*.
"""

from __future__ import annotations

import re

import requests

from scimsync.errors import ResponseError

# A read-only directory (LDAP, Crowd): reference §1.12, §2.10.
_READ_ONLY = re.compile(r"read[-\s._]?only(?![-\s._]?mode)", re.IGNORECASE)
# A quoted name: 'amara' or "amara", but not the apostrophe of can't or user's.
_QUOTED = re.compile(r"(?<!\w)'[^']*'(?!\w)|(?<!\w)\"[^\"]*\"(?!\w)")


def unquoted(message: str) -> str:
    """Return an error message without the names it quotes, so only its own wording is matched."""
    return _QUOTED.sub("", message)


def says_read_only_directory(message: str) -> bool:
    """Tell whether a refusal's own wording (quoted names aside) says the directory is read-only."""
    return bool(_READ_ONLY.search(unquoted(message)))


def garbage(system: str, endpoint: str, what: str) -> ResponseError:
    """Return the error for a response that is not what the API documents."""
    return ResponseError(system, endpoint, f"unexpected response: {what}")


def proxy_page(system: str, obj: str, response: requests.Response) -> ResponseError | None:
    """Return the error for a success status whose body is an HTML page, or None when it is not one.

    A login page of an SSO proxy or a load balancer's page is no answer of the REST API, which
    never sends HTML: whether the write was carried out is unknown (SPEC §8), so the error has
    no status and the engine reads the object back before sending the write again.
    """
    kind = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if kind not in ("text/html", "application/xhtml+xml") or not response.content:
        return None
    cause = f"HTTP {response.status_code} with an HTML page ({kind}), not the API's answer: a proxy?"
    return ResponseError(system, obj, cause)
