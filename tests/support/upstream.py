"""Moved to tests.support.fake_upstream (kept only while the tests move over)."""

from tests.support.fake_upstream import FakeUpstream, Reply, fixture_json

__all__ = ["FakeUpstream", "Reply", "fixture_json"]
