"""The start of a failed step's answer, fit for a timeline: trimmed, with secrets and tokens
taken out. A checkout answer can hold session tokens, payment client secrets and card details;
what people see on an incident (and what pages may quote) must not."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

KEPT_CHARS = 512
REDACTED = "[redacted]"
_SECRET_NAME = re.compile(
    r"token|secret|passw|authori[sz]|api[-_]?key|session|cookie|csrf|card|cvc|cvv|iban|signature",
    re.IGNORECASE,
)
_SECRET_PAIR = re.compile(
    r"""(?P<name>[\w.-]*(?:token|secret|passw\w*|authori[sz]ation|api[-_]?key|session\w*|cookie"""
    r"""|csrf\w*|card\w*|cvc|cvv|iban|signature)[\w.-]*)(?P<sep>"?\s*[:=]\s*"?)(?P<value>[^"&\s,;<>]+)""",
    re.IGNORECASE,
)
_SECRET_INPUT = re.compile(
    r"""(?P<head>name=["']?[\w.-]*(?:token|secret|csrf|session|passw)[\w.-]*["']?[^>]*?"""
    r"""\bvalue=["']?)(?P<value>[^"'\s>]+)""",
    re.IGNORECASE,
)
"""A hidden form field with a secret name (a CSRF token in an HTML storefront)."""
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
_MIN_VALUE_CHARS = 6


def is_secret_name(name: str) -> bool:
    """Whether a field or value named ``name`` is a secret by its name."""
    return _SECRET_NAME.search(name) is not None


def redact_body(body: bytes, secrets: Iterable[str] = ()) -> str:
    """The answer's start as text: JSON with secret fields blanked, any text with secret-looking
    pairs, bearer tokens, JWTs and card numbers replaced, and ``secrets`` (values this run
    extracted under secret names) removed wherever they appear."""
    text = body.decode("utf-8", errors="replace")
    try:
        text = json.dumps(_redact_json(json.loads(text)), ensure_ascii=False)
    except ValueError:
        text = _BEARER.sub(lambda m: f"{m[1]} {REDACTED}", text)
        text = _SECRET_INPUT.sub(lambda m: m["head"] + REDACTED, text)
        text = _SECRET_PAIR.sub(lambda m: m["name"] + m["sep"] + REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m[1]} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _CARD.sub(REDACTED, text)
    for secret in secrets:
        if len(secret) >= _MIN_VALUE_CHARS:
            text = text.replace(secret, REDACTED)
    return text if len(text) <= KEPT_CHARS else text[: KEPT_CHARS - 1] + "…"


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if is_secret_name(str(key)) and item is not None else _redact_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    return value
