"""A partial withdrawal racing a revocation, a full withdrawal or another partial withdrawal:
the revocation is never lost and a withdrawn purpose never comes back.

Each interleaving is forced with the subject lock: one transaction, on a connection of the
test's own, holds it and does the competing change while the guardian's form waits for it
(seen in ``pg_blocking_pids``, polled with a bound), then commits. No timing is asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from service.consent import endings
from service.db import locks
from service.db.audit_events import verify_chain
from tests.support.flows import Granted, check, granted_consent
from tests.support.guardian_client import csrf_token
from tests.support.service import Service

SUBJECT = "child-partial-race"
GUARDIAN = "partial.race@example.com"
ALL = ["tutoring", "progress_reports", "newsletter"]
REASON = "Guardian identity could not be confirmed (ticket 99)"


async def wait_until_blocked_by(
    db: asyncpg.Connection, holder: asyncpg.Connection, task: asyncio.Future[Any]
) -> None:
    pid = holder.get_server_pid()
    for _ in range(1000):
        blocked = await db.fetchval(
            "select count(*) from pg_stat_activity "
            "where datname = current_database() and $1 = any(pg_blocking_pids(pid))",
            pid,
        )
        if blocked:
            return
        if task.done():
            pytest.fail(f"finished instead of waiting for the subject lock: {task.result()!r}")
        await asyncio.sleep(0.01)
    pytest.fail("gave up waiting for the form to wait on the subject lock")


@asynccontextmanager
async def holding_the_subject(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A transaction that holds the subject lock until the block ends, then commits."""
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await locks.lock_subject(holder, SUBJECT)
            yield holder
    finally:
        await holder.close()


async def race(
    svc: Service,
    db: asyncpg.Connection,
    database_url: str,
    granted: Granted,
    purposes: list[str],
    first: Callable[[asyncpg.Connection], Awaitable[object]],
) -> httpx.Response:
    """The guardian submits the withdrawal of ``purposes`` while ``first`` holds the subject;
    ``first`` commits before the form can go on."""
    page = await svc.client.get(granted.withdraw_path)
    form = {"confirm": "yes", "purposes": purposes, "_csrf_token": csrf_token(page.text)}
    submitting: asyncio.Task[httpx.Response] | None = None
    try:
        async with holding_the_subject(database_url) as holder:
            submitting = asyncio.create_task(svc.client.post(granted.withdraw_path, data=form))
            await wait_until_blocked_by(db, holder, submitting)
            await first(holder)
        return await submitting
    finally:
        if submitting is not None and not submitting.done():
            with contextlib.suppress(BaseException):
                await submitting


async def consent_row(db: asyncpg.Connection, consent_id: str) -> asyncpg.Record:
    row = await db.fetchrow(
        "select status, purposes, token, withdrawn_purposes::text as withdrawn from consents "
        "where id = $1",
        uuid.UUID(consent_id),
    )
    assert row is not None
    return row


async def actions(db: asyncpg.Connection) -> list[str]:
    rows = await db.fetch(
        "select action from audit_events where consent_id is not null order by id"
    )
    return [row["action"] for row in rows]


async def assert_chain_intact(db: asyncpg.Connection) -> None:
    checked, broken = await verify_chain(db)
    assert broken is None, broken
    assert checked == await db.fetchval("select count(*) from audit_events")


def token_of(granted: Granted) -> str:
    return granted.withdraw_path.rsplit("/", 1)[1]


async def test_a_revocation_first_is_never_undone_by_a_partial_withdrawal(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection, database_url: str
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)

    async def revoke(holder: asyncpg.Connection) -> object:
        return await endings.revoke(
            holder, svc.runtime, uuid.UUID(granted.consent_id), reason=REASON, staff="alice"
        )

    response = await race(svc, db, database_url, granted, ["newsletter"], revoke)

    assert response.status_code == 410, response.text
    assert "This consent is no longer active" in response.text
    row = await consent_row(db, granted.consent_id)
    assert (row["status"], row["purposes"], row["withdrawn"]) == ("revoked", ALL, "[]")
    for purpose in ALL:
        answer = await check(svc.client, api, SUBJECT, purpose)
        assert (answer["allowed"], answer["status"]) == (False, "revoked")
    assert await actions(db) == ["consent.granted", "consent.revoked"]
    await assert_chain_intact(db)


