"""An injectable sleep for code that waits between tries (no test waits for real)."""

from __future__ import annotations


class Sleeps:
    """An injectable sleep that only writes down how long it was asked to wait."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
