"""The OneLogin simulator's token endpoint: the credential forms and grant it accepts (idp-apis §4.1)."""

from __future__ import annotations

import base64
import binascii
import json
import re

from werkzeug.wrappers import Request

from scimsync.sim.onelogin_api import OneLoginError


def token_request(request: Request) -> tuple[str, str]:
    """Return the client id and secret of a token request; 400/401 as OneLogin answers (§4.1)."""
    grant = _grant_type(request)
    if grant != "client_credentials":
        raise OneLoginError(400, "grant_type is incorrect/absent")
    credentials = _credentials(request)
    if credentials is None:
        raise OneLoginError(401, "Authentication Failure")
    return credentials


def _grant_type(request: Request) -> str | None:
    if request.mimetype == "application/json":
        try:
            body = json.loads(request.get_data(as_text=True))
        except ValueError:
            raise OneLoginError(400, "Malformed JSON body") from None
        value = body.get("grant_type") if isinstance(body, dict) else None
    else:
        value = request.form.get("grant_type")
    return value if isinstance(value, str) else None


_HEADER_PAIR = re.compile(r"\s*client_id\s*:\s*([^,\s]+)\s*,\s*client_secret\s*:\s*(\S+)\s*")


def _credentials(request: Request) -> tuple[str, str] | None:
    """Read the three forms §4.1 shows: its own header, HTTP Basic, or the form body."""
    header = request.headers.get("Authorization", "")
    pair = _HEADER_PAIR.fullmatch(header)
    if pair:
        return pair[1], pair[2]
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        return (client_id, secret) if sep else None
    form_id, form_secret = request.form.get("client_id"), request.form.get("client_secret")
    if form_id is not None and form_secret is not None:
        return form_id, form_secret
    return None
