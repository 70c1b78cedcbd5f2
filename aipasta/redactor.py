"""The one Redactor of a running server, built from its Settings, and the log filter
that applies it to every log line (message, arguments, exception text, stack)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from aipasta.settings import Settings
from providers.redaction import Redactor

# Loggers that do not propagate to the root and keep their own handlers.
_OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _revealed(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def _database_password(uri: str) -> Iterator[str]:
    try:
        password = urlsplit(uri).password
    except ValueError:
        return
    if password:
        yield password
        yield unquote(password)


def build_redactor(settings: Settings) -> Redactor:
    """Everything secret the settings hold: each provider key, both signing secrets and
    the database password (as written in the URI and decoded)."""
    values = [
        _revealed(settings.openrouter_api_key),
        _revealed(settings.huggingface_api_key),
        _revealed(settings.jwt_secret),
        _revealed(settings.nextauth_secret),
        _revealed(settings.metrics_token),
        *(_revealed(settings.provider_key(extra)) for extra in settings.providers),
    ]
    uri = _revealed(settings.mongodb_uri)
    if uri:
        values.extend(_database_password(uri))
    return Redactor(values)


class RedactingFilter(logging.Filter):
    """Redacts each record it sees. A record holding no secret is left as it is; one that
    does keeps its arguments, redacted one by one, when that removes every secret (some
    formatters, uvicorn's access log among them, read the arguments), else it becomes
    its redacted, formatted message."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._redactor.redact(message)
        if redacted != message:
            self._redact_message(record, redacted)
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redactor.redact(record.stack_info)
        return True

    def _redact_message(self, record: logging.LogRecord, redacted: str) -> None:
        if isinstance(record.msg, str) and isinstance(record.args, tuple):
            original = record.msg, record.args
            record.msg = self._redactor.redact(record.msg)
            record.args = tuple(
                self._redactor.redact(a) if isinstance(a, str) else a for a in record.args
            )
            if record.getMessage() == redacted:
                return
            record.msg, record.args = original
        record.msg, record.args = redacted, None


def install_log_redaction(redactor: Redactor) -> Callable[[], None]:
    """Put the filter on the root logger's handlers (and uvicorn's own); the undo."""
    log_filter = RedactingFilter(redactor)
    handlers = [
        handler for name in ("", *_OWN_HANDLERS) for handler in logging.getLogger(name).handlers
    ]
    for handler in handlers:
        handler.addFilter(log_filter)

    def uninstall() -> None:
        for handler in handlers:
            handler.removeFilter(log_filter)

    return uninstall
