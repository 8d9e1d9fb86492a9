"""The audit trail is append-only and hash-chained: a clean history verifies, any edit or
removal made behind the service's back is found and named, and erasure keeps it verifiable."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg
import pytest

from service.clock import ManualClock
from service.db.audit_events import verify_chain
from tests.support.cli import run_cli
from tests.support.credentials import bearer, make_api_key
from tests.support.dates import birth_date_years_ago
from tests.support.flows import granted_consent, open_request
from tests.support.guardian_client import open_and_submit
from tests.support.service import Service

SUBJECT = "child-audit-1"
OTHER = "child-audit-2"


async def full_flow(svc: Service, db: asyncpg.Connection, mailbox: Any, clock: ManualClock) -> None:
    """A request granted then revoked by staff, and another subject's request denied."""
    api = bearer(await make_api_key(db))
    granted = await granted_consent(
        svc, api, mailbox, subject_id=SUBJECT, email="audit.parent@example.com"
    )
    revoked = await svc.client.post(
        f"/v1/consents/{granted.consent_id}/revoke",
        json={"reason": "requested by the school"},
        headers=svc.staff("support"),
    )
    assert revoked.status_code == 200, revoked.text
    _, link = await open_request(
        svc,
        api,
        mailbox,
        subject_id=OTHER,
        email="audit.other@example.com",
        birth_date=birth_date_years_ago(clock, years=9),
    )
    denied = await open_and_submit(svc.client, link, {"decision": "deny"})
    assert denied.status_code == 200, denied.text


async def event_id(db: asyncpg.Connection, action: str) -> int:
    found = await db.fetchval("select min(id) from audit_events where action = $1", action)
    assert isinstance(found, int), action
    return found


async def behind_the_services_back(db: asyncpg.Connection, sql: str, *args: Any) -> None:
    """What someone with database superuser rights could do: bypass the append-only trigger."""
    async with db.transaction():
        await db.execute("alter table audit_events disable trigger audit_events_append_only")
        await db.execute(sql, *args)
        await db.execute("alter table audit_events enable trigger audit_events_append_only")


async def as_erasure(db: asyncpg.Connection, sql: str, *args: Any) -> None:
    """An update in a transaction that declares itself an erasure, as ``subjects.erase`` does."""
    async with db.transaction():
        await db.execute("set local consent.redaction = 'on'")
        await db.execute(sql, *args)


async def assert_clean(db: asyncpg.Connection) -> int:
    checked, broken = await verify_chain(db)
    assert broken is None, broken
    assert checked == await db.fetchval("select count(*) from audit_events")
    return checked


async def test_clean_chain_verifies_in_code_and_from_the_command_line(
    svc: Service, db: asyncpg.Connection, mailbox: Any, clock: ManualClock, database_url: str
) -> None:
    await full_flow(svc, db, mailbox, clock)
    actions = [r["action"] for r in await db.fetch("select action from audit_events order by id")]
    assert actions[:3] == ["request.created", "consent.granted", "consent.revoked"]
    checked = await assert_clean(db)
    assert checked >= 5

    result = await run_cli("audit", "verify", env={"CONSENT_DATABASE_URL": database_url})
    assert result.code == 0, result.stderr
    summary, head = result.stdout.strip().splitlines()
    assert summary == f"audit chain verified: {checked} events"
    newest = await db.fetchrow("select id, chain_hash from audit_events order by id desc limit 1")
    assert head.startswith(f"head: {newest['id']}:{newest['chain_hash'].hex()}")