async def test_a_partial_withdrawal_first_is_then_revoked_as_it_stands(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection, database_url: str
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    revoking: asyncio.Task[httpx.Response] | None = None
    try:
        async with holding_the_subject(database_url) as holder:
            await endings.withdraw_purposes(holder, svc.runtime, token_of(granted), ["newsletter"])
            revoking = asyncio.create_task(
                svc.client.post(
                    f"/v1/consents/{granted.consent_id}/revoke",
                    json={"reason": REASON},
                    headers=svc.staff("support"),
                )
            )
            await wait_until_blocked_by(db, holder, revoking)
        revoked = await revoking
    finally:
        if revoking is not None and not revoking.done():
            with contextlib.suppress(BaseException):
                await revoking

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["purposes"] == ["tutoring", "progress_reports"]
    row = await consent_row(db, granted.consent_id)
    assert (row["status"], row["purposes"]) == ("revoked", ["tutoring", "progress_reports"])
    for purpose in ALL:
        assert (await check(svc.client, api, SUBJECT, purpose))["allowed"] is False
    assert await actions(db) == ["consent.granted", "consent.purposes_withdrawn", "consent.revoked"]
    await assert_chain_intact(db)


async def test_a_full_withdrawal_first_is_never_undone_by_a_partial_one(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection, database_url: str
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)

    async def withdraw_all(holder: asyncpg.Connection) -> object:
        return await endings.withdraw(holder, svc.runtime, token_of(granted))

    response = await race(svc, db, database_url, granted, ["newsletter"], withdraw_all)

    assert response.status_code == 410, response.text
    row = await consent_row(db, granted.consent_id)
    assert (row["status"], row["purposes"], row["withdrawn"]) == ("withdrawn", ALL, "[]")
    assert (await check(svc.client, api, SUBJECT))["status"] == "withdrawn"
    # a full withdrawal erases what was held for the consent (CONSENT_WITHDRAWAL_ERASES)
    assert await actions(db) == ["consent.granted", "consent.withdrawn", "consent.erased"]
    await assert_chain_intact(db)


async def test_two_partial_withdrawals_never_bring_a_purpose_back(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection, database_url: str
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)

    async def withdraw_newsletter(holder: asyncpg.Connection) -> object:
        return await endings.withdraw_purposes(
            holder, svc.runtime, token_of(granted), ["newsletter"]
        )

    # The form was read with every purpose live; it withdraws progress reports only.
    response = await race(svc, db, database_url, granted, ["progress_reports"], withdraw_newsletter)

    assert response.status_code == 200, response.text
    row = await consent_row(db, granted.consent_id)
    assert (row["status"], row["purposes"]) == ("granted", ["tutoring"])
    claims = jwt.decode(row["token"], options={"verify_signature": False})
    assert claims["purposes"] == ["tutoring"]
    for purpose, allowed in (
        ("tutoring", True),
        ("progress_reports", False),
        ("newsletter", False),
    ):
        assert (await check(svc.client, api, SUBJECT, purpose))["allowed"] is allowed
    assert await actions(db) == [
        "consent.granted",
        "consent.purposes_withdrawn",
        "consent.purposes_withdrawn",
    ]
    await assert_chain_intact(db)


async def test_a_purpose_withdrawn_meanwhile_is_explained_not_withdrawn_twice(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection, database_url: str
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)

    async def withdraw_newsletter(holder: asyncpg.Connection) -> object:
        return await endings.withdraw_purposes(
            holder, svc.runtime, token_of(granted), ["newsletter"]
        )

    # A second tab still shows the newsletter.
    response = await race(svc, db, database_url, granted, ["newsletter"], withdraw_newsletter)

    assert response.status_code == 422, response.text
    assert "Please choose only from the purposes listed on this page." in response.text
    assert 'value="newsletter"' not in response.text
    row = await consent_row(db, granted.consent_id)
    assert row["purposes"] == ["tutoring", "progress_reports"]
    assert await actions(db) == ["consent.granted", "consent.purposes_withdrawn"]
