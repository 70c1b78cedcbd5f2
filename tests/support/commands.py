"""The commands a client really sends to MongoDB, recorded by pymongo's command monitoring."""

from __future__ import annotations

from typing import Any

from pymongo import monitoring

# Sent by the driver itself, not by the code under test.
_HOUSEKEEPING = {"hello", "isMaster", "ismaster", "ping", "endSessions", "killCursors"}


class CommandLog(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in _HOUSEKEEPING:
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def names(self) -> list[str]:
        return [next(iter(command)) for command in self.commands]

    def finds(self, collection: str) -> list[dict[str, Any]]:
        return [c for c in self.commands if c.get("find") == collection]

    def clear(self) -> None:
        self.commands.clear()
