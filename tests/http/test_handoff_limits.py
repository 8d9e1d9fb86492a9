"""The handoff's limits in time and number: every one-time code emailed to an address counts
against that address (confirmed or not, whatever the request), and a handoff's session, code
and unconfirmed address are deleted by the worker once the session's time is over, as the
written retention policy says."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg
import httpx

from service.clock import ManualClock
from service.dev.mailcatcher import Mailbox
from service.worker import Worker
from tests.support.handoff import enter_code, give_address, handoff_request_body

TARGET = "somebody.else@example.net"


async def handoff_session(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, subject_id: str
) -> tuple[uuid.UUID, str]:
    response = await client.post(
        "/v1/consent-requests", json=handoff_request_body(clock, subject_id), headers=auth
    )
    assert response.status_code == 201, response.text
    opened = await enter_code(client, response.json()["handoff"]["code"])
    assert opened.status_code == 303, opened.text
    return uuid.UUID(response.json()["id"]), opened.headers["location"]


def morning_after(clock: ManualClock) -> datetime:
    """6:00 UTC of the next day: the day's counter has hours left either way."""
    return (clock.now() + timedelta(days=1)).replace(hour=6, minute=0, second=0)


async def test_codes_to_one_address_are_limited_across_requests(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Mailbox,
) -> None:
    clock.set(morning_after(clock))
    for n in range(5):
        _, session_path = await handoff_session(client, auth, clock, f"child-limit-{n}")
        sent = await give_address(client, session_path, TARGET)
        assert sent.status_code == 303, sent.text
    assert await worker.deliver_due() == 5
    assert len(mailbox.to(TARGET)) == 5

    # The rate-limit purge an hour later keeps the day's counter.
    clock.advance(timedelta(hours=2))
    await worker.sweep()

    _, session_path = await handoff_session(client, auth, clock, "child-limit-5")
    refused = await give_address(client, session_path, TARGET)
    assert refused.status_code == 429
    assert "Too many codes have been asked for" in refused.text
    wait = int(refused.headers["retry-after"])
    assert 0 < wait <= 24 * 3600
    assert await worker.deliver_due() == 0
    assert len(mailbox.to(TARGET)) == 5

    # Another address is not affected, and the limit ends with its window.
    other = await give_address(client, session_path, "another.parent@example.com")
    assert other.status_code == 303
    clock.advance(timedelta(seconds=wait))
    _, session_path = await handoff_session(client, auth, clock, "child-limit-6")
    again = await give_address(client, session_path, TARGET)
    assert again.status_code == 303, again.text


async def test_codes_to_the_address_on_file_count_too(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Mailbox,
) -> None:
    clock.set(morning_after(clock))
    for n in range(5):
        _, session_path = await handoff_session(client, auth, clock, f"child-limit-mixed-{n}")
        assert (await give_address(client, session_path, TARGET)).status_code == 303
    response = await client.post(
        "/v1/consent-requests",
        json=handoff_request_body(clock, "child-limit-on-file", guardian_email=TARGET),
        headers=auth,
    )
    assert response.status_code == 201
    opened = await enter_code(client, response.json()["handoff"]["code"])
    assert opened.status_code == 303
    confirm_path = opened.headers["location"]
    # The request's own email went out, but no sixth code.
    assert await worker.deliver_due() == 6
    page = await client.get(confirm_path)
    assert page.status_code == 200
    assert "We have sent a code" not in page.text
    refused = await give_address(client, confirm_path.removesuffix("/confirm"), "")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "Too many codes have been asked for" in refused.text


async def test_the_worker_deletes_a_handoffs_session_code_and_address_when_its_time_is_over(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    db: asyncpg.Connection,
) -> None:
    request_id, session_path = await handoff_session(client, auth, clock, "child-handoff-sweep")
    assert (await give_address(client, session_path, TARGET)).status_code == 303
    opened_at = clock.now()

    async def held() -> tuple[bool, bool, bool]:
        row = await db.fetchrow(
            "select session_hash, email_enc, otp_hash from consent_handoffs where request_id = $1",
            request_id,
        )
        assert row is not None
        return (
            row["session_hash"] is not None,
            row["email_enc"] is not None,
            row["otp_hash"] is not None,
        )

    assert await held() == (True, True, True)
    clock.set(opened_at + timedelta(minutes=30) - timedelta(seconds=1))
    assert (await worker.sweep())["handoff_sessions"] == 0
    assert await held() == (True, True, True)

    clock.set(opened_at + timedelta(minutes=30) + timedelta(seconds=1))
    assert (await worker.sweep())["handoff_sessions"] == 1
    assert await held() == (False, False, False)
    assert (await worker.sweep())["handoff_sessions"] == 0
    # The request waits on, the page after the code is closed.
    status = await client.get(f"/v1/consent-requests/{request_id}", headers=auth)
    assert status.json()["status"] == "pending"
    assert (await client.get(session_path)).status_code == 410


async def test_the_retention_policy_names_the_handoffs_records(client: httpx.AsyncClient) -> None:
    english = await client.get("/privacy/retention")
    assert english.status_code == 200
    assert "Email addresses typed after the code from the child&#39;s screen" in english.text
    assert "30 minutes after the code from the child" in english.text
    assert "Counters of codes emailed to one address" in english.text
    slovenian = await client.get("/privacy/retention", headers={"Accept-Language": "sl"})
    assert "E-poštni naslovi, vneseni po kodi z otrokovega zaslona" in slovenian.text
    assert "Števci kod, poslanih na posamezen naslov" in slovenian.text
