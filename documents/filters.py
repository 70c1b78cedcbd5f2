"""Query filters built from typed values only.

A value that reached a filter as a dict, e.g. `{"$ne": ""}`, would be an operator, not
a value. `equal()` refuses anything but a plain scalar before any query is sent, so a
validated `str` is only ever compared for equality. The filter it returns is plain
equality (`{field: value}`): SecantusDB serves that from a compound index, where the
`{field: {"$eq": value}}` form on two or more fields is answered by a collection scan.
"""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId

Scalar = str | bool | int | ObjectId | datetime | None
_SCALARS = (str, bool, int, ObjectId, datetime, type(None))


def equal(**fields: Scalar) -> dict[str, Scalar]:
    """`{field: value, ...}`; TypeError if any value is not a plain scalar."""
    for name, value in fields.items():
        if not isinstance(value, _SCALARS):
            raise TypeError(f"`{name}` must be a plain value, not {type(value).__name__}")
    return dict(fields)
