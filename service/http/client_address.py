"""Which address a request comes from, for the guardian pages' rate limits.

``X-Forwarded-For`` is written by whoever sends the request, so it is believed only as far as
it was written by proxies we trust (``CONSENT_TRUSTED_PROXIES``):

- a request whose direct peer is not a trusted proxy comes from that peer; its header is
  ignored;
- otherwise the header is read from the right, one hop per entry: each entry is the address
  that connected to the proxy that appended it. The first entry that is not a trusted proxy is
  the client. Entries left of it were written by the client and are never read, so a forged
  left part changes nothing. When every entry is a trusted proxy, the leftmost is the client;
  an entry that is not an address ends the walk at the last trusted hop.

``CONSENT_TRUST_FORWARDED_FOR`` (deprecated) without ``CONSENT_TRUSTED_PROXIES`` keeps its
earlier meaning: the direct peer, whatever its address, is one trusted proxy, so the rightmost
entry is the client. It is safe only when nothing but that proxy can reach the service.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from service.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str) -> IPAddress | None:
    """An address as a proxy writes it (``192.0.2.1``, ``192.0.2.1:5060``, ``2001:db8::1``,
    ``[2001:db8::1]:443``), IPv4-mapped IPv6 as IPv4; None when it is not one."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_ip(
    peer: str | None,
    forwarded_for: Sequence[str],
    *,
    trusted_proxies: Sequence[IPNetwork],
    trust_any_peer: bool = False,
) -> IPAddress | None:
    """The client's address (see the module); None when the peer is unknown.

    ``forwarded_for`` holds the ``X-Forwarded-For`` header values in the order received.
    """
    peer_ip = parse_ip(peer) if peer else None
    hops = [entry for value in forwarded_for for entry in value.split(",") if entry.strip()]
    if not trusted_proxies:
        if trust_any_peer and hops:
            return parse_ip(hops[-1]) or peer_ip
        return peer_ip
    if peer_ip is None:
        return None

    def trusted(address: IPAddress) -> bool:
        return any(address in network for network in trusted_proxies)

    client = peer_ip
    for entry in reversed(hops):
        if not trusted(client):
            break
        address = parse_ip(entry)
        if address is None:
            break
        client = address
    return client


def limit_keys(address: IPAddress | None) -> list[tuple[str, str]]:
    """What a client is counted as, ``(kind, key)``: its address, and for IPv6 also its /64,
    the block one subscriber or one site gets, so rotating addresses within it gains little."""
    if address is None:
        return [("address", "unknown")]
    keys = [("address", str(address))]
    if isinstance(address, ipaddress.IPv6Address):
        keys.append(("ipv6-64", str(ipaddress.IPv6Network((address, 64), strict=False))))
    return keys
