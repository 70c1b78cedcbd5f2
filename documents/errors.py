"""Errors of the storage layer.

StorageError
└── DatabaseUnavailable   MongoDB cannot be reached, or did not answer in time
    └── DatabaseTimeout   one operation ran past its timeout; MongoDB is not down for it
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every storage failure."""


class DatabaseUnavailable(StorageError):
    def __init__(self, message: str = "the database is unavailable") -> None:
        super().__init__(message)
        self.message = message


class DatabaseTimeout(DatabaseUnavailable):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"the database did not answer within {seconds:g} s")
        self.seconds = seconds
