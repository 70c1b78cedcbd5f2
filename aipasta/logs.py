"""Log set-up for the server and the CLI: one format per process (`AIPASTA_LOG_FORMAT`).

`text` (the default) is one line per record; `json` one JSON object per line. A record
may carry structured fields in `record.fields` (the per-operation line does): text
appends them as `key=value`, JSON as keys of its own. uvicorn's error and access logs
are handed to the root logger (see `uvicorn_log_config`), so they share the format.
"""

from __future__ import annotations

import json
import logging
import math
import time
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
        # The last second's local time text: a busy server writes many lines a second.
        self._second: tuple[int, str] | None = None

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{key}={_text(value)}" for key, value in _fields(record).items())
        return f"{line} {extra}" if extra else line

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None or self.default_msec_format is None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if self._second is None or self._second[0] != second:
            self._second = (second, time.strftime(self.default_time_format, self.converter(second)))
        return self.default_msec_format % (self._second[1], record.msecs)


# JSON's spelling of the scalars a log field mostly holds, without a json.dumps call.
_JSON_CONSTANTS = {None: "null", True: "true", False: "false"}


def _text(value: object) -> str:
    if isinstance(value, str):
        text = value
    elif value is None or value is True or value is False:
        return _JSON_CONSTANTS[value]
    elif type(value) is int:
        return str(value)
    elif type(value) is float and math.isfinite(value):
        return repr(value)
    else:
        text = json.dumps(value, default=str)
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
