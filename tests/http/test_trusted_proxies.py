"""Whose X-Forwarded-For the guardian pages believe (CONSENT_TRUSTED_PROXIES) and what a client
is counted as: its address, and for IPv6 also its /64.

The app runs over ASGI with the peer address each test chooses; real PostgreSQL counts the
limits; time moves only through the ManualClock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from service.clock import ManualClock
from service.http.client_address import client_ip, limit_keys, parse_ip
from service.http.guardian import SUBMISSIONS_PER_MINUTE, SUBMISSIONS_PER_MINUTE_PER_IPV6_64
from service.security.tokens import new_link_token
from service.settings import ConfigError, load_settings, parse_networks
from tests.support.credentials import bearer, make_api_key
from tests.support.flows import open_request
from tests.support.guardian_client import review_csrf
from tests.support.service import Service, start_service

# ---- the rule, as a function ----------------------------------------------------------------

PROXIES = parse_networks("127.0.0.1, 10.0.0.0/8, fd00::/8")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # A peer that is not a trusted proxy: its header is not read at all.
        ("192.0.2.7", ["198.51.100.1"], "192.0.2.7"),
        ("192.0.2.7", ["10.0.0.9"], "192.0.2.7"),
        # A trusted proxy without the header is itself the client.
        ("127.0.0.1", [], "127.0.0.1"),
        # One trusted proxy: the entry it appended.
        ("127.0.0.1", ["203.0.113.9"], "203.0.113.9"),
        # The client forged the left part; the rightmost untrusted entry counts.
        ("127.0.0.1", ["198.18.0.1, 10.0.0.5, 203.0.113.9"], "203.0.113.9"),
        # Two trusted proxies in a chain, then the client.
        ("127.0.0.1", ["198.18.0.1, 203.0.113.9, 10.1.2.3"], "203.0.113.9"),
        # Header lines are read as one list, in order.
        ("127.0.0.1", ["198.18.0.1", "203.0.113.9, 10.1.2.3"], "203.0.113.9"),
        # Every entry a trusted proxy: the leftmost.
        ("127.0.0.1", ["10.0.0.4, 10.0.0.5"], "10.0.0.4"),
        # Not an address: the walk stops at the last trusted hop.
        ("127.0.0.1", ["203.0.113.9, garbage, 10.1.2.3"], "10.1.2.3"),
        ("127.0.0.1", ["unknown"], "127.0.0.1"),
        # How proxies write addresses: with ports, in brackets, IPv4-mapped, IPv6 peers.
        ("127.0.0.1", ["203.0.113.9:5060"], "203.0.113.9"),
        ("127.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("127.0.0.1", ["::ffff:203.0.113.9"], "203.0.113.9"),
        ("::ffff:127.0.0.1", ["203.0.113.9"], "203.0.113.9"),
        ("fd00::1", ["2001:db8::1"], "2001:db8::1"),
        ("2001:db8::2", ["2001:db8::1"], "2001:db8::2"),
    ],
)
def test_the_client_is_the_rightmost_address_not_a_trusted_proxy(
    peer: str, forwarded_for: list[str], client: str
) -> None:
    assert client_ip(peer, forwarded_for, trusted_proxies=PROXIES) == ipaddress.ip_address(client)


def test_without_trusted_proxies_the_header_is_ignored_unless_the_deprecated_flag_is_set() -> None:
    assert client_ip("127.0.0.1", ["203.0.113.9"], trusted_proxies=()) == parse_ip("127.0.0.1")
    # CONSENT_TRUST_FORWARDED_FOR alone: any peer is one trusted hop, as it always was.
    legacy = client_ip(
        "192.0.2.7", ["198.18.0.1, 203.0.113.9"], trusted_proxies=(), trust_any_peer=True
    )
    assert legacy == parse_ip("203.0.113.9")
    assert client_ip(None, ["203.0.113.9"], trusted_proxies=(), trust_any_peer=True) == legacy
    # With CONSENT_TRUSTED_PROXIES set, the list decides.
    listed = client_ip("192.0.2.7", ["203.0.113.9"], trusted_proxies=PROXIES, trust_any_peer=True)
    assert listed == parse_ip("192.0.2.7")
    assert client_ip(None, ["203.0.113.9"], trusted_proxies=PROXIES) is None


def test_ipv6_clients_are_counted_by_address_and_by_their_64() -> None:
    assert limit_keys(parse_ip("203.0.113.9")) == [("address", "203.0.113.9")]
    assert limit_keys(parse_ip("2001:db8:1:2:aaaa::1")) == [
        ("address", "2001:db8:1:2:aaaa::1"),
        ("ipv6-64", "2001:db8:1:2::/64"),
    ]


def test_trusted_proxies_are_read_from_the_environment(base_env: dict[str, str]) -> None:
    settings = load_settings({**base_env, "CONSENT_TRUSTED_PROXIES": "10.0.0.1, fd00::/8 ,"})
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.1/32"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert settings.deprecations == []
    assert load_settings(base_env).trusted_proxies == ()
    for bad in ["10.0.0.1/8", "proxy.internal", "10.0.0.256"]:
        with pytest.raises(ConfigError, match=r"^CONSENT_TRUSTED_PROXIES: "):
            load_settings({**base_env, "CONSENT_TRUSTED_PROXIES": bad})
    legacy = load_settings({**base_env, "CONSENT_TRUST_FORWARDED_FOR": "true"})
    [note] = legacy.deprecations
    assert "CONSENT_TRUST_FORWARDED_FOR is deprecated" in note
    assert "CONSENT_TRUSTED_PROXIES" in note


# ---- over HTTP ------------------------------------------------------------------------------


def fresh_minute(clock: ManualClock) -> None:
    """Start a fresh one-minute rate-limit window so every post of a test falls into it."""
    now = clock.now()
    clock.set(now.replace(second=0, microsecond=0) + timedelta(minutes=1))


@asynccontextmanager
async def peer_client(svc: Service, peer: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests reach the app from ``peer`` (cookies of its own)."""
    transport = httpx.ASGITransport(app=svc.app, client=(peer, 50_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://consent.test") as client:
        yield client


@asynccontextmanager
async def guardian_service(
    base_env: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    mailbox: Any,
    env: dict[str, str],
) -> AsyncIterator[tuple[Service, str]]:
    """The service with ``env``, and the review link of one open request."""
    api = bearer(await make_api_key(db))
    async with start_service(base_env, clock, env) as svc:
        fresh_minute(clock)
        _request_id, link = await open_request(
            svc, api, mailbox, subject_id="child-proxies", email="proxies@example.com"
        )
        yield svc, link


async def probe(client: httpx.AsyncClient, csrf: str, forwarded_for: str | None) -> int:
    """A submission to a link that does not exist: counted by the limit, else 404."""
    response = await client.post(
        f"/guardian/{new_link_token()}",
        data={"decision": "deny", "_csrf_token": csrf},
        headers={"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {},
    )
    assert response.status_code in (404, 429), response.text[:300]
    return response.status_code


async def probes(
    client: httpx.AsyncClient, csrf: str, count: int, forwarded_for: Callable[[int], str | None]
) -> list[int]:
    return [await probe(client, csrf, forwarded_for(i)) for i in range(count)]


async def test_a_trusted_proxys_forwarded_for_names_the_client(
    base_env: dict[str, str], clock: ManualClock, db: asyncpg.Connection, mailbox: Any
) -> None:
    env = {"CONSENT_TRUSTED_PROXIES": "127.0.0.1"}
    async with (
        guardian_service(base_env, clock, db, mailbox, env) as (svc, link),
        peer_client(svc, "127.0.0.1") as proxy,
    ):
        csrf = await review_csrf(proxy, link)
        # The client forges the left part; the proxy appends the address it saw.
        statuses = await probes(
            proxy, csrf, SUBMISSIONS_PER_MINUTE, lambda i: f"198.18.0.{i}, 203.0.113.9"
        )
        assert statuses == [404] * SUBMISSIONS_PER_MINUTE
        assert await probe(proxy, csrf, "198.18.1.1, 203.0.113.9") == 429
        # Another client behind the same proxy has a budget of its own.
        assert await probe(proxy, csrf, "203.0.113.10") == 404


async def test_a_chain_of_trusted_proxies_is_followed_to_the_rightmost_untrusted_address(
    base_env: dict[str, str], clock: ManualClock, db: asyncpg.Connection, mailbox: Any
) -> None:
    env = {"CONSENT_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"}
    async with (
        guardian_service(base_env, clock, db, mailbox, env) as (svc, link),
        peer_client(svc, "127.0.0.1") as proxy,
    ):
        csrf = await review_csrf(proxy, link)
        # client -> edge proxy (10.1.2.3) -> local proxy (127.0.0.1) -> app; the client varies
        # the left part, and even puts a trusted-looking address there.
        statuses = await probes(
            proxy,
            csrf,
            SUBMISSIONS_PER_MINUTE,
            lambda i: f"198.18.0.{i}, 10.9.9.{i}, 203.0.113.9, 10.1.2.3",
        )
        assert statuses == [404] * SUBMISSIONS_PER_MINUTE
        assert await probe(proxy, csrf, "203.0.113.9, 10.1.2.3") == 429
        assert await probe(proxy, csrf, "203.0.113.10, 10.1.2.3") == 404


@pytest.mark.parametrize(
    ("peer", "env"),
    [
        ("192.0.2.50", {"CONSENT_TRUSTED_PROXIES": "127.0.0.1"}),
        # The deprecated flag does not widen an explicit list.
        (
            "127.0.0.1",
            {"CONSENT_TRUSTED_PROXIES": "10.0.0.1", "CONSENT_TRUST_FORWARDED_FOR": "true"},
        ),
    ],
    ids=["peer not listed", "deprecated flag with a list"],
)
async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    base_env: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    mailbox: Any,
    peer: str,
    env: dict[str, str],
) -> None:
    async with (
        guardian_service(base_env, clock, db, mailbox, env) as (svc, link),
        peer_client(svc, peer) as client,
    ):
        csrf = await review_csrf(client, link)
        statuses = await probes(client, csrf, SUBMISSIONS_PER_MINUTE, lambda i: f"198.18.2.{i}")
        assert statuses == [404] * SUBMISSIONS_PER_MINUTE
        assert await probe(client, csrf, "198.18.3.1") == 429


async def test_ipv6_addresses_within_one_64_share_its_limit(
    base_env: dict[str, str], clock: ManualClock, db: asyncpg.Connection, mailbox: Any
) -> None:
    async with guardian_service(base_env, clock, db, mailbox, {}) as (svc, link):
        # Rotating through one /64: each address is new, the /64 is not.
        for i in range(SUBMISSIONS_PER_MINUTE_PER_IPV6_64):
            async with peer_client(svc, f"2001:db8:1:2::{i + 1:x}") as client:
                assert await probe(client, await review_csrf(client, link), None) == 404
        async with peer_client(svc, "2001:db8:1:2:ffff::1") as client:
            assert await probe(client, await review_csrf(client, link), None) == 429
        # The next /64 is another network.
        async with peer_client(svc, "2001:db8:1:3::1") as client:
            assert await probe(client, await review_csrf(client, link), None) == 404


async def test_one_ipv6_address_has_the_per_address_limit(
    base_env: dict[str, str], clock: ManualClock, db: asyncpg.Connection, mailbox: Any
) -> None:
    async with guardian_service(base_env, clock, db, mailbox, {}) as (svc, link):
        async with peer_client(svc, "2001:db8:5:6::1") as client:
            csrf = await review_csrf(client, link)
            statuses = await probes(client, csrf, SUBMISSIONS_PER_MINUTE, lambda _i: None)
            assert statuses == [404] * SUBMISSIONS_PER_MINUTE
            assert await probe(client, csrf, None) == 429
        # Its neighbour in the same /64 still has room under the /64's limit.
        async with peer_client(svc, "2001:db8:5:6::2") as client:
            assert await probe(client, await review_csrf(client, link), None) == 404
