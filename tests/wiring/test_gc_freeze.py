"""The serving process moves what start-up made (the catalog's lists included) out of the
garbage collector's way: full collections under load walked ~130,000 long-lived objects
each time, 60-100 ms a pause, about once a second."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from aipasta.app import create_app
from resolvers.context import Services
from tests.conftest import make_settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import serve


def _walked_by_the_collector(target: object) -> bool:
    return any(o is target for o in gc.get_objects())


@pytest.fixture
def unfrozen() -> Iterator[None]:
    # The test process is not a server: give it its collector back.
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
@pytest.mark.parametrize("freeze", [True, False])
async def test_the_start_up_objects_are_frozen_once_the_catalog_is_in_and_only_when_asked(
    tmp_path: Path, mongo_uri: str, clean_db: str, catalog_upstream: FakeUpstream, freeze: bool
) -> None:
    settings = make_settings(
        tmp_path,
        MONGODB_URI=mongo_uri,
        AIPASTA_DB_NAME=clean_db,
        OPENROUTER_BASE_URL=catalog_upstream.url("openrouter"),
        HUGGINGFACE_BASE_URL=catalog_upstream.url("hf"),
        OPENROUTER_API_KEY="sk-or-v1-test-secret",
        HUGGINGFACE_API_KEY="hf_test_secret",
        AIPASTA_AUTH="off",
    )
    assert gc.get_freeze_count() == 0
    async with serve(create_app(settings, freeze_after_start=freeze)) as running:
        services: Services = running.state["services"]
        view = await services.catalog.view()
        assert view.all, "the fake upstream's lists are in"
        model = view.all[0]
        # The freeze follows the catalog's first view within a few turns of the loop.
        for _ in range(50):
            await asyncio.sleep(0)
        if freeze:
            assert gc.get_freeze_count() > 0
            assert not _walked_by_the_collector(model)
            assert not _walked_by_the_collector(services)
        else:
            # An app among many in one process (the tests') leaves the collector alone.
            assert gc.get_freeze_count() == 0
            assert _walked_by_the_collector(model)
