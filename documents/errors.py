"""Errors of the storage layer.

StorageError
└── DatabaseUnavailable   MongoDB cannot be reached, or did not answer in time
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every storage failure."""


class DatabaseUnavailable(StorageError):
    def __init__(self, message: str = "the database is unavailable") -> None:
        super().__init__(message)
        self.message = message
