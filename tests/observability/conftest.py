from __future__ import annotations

from tests.streaming.conftest import sse, stream_app  # noqa: F401 - shared fixtures
