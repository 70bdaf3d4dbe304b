"""ldap3, imported in this one place; and the LDAP filter syntax check the config uses.

ldap3 2.9.1 imports names that pyasn1 0.6 deprecated (``tagMap``, ``typeMap``): the
DeprecationWarning fires once, while ldap3 itself is imported, from ldap3's code. It is
silenced here, and only here, so every scimsync module takes ldap3 from this module and
an import order never decides whether the warning escapes (tests turn warnings into errors).
ldap3 ships no type information: its names are ``Any`` to mypy.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ldap3\.")
    import ldap3  # type: ignore[import-untyped]
    from ldap3.core.exceptions import (  # type: ignore[import-untyped]
        LDAPException,
        LDAPInvalidDnError,
        LDAPInvalidFilterError,
        LDAPResponseTimeoutError,
        LDAPSocketOpenError,
        LDAPSSLConfigurationError,
        LDAPStartTLSError,
    )
    from ldap3.operation.search import parse_filter  # type: ignore[import-untyped]
    from ldap3.utils.dn import parse_dn  # type: ignore[import-untyped]

__all__ = [
    "PAGED_RESULTS",
    "LDAPException",
    "LDAPInvalidDnError",
    "LDAPResponseTimeoutError",
    "LDAPSSLConfigurationError",
    "LDAPSocketOpenError",
    "LDAPStartTLSError",
    "filter_problem",
    "ldap3",
    "parse_dn",
]

# The paged-results control (RFC 2696), as ldap3 names it in a search result's controls.
PAGED_RESULTS = "1.2.840.113556.1.4.319"


def filter_problem(text: str) -> str | None:
    """Return what is wrong with an LDAP search filter, or None when ldap3 can parse it."""
    try:
        # No schema: attribute names are the server's business; this checks the syntax only.
        parse_filter(text, None, True, False, None, False)
    except LDAPInvalidFilterError as exc:
        return f"is not a valid LDAP filter ({exc}); a filter looks like (&(objectClass=person)(mail=*))"
    return None
