"""Taking credentials out of text that leaves the process (client answers, log lines).

Two kinds of rule, applied together by a `Redactor`:
- patterns: anything shaped like a credential (`Bearer ...`, `sk-...`, `hf_...`,
  `api_key=...`), whoever it belongs to;
- values: every secret the server was configured with (provider keys, signing secrets,
  the database password) and the bearer token of the request being served, whatever
  they look like. The request's token is kept in a context variable (`serving_token`),
  so a redactor built once at start-up also knows it.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
# Shorter values would turn ordinary words into "[redacted]"; no real credential is this short.
MIN_SECRET_CHARS = 4

PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Not a placeholder such as `Bearer <token>` in the gateway's own sign-in hint.
    (
        re.compile(r"\bbearer\s+(?!<[A-Za-z_]+>(?:[\s\"'`,;]|$))[^\s\"',;]+", re.IGNORECASE),
        "Bearer [redacted]",
    ),
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{6,}"), REDACTED),
    (re.compile(r"\bhf_[A-Za-z0-9]{6,}"), REDACTED),
    (
        re.compile(
            r"\b(api[_-]?key|access[_-]?token|authorization|x-api-key)(\"?\s*[:=]\s*\"?)"
            r"(?!Bearer (?:\[redacted\]|<[A-Za-z_]+>(?:[\s\"'`,;]|$)))[^\s\"',;]+",
            re.IGNORECASE,
        ),
        r"\1\2[redacted]",
    ),
)

# The bearer token of the request (or websocket connection) being served, if any.
serving_token: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "serving_token", default=None
)


def redact_patterns(text: str) -> str:
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._values = sorted(
            {s for s in secrets if s is not None and len(s) >= MIN_SECRET_CHARS},
            key=len,
            reverse=True,
        )

    def __len__(self) -> int:
        return len(self._values)

    def redact(self, text: str) -> str:
        """`text` without any known secret (by value) or credential-shaped string."""
        token = serving_token.get()
        for value in self._values:
            text = text.replace(value, REDACTED)
        if token is not None and len(token) >= MIN_SECRET_CHARS:
            text = text.replace(token, REDACTED)
        return redact_patterns(text)
