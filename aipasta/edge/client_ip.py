"""The client's IP address: the socket peer, or what trusted proxies say it was.

`X-Forwarded-For` is believed only when the peer is a trusted proxy, and then only as far
as the chain of trusted proxies goes: reading right to left, each entry was appended by
the hop before it, so the right-most address that is not itself a trusted proxy is the
first one no trusted party vouches for being a proxy: the client. Everything left of it
was written by the client and could be anything.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# No peer address at all (a unix socket): such clients share one limit.
UNKNOWN = "unknown"


def client_ip(scope: Mapping[str, Any], trusted: Sequence[Network]) -> str:
    client = scope.get("client")
    if not client:
        return UNKNOWN
    peer = parse_address(str(client[0]))
    if peer is None:
        return str(client[0])
    if not is_trusted(peer, trusted):
        return str(peer)
    nearest = peer
    for entry in reversed(forwarded_for(scope)):
        address = parse_address(entry)
        if address is None:
            # A trusted proxy appends a real address; garbage came from further left,
            # so the nearest trusted hop is all that is known.
            break
        if not is_trusted(address, trusted):
            return str(address)
        nearest = address
    return str(nearest)


def forwarded_for(scope: Mapping[str, Any]) -> list[str]:
    """Every X-Forwarded-For entry, left to right, across repeated headers."""
    entries: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            entries += [e.strip() for e in value.decode("latin-1").split(",") if e.strip()]
    return entries


def parse_address(text: str) -> Address | None:
    """An IP from a peer or an X-Forwarded-For entry, with any port (`1.2.3.4:80`,
    `[::1]:80`) dropped and IPv4-mapped IPv6 turned back into IPv4."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)