async def test_a_recorded_head_reveals_that_the_newest_events_were_cut_off(
    svc: Service, db: asyncpg.Connection, mailbox: Any, clock: ManualClock, database_url: str
) -> None:
    await full_flow(svc, db, mailbox, clock)
    env = {"CONSENT_DATABASE_URL": database_url}
    first = await run_cli("audit", "verify", env=env)
    recorded = first.stdout.split("head: ")[1].split()[0]
    assert (await run_cli("audit", "verify", "--expect-head", recorded, env=env)).code == 0

    newest = await db.fetchval("select max(id) from audit_events")
    await behind_the_services_back(db, "delete from audit_events where id = $1", newest)
    _, broken = await verify_chain(db)
    assert broken is None  # a chain alone cannot tell that its tail is gone...
    result = await run_cli("audit", "verify", "--expect-head", recorded, env=env)
    assert result.code != 0  # ...but the head recorded elsewhere can
    assert f"head event {newest}" in result.stderr


TAMPERING = {
    "to_status": "to_status = 'denied'",
    "from_status": "from_status = null",
    "actor": "actor = 'staff:mallory'",
    "action": "action = 'request.denied'",
    "occurred_at": "occurred_at = occurred_at - interval '1 hour'",
    "details": """details = details || '{"purposes": ["tutoring"]}'::jsonb""",
    "reason": "reason = 'added afterwards'",
    "subject_id": "subject_id = 'child-someone-else'",
    "consent_id": "consent_id = gen_random_uuid()",
    "request_id": "request_id = null",
    # Pretending the event was redacted by an erasure while changing what it says.
    "fake redaction": (
        "redacted = true, personal_salt = null, "
        """details = jsonb_set(details, '{purposes}', '["newsletter"]')"""
    ),
    "fake redaction keeping the subject": (
        "redacted = true, personal_salt = null, subject_id = 'child-someone-else'"
    ),
}


@pytest.mark.parametrize("field", list(TAMPERING))
async def test_a_single_altered_field_breaks_the_chain_at_that_event(
    svc: Service, db: asyncpg.Connection, mailbox: Any, clock: ManualClock, field: str
) -> None:
    await full_flow(svc, db, mailbox, clock)
    target = await event_id(db, "consent.granted")
    before = await db.fetchval("select count(*) from audit_events where id < $1", target)
    await behind_the_services_back(
        db,
        f"update audit_events set {TAMPERING[field]} where id = $1",
        target,
    )
    checked, broken = await verify_chain(db)
    assert broken is not None, f"altering {field} went unnoticed"
    assert broken.event_id == target
    assert checked == before
    assert broken.problem


async def test_command_line_names_the_altered_event_and_fails(
    svc: Service, db: asyncpg.Connection, mailbox: Any, clock: ManualClock, database_url: str
) -> None:
    await full_flow(svc, db, mailbox, clock)
    target = await event_id(db, "consent.revoked")
    await behind_the_services_back(
        db, "update audit_events set to_status = 'withdrawn' where id = $1", target
    )
    result = await run_cli("audit", "verify", env={"CONSENT_DATABASE_URL": database_url})
    assert result.code != 0
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert f"event {target}" in line


@pytest.mark.parametrize("which", ["consent.granted", "request.created"])
async def test_deleting_an_event_breaks_the_chain_at_the_next_one(
    svc: Service, db: asyncpg.Connection, mailbox: Any, clock: ManualClock, which: str
) -> None:
    await full_flow(svc, db, mailbox, clock)
    target = await event_id(db, which)
    following = await db.fetchval("select min(id) from audit_events where id > $1", target)
    await behind_the_services_back(db, "delete from audit_events where id = $1", target)
    checked, broken = await verify_chain(db)
    assert broken is not None
    assert broken.event_id == following
    assert "prev_hash" in broken.problem
    assert checked == await db.fetchval("select count(*) from audit_events where id < $1", target)


async def test_an_appended_event_that_does_not_chain_is_found(
    svc: Service, db: asyncpg.Connection, mailbox: Any, clock: ManualClock
) -> None:
    await full_flow(svc, db, mailbox, clock)
    forged = await db.fetchval(
        """
        insert into audit_events (actor, action, occurred_at, personal_salt, personal_digest,
                                  content_hash, prev_hash, chain_hash)
        values ('staff:mallory', 'consent.granted', now(), $1, $2, $3, $4, $5)
        returning id
        """,
        *(os.urandom(32) for _ in range(5)),
    )
    _, broken = await verify_chain(db)
    assert broken is not None
    assert broken.event_id == forged


