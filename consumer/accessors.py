"""Read one header, cookie or query argument by name out of a raw CloudFront real-time log field.

The raw texts are the fields exactly as a real-time log line carries them (sample 07):

- ``cs-headers``: ``name:value`` pairs, URL-encoded, each followed by ``%0A`` (the encoded newline),
  e.g. ``host:d2oms.cloudfront.net%0Auser-agent:Mozilla/5.0%20(Macintosh...)%0A``.
- ``cs-cookie``: the Cookie header, URL-encoded: ``session=abc;%20uid=u1``.
- ``cs-uri-query``: the query string, URL-encoded once more by CloudFront (a ``%`` the client sent
  appears as ``%25``): ``url=http%253A%252F%252Fexample.com&lang=en``.

Header and cookie values are returned as the client sent them (the log's encoding undone once).
Query argument values are returned as a web framework would see them: the log's encoding undone,
then the form decoding of the query itself (``+`` is a space, ``%XX`` a byte).
``-`` (missing field) and an absent name give ``None``. First match wins. CloudFront truncates
``cs-headers`` and ``cs-cookie`` to 800 bytes: a value cut off there is returned as far as it was
logged (a cut ``%2`` escape stays as it is).
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import unquote, unquote_plus

_HEADER_SEPARATORS = ("%0A", "%0a")


def _unquote(text: str) -> str:
    if "%" not in text:
        return text
    if text.count("%") == text.count("%20"):  # only encoded spaces (cookies: "a=1;%20b=2"): C speed
        return text.replace("%20", " ")
    return unquote(text)


@lru_cache(maxsize=4096)
def _lower_prefix(name: str) -> str:
    return name.strip().lower()


def header_key(name: str) -> str:
    """The form of a header name that :func:`header` compares (stripped, lower case)."""
    return _lower_prefix(name)


#: Characters percent-encoding never touches: a name made only of these appears verbatim in the log.
_UNRESERVED = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._~")


@lru_cache(maxsize=4096)
def _verbatim(want: str) -> bool:
    return all(c in _UNRESERVED for c in want)


def verbatim(name: str) -> bool:
    """Whether a (lower-cased) header name appears in ``cs-headers`` as is: percent-encoding never
    touches its characters, so a record whose lower-cased field lacks it has no such header."""
    return _verbatim(name)


def header(raw: str | None, name: str) -> str | None:
    """Value of header ``name`` (case-insensitive) in a raw ``cs-headers`` field."""
    if not raw or raw == "-":
        return None
    want = _lower_prefix(name)
    if not want:
        return None
    # Fast reject: header names are ASCII tokens, so a case-insensitive substring test is exact.
    lowered = raw.lower()
    if want not in lowered:
        # A name of unreserved characters is never percent-encoded: absent means absent (the common
        # case, and decoding the whole ~1 KB field per record to find that out was the costliest step
        # of key extraction). Any other name might be percent-encoded in the log: decode and retry.
        if _verbatim(want) or "%" not in raw or want not in unquote(raw).lower():
            return None
    if "\n" in raw and "%0A" not in raw and "%0a" not in raw:
        # Already decoded (a config that decodes cs-headers): real newlines separate the headers.
        entries, decode = raw.split("\n"), _same
    else:
        entries, decode = raw.replace("%0a", "%0A").split("%0A"), _unquote
    for entry in entries:
        key, sep, value = entry.partition(":")
        if sep and decode(key).strip().lower() == want:
            return decode(value).strip()
    return None


def _same(text: str) -> str:
    return text


def cookie(raw: str | None, name: str) -> str | None:
    """Value of cookie ``name`` (exact, case-sensitive as browsers treat cookie names) in ``cs-cookie``."""
    if not raw or raw == "-":
        return None
    want = name.strip()
    text = _unquote(raw)
    if not want or want not in text:
        return None
    # The log encoding is undone first: a ';' can only be a separator (a client cannot send a raw
    # ';' inside a cookie value), and a '%3B' the client sent is logged as '%253B', decoded to '%3B'.
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == want:
            value = value.strip()
            if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def query_arg(raw: str | None, name: str) -> str | None:
    """Value of query argument ``name`` (case-sensitive) in ``cs-uri-query``, form-decoded."""
    if not raw or raw == "-":
        return None
    want = name
    if not want:
        return None
    text = _unquote(raw)
    if want not in text and "%" not in text and "+" not in text:
        return None
    for part in text.split("&"):
        key, sep, value = part.partition("=")
        if unquote_plus(key) == want:
            return unquote_plus(value) if sep else ""
    return None
