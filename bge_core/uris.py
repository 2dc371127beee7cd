"""Redacting credentials from store URIs and from messages that may quote them.

``redact_uri("qdrant+http://user:pw@host:6333/?api_key=S")`` gives
``"qdrant+http://user:***@host:6333/?api_key=***"``. It works on malformed URIs too (a bad
port, a missing host), because an error about such a URI is exactly where it gets printed.
Covered: the password of ``user:password@`` (a lone ``token@`` user part is hidden whole),
and the values of query parameters or ``key=value`` pairs named like a credential
(``api_key``, ``apikey``, ``token``, ``access_token``, ``password``, ``secret``, ...).
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact_secrets", "redact_uri"]

#: What a credential is replaced with.
REDACTED = "***"

_SECRET_NAMES = r"(?:api[_-]?key|apikey|x-api-key|token|access[_-]?token|auth[_-]?token|password|passwd|pwd|secret|client[_-]?secret|credentials?)"
_PARAM = re.compile(rf"(?i)(?<![A-Za-z0-9_])({_SECRET_NAMES})(\s*=\s*)(?!\*\*\*)([^&\s'\"#;,)\]}}]+)")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/@?#\s:'\"]*)(?::(?P<pw>[^/@?#\s'\"]*))?@")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"]+")


def _userinfo(match: re.Match[str]) -> str:
    scheme, user, pw = match.group("scheme"), match.group("user"), match.group("pw")
    if pw is not None:
        return f"{scheme}{user}:{REDACTED}@"
    return f"{scheme}{REDACTED}@" if user else f"{scheme}@"


def redact_uri(uri: str) -> str:
    """``uri`` with every credential part replaced by ``***`` (see the module docstring)."""
    return _PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", _USERINFO.sub(_userinfo, uri))


def redact_secrets(text: str) -> str:
    """``text`` (an error message, a log line, a traceback) with the credentials of every URI
    in it and every ``token=...``-like pair replaced by ``***``."""
    text = _URI.sub(lambda m: _USERINFO.sub(_userinfo, m.group(0)), text)
    return _PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
