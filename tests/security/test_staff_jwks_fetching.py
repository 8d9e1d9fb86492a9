"""Fetching the staff JWKS from the identity provider's URL: a slow answer is cut off by one
overall deadline, an oversized one by a byte cap, a failing provider is asked again only after a
back-off (never once per request), and the last good keys keep working meanwhile.

The provider is a real HTTP server; its hit counter is the proof. Back-off and cache ages are
moved with the service's clock, never waited for."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Iterator
from datetime import timedelta

import httpx
import pytest

import service.security.staff_tokens
from service.clock import ManualClock
from service.security.staff_tokens import (
    BACKOFF_FIRST_SECONDS,
    CACHE_SECONDS,
    MAX_JWKS_BYTES,
)
from tests.support.credentials import StaffKeys
from tests.support.identity_provider import Behaviour, IdentityProvider, identity_provider
from tests.support.problems import assert_problem
from tests.support.service import Service, start_service

EVENTS = "/v1/subjects/child-jwks-1/events"
# A bound for a request that would otherwise never end; nothing is asserted about its duration.
SAFETY_NET_SECONDS = 60


@pytest.fixture
def provider(staff_keys: StaffKeys) -> Iterator[IdentityProvider]:
    with identity_provider(json.loads(staff_keys.jwks_file.read_text())) as running:
        yield running


@pytest.fixture
async def service_(
    base_env: dict[str, str], clock: ManualClock, staff_keys: StaffKeys, provider: IdentityProvider
) -> AsyncIterator[Service]:
    env = {**staff_keys.env(), "CONSENT_STAFF_JWKS": provider.url}
    async with start_service(base_env, clock, env) as running:
        yield running


async def within_safety_net(request: Awaitable[httpx.Response]) -> httpx.Response:
    return await asyncio.wait_for(request, SAFETY_NET_SECONDS)


async def staff_get(service_: Service) -> httpx.Response:
    return await within_safety_net(service_.client.get(EVENTS, headers=service_.staff("support")))


def assert_keys_unavailable(response: httpx.Response, reason: str) -> None:
    problem = assert_problem(response, 401)
    assert "staff keys unavailable" in problem["detail"], problem
    assert reason in problem["detail"], problem


async def test_a_dripping_jwks_is_cut_off_by_one_overall_deadline(
    service_: Service, provider: IdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read succeeds quickly (a byte every 50 ms), so only a deadline over the whole
    fetch ends it. The deadline is shortened so the test does not wait the default 5 s."""
    monkeypatch.setattr(service.security.staff_tokens, "FETCH_DEADLINE_SECONDS", 0.5)
    provider.behaviour = Behaviour.DRIPPING
    assert_keys_unavailable(await staff_get(service_), "within 0.5 s")
    assert provider.hits == 1

    provider.behaviour = Behaviour.OK
    service_.clock.advance(timedelta(seconds=BACKOFF_FIRST_SECONDS))
    assert (await staff_get(service_)).status_code == 200
    assert provider.hits == 2


@pytest.mark.parametrize("behaviour", [Behaviour.HUGE, Behaviour.UNENDING])
async def test_an_oversized_jwks_is_refused_at_the_byte_cap(
    service_: Service, provider: IdentityProvider, behaviour: Behaviour
) -> None:
    """HUGE is a valid JWKS that announces its 1 MiB; UNENDING announces nothing and would send
    64 MiB: the client stops reading at the cap (plus what the sockets buffered)."""
    assert provider.HUGE_BYTES > MAX_JWKS_BYTES
    provider.behaviour = behaviour
    assert_keys_unavailable(await staff_get(service_), f"larger than {MAX_JWKS_BYTES} bytes")
    assert provider.hits == 1
    if behaviour is Behaviour.UNENDING:
        assert provider.bytes_sent < provider.UNENDING_BYTES


async def test_a_failing_identity_provider_is_asked_once_per_back_off_not_per_request(
    service_: Service, provider: IdentityProvider
) -> None:
    provider.behaviour = Behaviour.FAILING
    answers = await asyncio.gather(*(staff_get(service_) for _ in range(20)))
    answers += [await staff_get(service_) for _ in range(10)]
    assert provider.hits == 1
    for response in answers:
        assert_keys_unavailable(response, "HTTP 503")

    # The back-off doubles while the provider keeps failing: 10 s, then 20 s.
    service_.clock.advance(timedelta(seconds=BACKOFF_FIRST_SECONDS))
    assert_keys_unavailable(await staff_get(service_), "HTTP 503")
    assert provider.hits == 2
    service_.clock.advance(timedelta(seconds=BACKOFF_FIRST_SECONDS))
    assert_keys_unavailable(await staff_get(service_), "HTTP 503")
    assert provider.hits == 2, "still inside the second, doubled back-off"

    # Recovered, but not asked before the back-off ends; then asked once, and cached.
    provider.behaviour = Behaviour.OK
    assert_keys_unavailable(await staff_get(service_), "HTTP 503")
    assert provider.hits == 2
    service_.clock.advance(timedelta(seconds=BACKOFF_FIRST_SECONDS))
    for _ in range(5):
        response = await staff_get(service_)
        assert response.status_code == 200, response.text
    assert provider.hits == 3


async def test_the_last_good_keys_keep_working_while_the_identity_provider_is_down(
    service_: Service, provider: IdentityProvider, staff_keys: StaffKeys
) -> None:
    assert (await staff_get(service_)).status_code == 200
    assert provider.hits == 1

    provider.behaviour = Behaviour.FAILING
    service_.clock.advance(timedelta(seconds=CACHE_SECONDS + 1))  # the cached keys are stale
    for _ in range(10):
        response = await staff_get(service_)
        assert response.status_code == 200, response.text
    assert provider.hits == 1 + 1, "one refresh attempt, then the back-off"

    # A key rotated in meanwhile cannot be learnt while the provider is down ...
    old_token = service_.staff("support")
    staff_keys.rotate(keep_old=True)
    new_token = service_.staff("support")
    assert_keys_unavailable(
        await within_safety_net(service_.client.get(EVENTS, headers=new_token)), "HTTP 503"
    )
    assert provider.hits == 2

    # ... and is, once it is back and the back-off has passed; the old key still works too.
    provider.document = json.loads(staff_keys.jwks_file.read_text())
    provider.behaviour = Behaviour.OK
    service_.clock.advance(timedelta(seconds=BACKOFF_FIRST_SECONDS))
    for token in (new_token, old_token):
        response = await within_safety_net(service_.client.get(EVENTS, headers=token))
        assert response.status_code == 200, response.text
    assert provider.hits == 3
