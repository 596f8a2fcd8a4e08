"""Keeping secrets out of what the harness records: run directories, the console and the report.

Three kinds of secret are recognised in text:
- userinfo in URLs: `http://user:pw@host:8000/v1` becomes `http://***@host:8000/v1` (scheme, host,
  port and path kept, so a record still says where it pointed), also inside free text;
- header echoes: `Authorization: Bearer ...`, `"authorization": "..."`, `api-key` / `x-api-key`
  (any case, header-line and quoted forms), and credentials in URL query strings;
- known values: the backend's API key (read from its `api_key_env` variable) and the parts of a
  URL's userinfo (with the Basic-auth token httpx derives from it), wherever they appear.

A `${VAR}` reference is not a secret: userinfo that holds one is left as written (config.yaml
keeps such references so that `--resume` can expand them again).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"
# Shorter known values are not replaced in free text (they would mangle ordinary words); the
# URL and header patterns still catch them where they appear as credentials.
MIN_SECRET_LEN = 6

# scheme://userinfo@ ; greedy up to the last "@" before the path, so a password holding an
# unescaped "@" is masked whole.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/?#\s\"'<>]+)@")
_HEADER_NAMES = r"(?:proxy-)?authorization|x-api-key|api[-_]?key|x-goog-api-key|openai-api-key"
# The quoted form also when the quotes are escaped (a JSON body kept inside another JSON string).
_QUOTED_HEADER = re.compile(rf"(?i)(\\?[\"'])({_HEADER_NAMES})\1(\s*[:=]\s*)(\\?[\"'])((?:(?!\4)(?:\\.|[^\\\r\n]))*)\4")
_LINE_HEADER = re.compile(rf"(?i)\b({_HEADER_NAMES})(\s*[:=]\s*)([^\s\"'\\,;<>&][^\r\n\"'\\,;<>&]*)")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*")
_QUERY = re.compile(r"(?i)([?&](?:api[-_]?key|key|access[-_]?token|token|password|secret)=)[^&#\s\"'<>]+")
_SCHEME = re.compile(r"(?i)^(bearer|basic|token|digest)\s+")


# A user name alone (`ssh://git@host`) is not a credential unless it is as long as a token.
TOKEN_LEN = 20


def _mask_userinfo(m: re.Match[str]) -> str:
    return m.group(0) if "${" in m.group(2) else f"{m.group(1)}{MASK}@"


def _is_credential(userinfo: str) -> bool:
    return "${" not in userinfo and (":" in userinfo or len(userinfo) >= TOKEN_LEN)


def has_credentials(text: str) -> bool:
    """True when text holds a URL with literal credentials: `user:password@`, or a token as the user
    name. A `${VAR}` reference is not one, nor a short user name such as `git@`."""
    return any(_is_credential(m.group(2)) for m in _USERINFO.finditer(text))


def redact_url(url: str | None) -> str | None:
    """The URL with its userinfo masked: `http://user:pw@host/v1` -> `http://***@host/v1`."""
    return None if url is None else _USERINFO.sub(_mask_userinfo, url)


def url_secrets(url: str | None) -> list[str]:
    """The secret parts of a URL's userinfo: the password (raw and decoded), `user:password`, and the
    Basic-auth token httpx sends for it; the user name alone when it is as long as a token."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return []
    if "${" in (parts.netloc or ""):
        return []
    if password is None:
        return [user, unquote(user)] if user and len(user) >= TOKEN_LEN else []
    pair = f"{unquote(user or '')}:{unquote(password)}"
    token = base64.b64encode(pair.encode()).decode()
    return [password, unquote(password), f"{user}:{password}", pair, token]


def env_secret(var: str | None) -> list[str]:
    """The value of the variable named by an `*_env` setting, when it is set."""
    value = os.environ.get(var) if var else None
    return [value] if value else []


def backend_secrets(base_url: str | None, api_key_env: str | None = None) -> list[str]:
    """What an endpoint backend must never record: its API key and its URL's credentials."""
    return [*env_secret(api_key_env), *url_secrets(base_url)]


def _mask_header(m: re.Match[str], value_group: int) -> str:
    value = m.group(value_group)
    scheme = _SCHEME.match(value)
    masked = (scheme.group(0) if scheme else "") + MASK
    start, end = m.span(value_group)
    whole = m.group(0)
    return whole[: start - m.start()] + masked + whole[end - m.start() :]


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Text with known secret values, URL userinfo, credential headers and query keys masked."""
    for s in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True):
        text = text.replace(s, MASK)
    text = _USERINFO.sub(_mask_userinfo, text)
    text = _QUOTED_HEADER.sub(lambda m: _mask_header(m, 5), text)
    text = _LINE_HEADER.sub(lambda m: _mask_header(m, 3), text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    return _QUERY.sub(lambda m: m.group(1) + MASK, text)


def redact_data(data: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of JSON-like data with every string redacted (keys too: they are text as well)."""
    secrets = list(secrets)
    if isinstance(data, str):
        return redact_text(data, secrets)
    if isinstance(data, dict):
        return {redact_text(k, secrets) if isinstance(k, str) else k: redact_data(v, secrets) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(redact_data(v, secrets) for v in data)
    return data


def secrets_in(data: Any) -> list[str]:
    """Secrets that recorded data gives away or points to: the credentials of every URL in its
    strings, and the value of every `api_key_env` variable it names, when that is set here."""
    found: list[str] = []
    if isinstance(data, str):
        for m in _USERINFO.finditer(data):
            found += url_secrets(m.group(0) + "host")  # scheme://userinfo@ is all urlsplit needs
    elif isinstance(data, dict):
        for k, v in data.items():
            found += env_secret(v) if k == "api_key_env" and isinstance(v, str) else secrets_in(v)
    elif isinstance(data, (list, tuple)):
        for v in data:
            found += secrets_in(v)
    return found


def redact_run(config: dict | None, config_text: str | None, provenance: dict) -> tuple[dict | None, str | None, dict]:
    """What a report may publish of one run directory's config.yaml and results.json provenance
    (a second line of defence: run directories written before redaction may hold secrets)."""
    secrets = secrets_in([config, provenance, config_text or ""])
    return (
        redact_data(config, secrets),
        None if config_text is None else redact_text(config_text, secrets),
        redact_data(provenance, secrets),
    )
