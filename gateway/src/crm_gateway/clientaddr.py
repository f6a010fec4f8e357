"""The address a request comes from, for rate limits and login throttling.

`X-Forwarded-For` is believed only when the connecting peer is one of the configured proxies
(`CRM_GATEWAY_TRUSTED_PROXIES`: addresses or networks, comma-separated; empty by default, so the
header is ignored). Then the client is the right-most address in the header that is not itself a
trusted proxy: entries left of it could have been written by anyone.
"""

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str | Iterable[str]) -> tuple[Network, ...]:
    items = value.split(",") if isinstance(value, str) else value
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(scope: Scope, trusted: tuple[Network, ...]) -> str:
    client = scope.get("client")
    peer = client[0] if client else "-"
    if not trusted or not _trusted(peer, trusted):
        return peer
    forwarded = [
        value.decode("latin-1") for key, value in scope.get("headers", ()) if key == b"x-forwarded-for"
    ]
    hops = [h.strip() for value in forwarded for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage: stop at the last hop we could read
        if not _trusted(hop, trusted):
            return str(hop)
        peer = hop
    return peer
