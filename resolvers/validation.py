"""Input checks shared by every field that takes user text, ids or attachments.

Each check either returns the value to use or raises BadUserInput naming `field`, so
callers validate everything before touching the database and a refused request
writes nothing. Strings are checked for NUL bytes and lone surrogates: MongoDB cannot
store the latter (the BSON encoder fails), and the former truncate in C consumers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from aipasta.settings import Settings
from resolvers.errors import BadUserInput
from schema.types.inputs import AttachmentInput

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_FORBIDDEN_CHARS = re.compile("[\x00\ud800-\udfff]")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


def is_storable(text: str) -> bool:
    """Free of NUL bytes and lone surrogates (see above)."""
    return _FORBIDDEN_CHARS.search(text) is None


MAX_URL_CHARS = 2048
MAX_ATTACHMENT_KIND_CHARS = 32
MAX_ATTACHMENT_NAME_CHARS = 255
MAX_MIME_TYPE_CHARS = 255
MAX_DATA_URL_HEADER_CHARS = 256

# Client clocks drift; a day either way of "now" is skew, further ahead is a bug.
MAX_CLOCK_SKEW = timedelta(days=1)
# Older than this is a zero or epoch default, not a real message (imports keep dates).
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CheckedAttachment:
    kind: str
    url: str
    name: str | None
    mime_type: str | None

    @property
    def size_bytes(self) -> int:
        return len(self.url.encode())


def check_text(
    value: str, field: str, max_len: int, *, min_len: int = 0, strip: bool = False
) -> str:
    """`value` (trimmed if `strip`) when it is storable and its length is in range."""
    if _FORBIDDEN_CHARS.search(value):
        raise BadUserInput(f"`{field}` contains a NUL byte or an invalid character", field=field)
    if strip:
        value = value.strip()
    if len(value) > max_len:
        raise BadUserInput(f"`{field}` is longer than {max_len} characters", field=field)
    if len(value) < min_len:
        if min_len == 1:
            raise BadUserInput(f"`{field}` must not be empty", field=field)
        raise BadUserInput(f"`{field}` is shorter than {min_len} characters", field=field)
    return value


def check_optional_text(
    value: str | None, field: str, max_len: int, *, strip: bool = False
) -> str | None:
    return None if value is None else check_text(value, field, max_len, strip=strip)


def check_session_id(value: str, field: str = "sessionId") -> str:
    """A client-chosen session id: 1 to 128 of A-Z a-z 0-9 _ -, nothing else."""
    if not isinstance(value, str) or SESSION_ID.fullmatch(value) is None:
        raise BadUserInput(f"`{field}` must be 1 to 128 letters, digits, '_' or '-'", field=field)
    return value


def check_page_size(value: int | None, field: str, *, default: int, maximum: int) -> int:
    if value is None:
        return default
    if value < 0 or value > maximum:
        raise BadUserInput(f"`{field}` must be between 0 and {maximum}", field=field)
    return value


def check_int_range(value: int | None, field: str, minimum: int, maximum: int) -> int | None:
    if value is not None and not minimum <= value <= maximum:
        raise BadUserInput(f"`{field}` must be between {minimum} and {maximum}", field=field)
    return value


def check_cost(value: float | None, field: str) -> float | None:
    """A cost in USD: finite and not negative."""
    if value is not None and (not math.isfinite(value) or value < 0):
        raise BadUserInput(f"`{field}` must be a finite number >= 0", field=field)
    return value


def check_timestamp(value: datetime | None, field: str, *, now: datetime) -> datetime:
    """The message time in UTC, to the millisecond MongoDB keeps; `now` when not given.

    A time without a zone is taken as UTC. Accepted: from 2000-01-01 (so imported
    history keeps its dates) to one day ahead of `now` (clock skew).
    """
    if value is None:
        value = now
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if value < EARLIEST_TIMESTAMP or value > now + MAX_CLOCK_SKEW:
        raise BadUserInput(
            f"`{field}` must be between 2000-01-01 and one day from now", field=field
        )
    return to_millis(value)


def to_millis(value: datetime) -> datetime:
    """`value` cut to whole milliseconds: what a BSON date round-trips to."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def check_url(url: str, field: str, *, max_data_url_bytes: int) -> str:
    """An https URL, or a data: URL of at most `max_data_url_bytes` bytes."""
    check_text(url, field, max(MAX_URL_CHARS, max_data_url_bytes))
    if url[:5].lower() == "data:":
        header, comma, _ = url.partition(",")
        if not comma or len(header) > MAX_DATA_URL_HEADER_CHARS or _CONTROL_OR_SPACE.search(header):
            raise BadUserInput(f"`{field}` is not a valid data: URL", field=field)
        if len(url.encode()) > max_data_url_bytes:
            raise BadUserInput(f"`{field}` is larger than {max_data_url_bytes} bytes", field=field)
        return url
    if len(url) > MAX_URL_CHARS:
        raise BadUserInput(f"`{field}` is longer than {MAX_URL_CHARS} characters", field=field)
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme.lower() != "https"
        or not parts.hostname
        or _CONTROL_OR_SPACE.search(url)
    ):
        raise BadUserInput(f"`{field}` must be an https: or data: URL", field=field)
    return url


def check_attachments(
    attachments: Sequence[AttachmentInput] | None, settings: Settings, field: str
) -> list[CheckedAttachment]:
    """Checked copies of `attachments`; fields are named like `input.attachments[2].url`."""
    if not attachments:
        return []
    if len(attachments) > settings.max_attachments:
        raise BadUserInput(
            f"`{field}` has more than {settings.max_attachments} attachments", field=field
        )
    checked = []
    for index, attachment in enumerate(attachments):
        at = f"{field}[{index}]"
        checked.append(
            CheckedAttachment(
                kind=check_text(
                    attachment.kind, f"{at}.kind", MAX_ATTACHMENT_KIND_CHARS, min_len=1, strip=True
                ),
                url=check_url(
                    attachment.url, f"{at}.url", max_data_url_bytes=settings.max_data_url_bytes
                ),
                name=check_optional_text(attachment.name, f"{at}.name", MAX_ATTACHMENT_NAME_CHARS),
                mime_type=check_optional_text(
                    attachment.mime_type, f"{at}.mimeType", MAX_MIME_TYPE_CHARS, strip=True
                ),
            )
        )
    return checked
