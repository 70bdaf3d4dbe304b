"""LDAP answers and ldap3 exceptions as one-line errors naming the cause and the fix.

Every failure becomes a ConnectorError (AuthError for a refused bind) naming the source,
the object (the URL, the bind DN, the base DN or the search) and the cause. Result codes:
idp-apis §7 (4 sizeLimitExceeded, 49 invalidCredentials); the others are RFC 4511's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from scimsync.errors import AuthError, ConnectorError
from scimsync.ldap_lib import (
    LDAPException,
    LDAPResponseTimeoutError,
    LDAPSocketOpenError,
    LDAPSSLConfigurationError,
    LDAPStartTLSError,
)
from scimsync.sources.ldap_values import dn_key

# AD answers a subtree search of a domain root with references to these partitions, which
# hold DNS zones and forest configuration, never accounts. [U] general knowledge: any other
# reference means part of the subtree lives on another server, and the read is refused.
_AD_PARTITIONS = ("dc=domaindnszones,", "dc=forestdnszones,", "cn=configuration,")
# ldap3 nests the ssl error's text in reprs: cut at " (_ssl.c:NNN)" or at the trailing quotes.
_VERIFY = re.compile(r"certificate verify failed: (.*?)(?: \(_ssl\.c:\d+\)|['\"),]*$)", re.IGNORECASE)
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
_SSL = re.compile(r"\[(SSL|X509)[^\]]*\] ([^'\")(]+)")
_TLS_FIX = "set ca_file (or http.ca_bundle) to the CA bundle that signed the directory's certificate"


def result_error(
    system: str, what: str, result: Mapping[str, Any], *, base: str | None, received: int, paging: bool
) -> ConnectorError | None:
    """Describe a search answer that is not success; None for success.

    ``base`` is the search's base_dn, None when ``what`` is one entry read by its DN. A
    size-limit answer is an error even with entries: the directory was cut (idp-apis §7).
    """
    where = f"base_dn {base}" if base is not None else what
    code = result.get("result")
    if code == 0:
        return None
    cause = describe(result)
    if code == 4:
        fix = (
            "let the bind DN page past the limit (OpenLDAP: olcLimits size.prtotal=unlimited)"
            if paging
            else "turn paging on (page_size > 0)"
        )
        return ConnectorError(
            system,
            what,
            f"the server stopped at its size limit after {received} entries ({cause}); "
            f"nothing read is used: {fix}",
        )
    if code == 10:
        urls = ", ".join(result.get("referrals") or []) or "no URL given"
        return ConnectorError(system, where, f"the server refers to another server ({urls}); set url to it")
    if code == 32:
        fix = "; check base_dn" if base is not None else ""
        return ConnectorError(system, where, f"does not exist ({cause}){fix}")
    if code == 50:
        return AuthError(system, what, f"the bind DN may not read this ({cause})")
    return ConnectorError(system, what, cause)


def holds_no_accounts(uri: str) -> bool:
    """Tell whether a continuation reference names an AD partition that holds no accounts."""
    return dn_key(unquote(urlsplit(uri).path.lstrip("/"))).startswith(_AD_PARTITIONS)


def references_error(system: str, what: str, uris: Sequence[str]) -> ConnectorError | None:
    """Describe continuation references to parts of the subtree on another server; None if harmless."""
    others = [u for u in uris if not holds_no_accounts(u)]
    if not others:
        return None
    return ConnectorError(
        system,
        what,
        f"part of the subtree is held by another server ({', '.join(others)}); nothing read is used: "
        "set base_dn to a subtree this server holds",
    )


def describe(result: Mapping[str, Any]) -> str:
    """Return an LDAP result as "description, LDAP code: message"."""
    message = str(result.get("message") or "").strip()
    cause = f"{result.get('description')}, LDAP {result.get('result')}"
    return f"{cause}: {message}" if message else cause


def bind_failure(system: str, bind_dn: str, result: Mapping[str, Any]) -> ConnectorError:
    """Describe a refused bind; a wrong DN or password is an AuthError."""
    what = f"bind as {bind_dn}"
    if result.get("result") == 49:
        return AuthError(
            system, what, f"invalid credentials ({describe(result)}): check bind_dn and password"
        )
    if result.get("result") in (8, 13):  # strongerAuthRequired, confidentialityRequired
        return ConnectorError(
            system, what, f"{describe(result)}: the server wants TLS: use ldaps:// or start_tls"
        )
    return ConnectorError(system, what, describe(result))


def failure(system: str, what: str, exc: LDAPException) -> ConnectorError:
    """Turn an ldap3 exception (socket, TLS, timeout) into one line naming the cause and the fix."""
    text = _text(exc)
    if verify := _VERIFY.search(text):
        detail = verify[1].replace("\\", "")
        fix = "put a host name the certificate names in url" if "mismatch" in detail.lower() else _TLS_FIX
        return ConnectorError(system, what, f"TLS certificate verification failed ({detail}): {fix}")
    tls = _SSL.search(text)
    if isinstance(exc, LDAPSSLConfigurationError) or (tls and tls[1] == "X509"):
        cause = tls[2].strip() if tls else _clean(text)
        return ConnectorError(
            system, what, f"cannot use the CA file ({cause}): check ca_file / http.ca_bundle"
        )
    if isinstance(exc, LDAPStartTLSError) and tls is None:
        return ConnectorError(
            system, what, f"the server refused StartTLS ({_clean(text)}); use ldaps:// or enable TLS"
        )
    if tls:
        return ConnectorError(
            system, what, f"TLS handshake failed ({tls[2].strip()}): is it an ldaps:// port?"
        )
    if isinstance(exc, LDAPSocketOpenError):
        errno = _ERRNO.search(text)
        return ConnectorError(system, what, f"cannot connect ({errno[1].strip() if errno else _clean(text)})")
    if isinstance(exc, LDAPResponseTimeoutError) or "timed out" in text:
        return ConnectorError(system, what, "no answer from the server in time (http.timeout)")
    return ConnectorError(system, what, f"the connection failed ({_clean(text)})")


def _text(exc: LDAPException) -> str:
    # 'unable to open socket' carries one (exception, address) per address tried: the one
    # that got as far as TLS says more than a refused connection to another address.
    history = exc.args[1] if len(exc.args) == 2 and isinstance(exc.args[1], list) else None
    if not history:
        return str(exc)
    texts = [str(error) for error, _ in history]
    return next((t for t in texts if "SSL" in t or "certificate" in t), texts[0])


def _clean(text: str) -> str:
    text = text.strip("()'\", ")
    for prefix in (
        "socket connection error while opening: ",
        "socket ssl wrapping error: ",
        "wrap socket error: ",
        "startTLS failed - ",
    ):
        text = text.removeprefix(prefix)
    return text
