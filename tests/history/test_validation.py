"""The shared input checks: what they accept, what they refuse, and the field they name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from aipasta.settings import Settings
from resolvers.errors import BadUserInput
from resolvers.history.fields import summarize
from resolvers.validation import (
    check_attachments,
    check_cost,
    check_int_range,
    check_page_size,
    check_session_id,
    check_text,
    check_timestamp,
    check_url,
)
from schema.types.inputs import AttachmentInput
from tests.conftest import make_settings

NOW = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def Attachment(
    kind: str = "image",
    url: str = "https://example.com/cat.png",
    name: str | None = "cat.png",
    mime_type: str | None = "image/png",
) -> AttachmentInput:
    """An attachment input that passes every check but for the fields given."""
    return AttachmentInput(kind=kind, url=url, name=name, mime_type=mime_type)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, AIPASTA_MAX_ATTACHMENTS=2, AIPASTA_MAX_DATA_URL_BYTES=40)


def refused(call: object, *args: object, **kwargs: object) -> str | None:
    """The field named by the BadUserInput that `call(*args, **kwargs)` raises."""
    assert callable(call)
    with pytest.raises(BadUserInput) as info:
        call(*args, **kwargs)
    details = info.value.extensions.get("details") or {}
    field: str | None = details.get("field")
    return field


def test_text_is_returned_trimmed_only_when_asked() -> None:
    assert check_text("  hi  ", "f", 10) == "  hi  "
    assert check_text("  hi  ", "f", 10, strip=True) == "hi"
    assert check_text("ünïcødé 🍝", "f", 9) == "ünïcødé 🍝"


@pytest.mark.parametrize(
    "value", ["a\x00b", "lone \ud800 high", "lone \udfff low", "x" * 11], ids=repr
)
def test_text_refuses_nul_lone_surrogates_and_excess_length(value: str) -> None:
    assert refused(check_text, value, "input.content", 10) == "input.content"


def test_text_minimum_length_applies_after_trimming() -> None:
    assert refused(check_text, "   ", "title", 200, min_len=1, strip=True) == "title"
    assert check_text(" t ", "title", 200, min_len=1, strip=True) == "t"


@pytest.mark.parametrize("value", ["a", "A-z_09", "x" * 128])
def test_session_ids_of_safe_characters_pass(value: str) -> None:
    assert check_session_id(value) == value


@pytest.mark.parametrize(
    "value",
    ["", "x" * 129, "a b", "a.b", "$ne", '{"$ne": ""}', "a\n", "ä", "a/b", "a\x00"],
    ids=repr,
)
def test_session_ids_with_anything_else_are_refused(value: str) -> None:
    assert refused(check_session_id, value, "input.sessionId") == "input.sessionId"


def test_session_id_that_is_not_a_string_is_refused() -> None:
    assert refused(check_session_id, {"$ne": ""}) == "sessionId"


def test_page_size_defaults_and_bounds() -> None:
    assert check_page_size(None, "last", default=50, maximum=200) == 50
    assert check_page_size(0, "last", default=50, maximum=200) == 0
    assert check_page_size(200, "last", default=50, maximum=200) == 200
    assert refused(check_page_size, 201, "last", default=50, maximum=200) == "last"
    assert refused(check_page_size, -1, "last", default=50, maximum=200) == "last"


def test_costs_must_be_finite_and_not_negative() -> None:
    assert check_cost(None, "c") is None
    assert check_cost(0.0, "c") == 0.0
    for bad in (-0.01, float("nan"), float("inf"), float("-inf")):
        assert refused(check_cost, bad, "input.cost") == "input.cost"


def test_int_range_is_inclusive() -> None:
    assert check_int_range(0, "m", 0, 100) == 0
    assert check_int_range(100, "m", 0, 100) == 100
    assert check_int_range(None, "m", 0, 100) is None
    assert refused(check_int_range, 101, "input.modelCount", 0, 100) == "input.modelCount"
    assert refused(check_int_range, -1, "input.modelCount", 0, 100) == "input.modelCount"


def test_timestamp_defaults_to_now_cut_to_milliseconds() -> None:
    assert check_timestamp(None, "t", now=NOW) == NOW.replace(microsecond=123000)


def test_timestamp_without_zone_is_utc_and_other_zones_are_converted() -> None:
    naive = datetime(2024, 1, 2, 3, 4, 5)
    assert check_timestamp(naive, "t", now=NOW) == naive.replace(tzinfo=UTC)
    paris = datetime(2024, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert check_timestamp(paris, "t", now=NOW) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_timestamp_window_is_2000_to_one_day_ahead() -> None:
    assert check_timestamp(datetime(2000, 1, 1, tzinfo=UTC), "t", now=NOW).year == 2000
    assert check_timestamp(NOW + timedelta(hours=23), "t", now=NOW) > NOW
    for bad in (datetime(1999, 12, 31, tzinfo=UTC), datetime(1970, 1, 1), NOW + timedelta(days=2)):
        assert refused(check_timestamp, bad, "input.timestamp", now=NOW) == "input.timestamp"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.png",
        "HTTPS://Example.com/a.png?x=1",
        "data:image/png;base64,iVBORw0KGgo=",
        "data:,hello",
        "DATA:text/plain,hi",
    ],
)
def test_https_and_small_data_urls_pass(url: str) -> None:
    assert check_url(url, "u", max_data_url_bytes=40) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a.png",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "ftp://example.com/a",
        "//example.com/a.png",
        "https://",
        "https:///path-only",
        "https://exa mple.com/",
        "https://example.com/\nx",
        "https://[::1",
        "data:image/png;base64",  # no comma: no payload
        "data:image/png;base64," + "A" * 40,  # over max_data_url_bytes
        "data:text/plain;x=a b,hi",
        "https://example.com/" + "a" * 2048,
        "",
    ],
    ids=lambda u: u[:40],
)
def test_other_urls_are_refused(url: str) -> None:
    assert refused(check_url, url, "input.attachments[0].url", max_data_url_bytes=40) == (
        "input.attachments[0].url"
    )


def test_attachments_are_copied_with_kind_and_mime_type_trimmed(settings: Settings) -> None:
    (checked,) = check_attachments(
        [Attachment(kind=" image ", mime_type=" image/png ")], settings, "input.attachments"
    )
    assert (checked.kind, checked.url, checked.name, checked.mime_type) == (
        "image",
        "https://example.com/cat.png",
        "cat.png",
        "image/png",
    )
    assert check_attachments(None, settings, "a") == []


def test_too_many_attachments_names_the_list(settings: Settings) -> None:
    assert refused(check_attachments, [Attachment()] * 3, settings, "input.attachments") == (
        "input.attachments"
    )


@pytest.mark.parametrize(
    ("attachment", "field"),
    [
        (Attachment(kind=""), "kind"),
        (Attachment(kind="k" * 33), "kind"),
        (Attachment(url="http://example.com/a"), "url"),
        (Attachment(url="data:," + "x" * 40), "url"),
        (Attachment(name="n" * 256), "name"),
        (Attachment(name="bad\x00name"), "name"),
        (Attachment(mime_type="m" * 256), "mimeType"),
    ],
)
def test_a_bad_attachment_names_its_index_and_field(
    settings: Settings, attachment: AttachmentInput, field: str
) -> None:
    assert refused(
        check_attachments, [Attachment(), attachment], settings, "input.attachments"
    ) == (f"input.attachments[1].{field}")


def test_summary_cuts_at_a_word_boundary() -> None:
    text = "The quick brown fox jumps over the lazy dog " * 3
    title = summarize(text, 80)
    assert len(title) <= 80
    assert text.startswith(title)
    assert title.endswith("the")  # a whole word, not a cut one
    assert summarize("word " * 16, 80) == ("word " * 16).strip()  # exactly 79 characters


def test_summary_keeps_a_word_ending_exactly_at_the_limit() -> None:
    assert summarize("abcd efgh ijkl", 9) == "abcd efgh"


def test_summary_hard_cuts_a_single_long_word_and_flattens_whitespace() -> None:
    assert summarize("x" * 100, 80) == "x" * 80
    assert summarize("  line one\n\n\tline two  ", 80) == "line one line two"
    assert summarize("   ", 80) == ""
