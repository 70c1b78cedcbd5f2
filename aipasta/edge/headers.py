"""Request headers read straight from the ASGI scope, in one pass.

Starlette's `Headers(scope=...)` is a mapping built for each use, and each `.get` scans
every header again; a layer that needs a few headers reads them here at once. As with
`Headers.get`, a repeated header counts by its first occurrence.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import Scope


def first_headers(scope: Scope, names: Collection[bytes]) -> dict[bytes, str]:
    """The first value of each header in `names` (lower-case, as ASGI spells them) that
    the request has, decoded as Latin-1."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in names and name not in found:
            found[name] = value.decode("latin-1")
    return found
