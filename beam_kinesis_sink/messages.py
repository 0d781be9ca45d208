"""The text the sink and its pipelines put in dead letters, logs and errors:
previews of elements, one-line descriptions of exceptions, and redaction of
credentials. The one home for how long such a text may be."""

from __future__ import annotations

import re
from typing import Any, Iterable, Optional

#: longest preview of an element (its repr) in a dead letter or a table cell
PREVIEW_CHARS = 200
#: longest text quoted from an exception
EXCEPTION_CHARS = 300
#: longest dead-letter message quoted in a report (a service's words, then what to do)
MESSAGE_CHARS = 600

_ACCESS_KEY_RE = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b")
_URL_USERINFO_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def clip(text: str, limit: int = PREVIEW_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with ``...`` when it was cut."""
    return text if len(text) <= limit else text[:limit] + "..."


def valid_text(text: str) -> str:
    """``text`` with a UTF-8 encoding (lone surrogates escaped)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def preview(element: Any) -> str:
    """A short repr of an element for a dead letter; never raises, and is
    always valid Unicode."""
    try:
        text = valid_text(repr(element))
    except Exception as exc:  # a broken __repr__ must not crash the sink
        text = f"<{type(element).__name__}: repr failed: {type(exc).__name__}>"
    return clip(text)


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, the message clipped; never raises."""
    try:
        text = clip(valid_text(str(exc)), EXCEPTION_CHARS)
    except Exception:  # an exception whose str() raises
        text = "<str() failed>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def redact(text: str, secrets: Iterable[Optional[str]] = ()) -> str:
    """Remove credentials from a message before it is logged or dead-lettered.

    Removes the given secret values, anything that looks like an AWS access
    key id, and the user-info part of URLs.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _ACCESS_KEY_RE.sub("***", text)
    return _URL_USERINFO_RE.sub(r"\g<scheme>***@", text)
