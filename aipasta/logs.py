"""Log set-up for the server and the CLI."""

from __future__ import annotations

import logging

from aipasta.settings import LogLevel


def configure_logging(level: LogLevel) -> None:
    logging.basicConfig(
        level=level.value,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiohttp and pymongo are chatty at DEBUG and can echo request details.
    for noisy in ("aiohttp.access", "pymongo", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
