"""The client's IP address: the socket peer, or what trusted proxies say it was.

`X-Forwarded-For` is believed only when the peer is a trusted proxy, and then only as far
as the chain of trusted proxies goes: reading right to left, each entry was appended by
the hop before it, so the right-most address that is not itself a trusted proxy is the
first one no trusted party vouches for being a proxy: the client. Everything left of it
was written by the client and could be anything.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# No peer address at all (a unix socket): such clients share one limit.
UNKNOWN = "unknown"


# Distinct peer addresses whose verdict is remembered (TrustedProxies); past that, a new
# address is judged on each request.
PEER_ENTRIES = 4096


class TrustedProxies:
    """The trusted proxy networks, and each peer address judged once: a server sees the
    same few peers (its proxies, or its clients' addresses) request after request, and
    parsing one costs more than the rest of the check."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks: Sequence[Network] = tuple(networks)
        # Peer text -> (the address as client_ip writes it, whether it is a trusted proxy).
        self._peers: dict[str, tuple[str, bool]] = {}

    def peer(self, scope: Mapping[str, Any]) -> tuple[str, bool]:
        """The socket peer's address (UNKNOWN without one; as given when it does not
        parse) and whether it is a trusted proxy."""
        client = scope.get("client")
        if not client:
            return UNKNOWN, False
        text = str(client[0])
        known = self._peers.get(text)
        if known is None:
            address = parse_address(text)
            if address is None:
                known = (text, False)
            else:
                known = (str(address), is_trusted(address, self.networks))
            if len(self._peers) < PEER_ENTRIES:
                self._peers[text] = known
        return known

    def client_ip(self, scope: Mapping[str, Any]) -> str:
        """`client_ip`, with the peer's verdict remembered."""
        peer, trusted = self.peer(scope)
        if not trusted:
            return peer
        return _forwarded_client(peer, forwarded_for(scope), self.networks)


def client_ip(scope: Mapping[str, Any], trusted: Sequence[Network]) -> str:
    """The client's address (for a one-off question: TrustedProxies remembers peers)."""
    return TrustedProxies(trusted).client_ip(scope)


def _forwarded_client(peer: str, forwarded: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client behind the trusted proxy `peer`, from its X-Forwarded-For entries."""
    nearest = peer
    for entry in reversed(forwarded):
        address = parse_address(entry)
        if address is None:
            # A trusted proxy appends a real address; garbage came from further left,
            # so the nearest trusted hop is all that is known.
            break
        if not is_trusted(address, trusted):
            return str(address)
        nearest = str(address)
    return nearest


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
