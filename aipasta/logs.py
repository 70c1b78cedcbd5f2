"""Log set-up for the server and the CLI: one format per process (`AIPASTA_LOG_FORMAT`).

`text` (the default) is one line per record; `json` one JSON object per line. A record
may carry structured fields in `record.fields` (the per-operation line does): text
appends them as `key=value`, JSON as keys of its own. uvicorn's error and access logs
are handed to the root logger (see `uvicorn_log_config`), so they share the format.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from aipasta.settings import LogFormat, LogLevel

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{key}={_text(value)}" for key, value in _fields(record).items())
        return f"{line} {extra}" if extra else line


def _text(value: object) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if text and " " not in text and '"' not in text else json.dumps(text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format is LogFormat.JSON else TextFormatter()


def configure_logging(level: LogLevel, log_format: LogFormat = LogFormat.TEXT) -> None:
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(formatter(log_format))
    root.setLevel(level.value)
    # aiohttp and pymongo are chatty at DEBUG and can echo request details.
    for noisy in ("aiohttp.access", "pymongo", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def uvicorn_log_config(level: LogLevel) -> dict[str, Any]:
    """uvicorn's loggers without handlers of their own: their records reach the root
    logger's handler, and so its formatter (and the secret redaction on it)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            name: {"handlers": [], "level": level.value, "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