async def test_update_and_delete_on_audit_events_are_refused(
    svc: Service, db: asyncpg.Connection, mailbox: Any, clock: ManualClock
) -> None:
    await full_flow(svc, db, mailbox, clock)
    target = await event_id(db, "consent.granted")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db.execute("update audit_events set to_status = 'denied' where id = $1", target)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db.execute("update audit_events set details = '{}'::jsonb where id = $1", target)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db.execute("delete from audit_events where id = $1", target)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db.execute("delete from audit_events")
    # Even inside an erasure transaction only personal fields may be blanked.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await as_erasure(
            db,
            "update audit_events set to_status = 'denied', redacted = true where id = $1",
            target,
        )
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await as_erasure(  # blanked but not marked redacted
            db, "update audit_events set details = '{}'::jsonb where id = $1", target
        )
    await assert_clean(db)


@pytest.mark.parametrize(
    "change",
    [
        """details = '{"purposes": ["newsletter"]}'::jsonb""",
        "subject_id = 'child-someone-else', reason = null, details = '{}'::jsonb",
        "reason = 'rewritten', subject_id = null, details = '{}'::jsonb",
    ],
    ids=["rewritten-details", "moved-subject", "rewritten-reason"],
)
async def test_redaction_can_only_blank_personal_fields(
    svc: Service, db: asyncpg.Connection, mailbox: Any, clock: ManualClock, change: str
) -> None:
    """The erasure exception of the trigger admits blanking, not rewriting."""
    await full_flow(svc, db, mailbox, clock)
    target = await event_id(db, "consent.revoked")
    sql = f"update audit_events set {change}, personal_salt = null, redacted = true where id = $1"
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await as_erasure(db, sql, target)
    await assert_clean(db)


async def test_truncate_on_audit_events_is_refused(
    svc: Service, db: asyncpg.Connection, mailbox: Any, clock: ManualClock
) -> None:
    """Append-only must hold for TRUNCATE too: an empty table verifies as a clean chain."""
    await full_flow(svc, db, mailbox, clock)
    events = await db.fetchval("select count(*) from audit_events")
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await db.execute("truncate audit_events")
    assert await db.fetchval("select count(*) from audit_events") == events


async def test_chain_still_verifies_after_erasure(
    svc: Service, db: asyncpg.Connection, mailbox: Any, clock: ManualClock, database_url: str
) -> None:
    await full_flow(svc, db, mailbox, clock)
    events = await db.fetchval("select count(*) from audit_events")
    erased = await svc.client.delete(f"/v1/subjects/{SUBJECT}", headers=svc.staff("admin"))
    assert erased.status_code == 200, erased.text
    assert erased.json()["events_redacted"] >= 3
    assert (
        await db.fetchval("select count(*) from audit_events where subject_id = $1", SUBJECT) == 0
    )
    assert await db.fetchval("select count(*) from audit_events") == events + 1
    other = await db.fetch("select redacted from audit_events where subject_id = $1", OTHER)
    assert other
    assert not any(row["redacted"] for row in other)
    await assert_clean(db)
    result = await run_cli("audit", "verify", env={"CONSENT_DATABASE_URL": database_url})
    assert result.code == 0, result.stderr


async def test_concurrent_appends_keep_one_chain(svc: Service, db: asyncpg.Connection) -> None:
    api = bearer(await make_api_key(db))
    birth = birth_date_years_ago(svc.clock)

    async def create(n: int) -> int:
        response = await svc.client.post(
            "/v1/consent-requests",
            json={
                "subject_id": f"child-audit-many-{n}",
                "birth_date": birth,
                "country": "SI",
                "guardian_email": f"audit.many.{n}@example.com",
                "purposes": ["tutoring"],
            },
            headers=api,
        )
        return response.status_code

    assert await asyncio.gather(*(create(n) for n in range(30))) == [201] * 30
    assert await assert_clean(db) == 30
