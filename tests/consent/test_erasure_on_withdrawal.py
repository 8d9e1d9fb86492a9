"""Erasure on withdrawal (``CONSENT_WITHDRAWAL_ERASES``, on by default): once the guardian's
confirmation is sent, a full dump of the database holds neither the guardian's address nor the
child's birth date, and the subject id only in the evidence the README lists; the app is asked
to delete the child's data by a signed webhook; check still answers ``withdrawn``; the audit
chain verifies. After the retention period not even the subject id or the guardian reference
is left in clear."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest

from service.clock import ManualClock
from service.security.personal_data import normalize_email
from tests.support.cli import run_cli
from tests.support.flows import check, granted_consent, open_request, withdraw_via_form
from tests.support.guardian_client import csrf_token, open_and_submit
from tests.support.service import Service
from tests.support.webhooks import WebhookReceiver, verified_payload, webhook_env

GUARDIAN = "Withdraw.And.Erase@Example.COM"
RECIPIENT = normalize_email(GUARDIAN)
SUBJECT = "child-erase-on-withdrawal-7"
# Evidence the README lists as kept after a withdrawal: these tables' rows carry the subject id.
EVIDENCE_TABLES = {"consents", "consent_requests", "audit_events"}
DAY = timedelta(days=1)
COPY_LINE = re.compile(r"^COPY public\.(\w+) ")


def birth_date(clock: ManualClock) -> date:
    """A ten-year-old's birthday that is no other date the service stores (not the 1st)."""
    today = clock.now().date()
    return date(today.year - 10, 2, 13)


@pytest.fixture
def svc_env(receiver: WebhookReceiver) -> dict[str, str]:
    return webhook_env(receiver)


def pg_dump_program() -> str:
    found = shutil.which("pg_dump")
    if found:
        return found
    return "/usr/lib/postgresql/15/bin/pg_dump"


async def pg_dump(database_url: str) -> str:
    """The whole database as ``pg_dump`` writes it (schema and data)."""
    process = await asyncio.create_subprocess_exec(
        pg_dump_program(),
        "--no-owner",
        "--dbname",
        database_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


def tables_mentioning(dump: str, needle: str) -> set[str]:
    """The tables whose data rows in ``dump`` contain ``needle`` (any letter case)."""
    needle = needle.lower()
    table = None
    found = set()
    for line in dump.splitlines():
        start = COPY_LINE.match(line)
        if start:
            table = start.group(1)
            continue
        if line == "\\.":
            table = None
            continue
        if needle in line.lower():
            found.add(table or "(outside table data)")
    return found


async def deliver_everything(svc: Service) -> None:
    while await svc.worker.deliver_due():
        pass


async def audit_verifies(database_url: str) -> None:
    verified = await run_cli("audit", "verify", database_url=database_url)
    assert verified.code == 0, verified.stdout + verified.stderr


async def withdrawn_and_delivered(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock
) -> Any:
    granted = await granted_consent(
        svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN, birth_date=str(birth_date(clock))
    )
    await deliver_everything(svc)
    clock.advance(DAY)
    page = await withdraw_via_form(svc.client, granted.withdraw_path)
    assert page.status_code == 200, page.text
    assert "have been told to delete" in page.text or "has been told to delete" in page.text
    await deliver_everything(svc)
    return granted


async def test_withdrawal_erases_everything_but_the_evidence(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    database_url: str,
    receiver: WebhookReceiver,
) -> None:
    granted = await withdrawn_and_delivered(svc, api, mailbox, clock)

    # the confirmation reached the guardian, saying what happened to the data
    confirmation = mailbox.to(RECIPIENT)[-1]
    assert "withdrawn" in confirmation.subject.lower()
    assert "We have deleted your email address" in confirmation.text
    assert "app has been told to delete your child's data too" in confirmation.text

    dump = await pg_dump(database_url)
    assert RECIPIENT.lower() not in dump.lower()
    assert "withdraw.and.erase" not in dump.lower()
    assert birth_date(clock).isoformat() not in dump
    assert tables_mentioning(dump, SUBJECT) <= EVIDENCE_TABLES, tables_mentioning(dump, SUBJECT)

    # what the evidence is: the records without address, lookup hash, token or birth date
    request = await db.fetchrow(
        "select * from consent_requests where id = $1", uuid.UUID(granted.request_id)
    )
    assert request["guardian_email_enc"] is None
    assert request["guardian_email_hash"] is None
    assert request["birth_date"] is None
    assert request["guardian_ref"].startswith("g_")
    consent = await db.fetchrow(
        "select * from consents where id = $1", uuid.UUID(granted.consent_id)
    )
    assert consent["status"] == "withdrawn"
    assert consent["token"] is None
    assert consent["erased_at"] == clock.now()
    # the links' hashes stay until the purge: a link opened again says what happened
    again = await svc.client.get(granted.withdraw_path)
    assert again.status_code == 410
    assert "This consent is no longer active" in again.text
    assert await db.fetchval("select count(*) from idempotency_keys") == 0

    # every message is finished and keeps neither payload nor subject id
    messages = await db.fetch("select * from outbox")
    assert messages
    for message in messages:
        assert message["status"] == "sent", message
        assert message["subject_id"] is None, message["topic"]
        assert message["payload"] is None
        assert message["payload_enc"] is None

    [request_for_erasure] = receiver.of_type("subject.erasure_requested")
    payload = verified_payload(request_for_erasure)
    assert payload["data"] == {
        "subject_id": SUBJECT,
        "reason": "withdrawal",
        "request_id": granted.request_id,
        "consent_id": granted.consent_id,
    }
    assert [d.json()["data"]["status"] for d in receiver.of_type("consent.withdrawn")] == [
        "withdrawn"
    ]

    answer = await check(svc.client, api, SUBJECT)
    assert answer["status"] == "withdrawn"
    assert answer["allowed"] is False
    actions = [
        row["action"]
        for row in await db.fetch(
            "select action from audit_events where consent_id = $1 order by id",
            uuid.UUID(granted.consent_id),
        )
    ]
    assert actions[-2:] == ["consent.withdrawn", "consent.erased"]
    await audit_verifies(database_url)


async def test_an_undeliverable_confirmation_keeps_no_address_once_dead(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    database_url: str,
) -> None:
    granted = await granted_consent(
        svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN, birth_date=str(birth_date(clock))
    )
    await deliver_everything(svc)
    page = await withdraw_via_form(svc.client, granted.withdraw_path)
    assert page.status_code == 200, page.text
    # the confirmation is queued with its own encrypted copy of the address: the request's
    # copy is already gone
    request = await db.fetchrow(
        "select guardian_email_enc from consent_requests where id = $1",
        uuid.UUID(granted.request_id),
    )
    assert request["guardian_email_enc"] is None
    email = await db.fetchrow(
        "select * from outbox where topic = 'consent_withdrawn' and status = 'pending'"
    )
    assert email["payload_enc"] is not None
    assert email["scrub_when_done"]
    # the mail system refuses it until the outbox gives up
    await db.execute("update outbox set attempts = 100 where id = $1", email["id"])
    await db.execute(
        "update outbox set payload_enc = $2 where id = $1", email["id"], b"\x01unreadable"
    )
    await svc.worker.deliver_due()
    dead = await db.fetchrow("select * from outbox where id = $1", email["id"])
    assert dead["status"] == "dead"
    assert dead["payload_enc"] is None
    assert dead["subject_id"] is None


async def test_nothing_outlives_retention(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    database_url: str,
) -> None:
    granted = await withdrawn_and_delivered(svc, api, mailbox, clock)
    guardian_ref = await db.fetchval(
        "select guardian_ref from consents where id = $1", uuid.UUID(granted.consent_id)
    )
    clock.advance(90 * DAY + timedelta(seconds=1))
    swept = await svc.worker.sweep()
    assert swept["purged_consents"] == 1

    dump = await pg_dump(database_url)
    assert tables_mentioning(dump, SUBJECT) == set()
    assert tables_mentioning(dump, guardian_ref) == set()
    consent = await db.fetchrow(
        "select * from consents where id = $1", uuid.UUID(granted.consent_id)
    )
    request = await db.fetchrow(
        "select * from consent_requests where id = $1", uuid.UUID(granted.request_id)
    )
    for record in (consent, request):
        # a keyed pseudonym, the same for both records of the child and of the guardian
        assert record["subject_id"].startswith("#")
        assert record["guardian_ref"].startswith("#")
    assert consent["subject_id"] == request["subject_id"]
    assert consent["guardian_ref"] == request["guardian_ref"]
    assert consent["subject_id"] != consent["guardian_ref"]
    assert consent["status"] == "withdrawn"
    events = await db.fetch(
        "select * from audit_events where consent_id = $1 or request_id = $2",
        uuid.UUID(granted.consent_id),
        uuid.UUID(granted.request_id),
    )
    assert events
    assert all(e["subject_id"] is None for e in events)
    # check still knows that this child's consent was withdrawn
    assert (await check(svc.client, api, SUBJECT))["status"] == "withdrawn"
    assert (await check(svc.client, api, "child-never-seen"))["status"] == "none"
    await audit_verifies(database_url)

    # staff erasure still reaches the pseudonymous records
    erased = await svc.client.delete(f"/v1/subjects/{SUBJECT}", headers=svc.staff("admin"))
    assert erased.status_code == 200, erased.text
    assert erased.json()["consents"] == 1
    assert (await check(svc.client, api, SUBJECT))["status"] == "none"
    await audit_verifies(database_url)


async def test_a_denied_request_keeps_no_subject_id_after_retention(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    database_url: str,
) -> None:
    _, link = await open_request(
        svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN, birth_date=str(birth_date(clock))
    )
    refused = await open_and_submit(svc.client, link, {"decision": "deny"})
    assert refused.status_code == 200, refused.text
    await deliver_everything(svc)
    assert (await check(svc.client, api, SUBJECT))["status"] == "denied"
    clock.advance(30 * DAY + timedelta(seconds=1))
    assert (await svc.worker.sweep())["purged_requests"] == 1

    dump = await pg_dump(database_url)
    assert tables_mentioning(dump, SUBJECT) == set()
    assert (await check(svc.client, api, SUBJECT))["status"] == "denied"
    await audit_verifies(database_url)


@pytest.mark.parametrize(
    "svc_env", [{"CONSENT_WITHDRAWAL_ERASES": "false"}], ids=["withdrawal-keeps-data"]
)
async def test_without_erasure_on_withdrawal_the_guardian_still_chooses(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    granted = await granted_consent(
        svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN, birth_date=str(birth_date(clock))
    )
    form = await svc.client.get(granted.withdraw_path)
    assert 'name="erase"' in form.text
    page = await withdraw_via_form(svc.client, granted.withdraw_path)
    assert page.status_code == 200, page.text
    assert "told to delete" not in page.text
    await deliver_everything(svc)
    assert "If you also want your child's data deleted" in mailbox.to(RECIPIENT)[-1].text
    # nothing erased: the address and the tokens stay until retention ends
    request = await db.fetchrow(
        "select * from consent_requests where id = $1", uuid.UUID(granted.request_id)
    )
    assert request["guardian_email_enc"] is not None
    consent = await db.fetchrow(
        "select * from consents where id = $1", uuid.UUID(granted.consent_id)
    )
    assert consent["token"] is not None
    assert consent["erased_at"] is None
    assert await db.fetchval("select count(*) from outbox where subject_id = $1", SUBJECT) > 0
    assert (await check(svc.client, api, SUBJECT))["status"] == "withdrawn"


async def test_with_erasure_on_withdrawal_the_form_has_no_erasure_choice(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    granted = await granted_consent(
        svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN, birth_date=str(birth_date(clock))
    )
    form = await svc.client.get(granted.withdraw_path)
    assert 'name="erase"' not in form.text
    assert "app to delete your child&#39;s data" in form.text
    # withdrawing some purposes erases nothing and asks the app for nothing
    token = csrf_token(form.text)
    partial = await svc.client.post(
        granted.withdraw_path,
        data={"confirm": "yes", "purposes": ["newsletter"], "erase": "yes", "_csrf_token": token},
    )
    assert partial.status_code == 200, partial.text
    await deliver_everything(svc)
    assert receiver.of_type("consent.updated")
    assert receiver.of_type("subject.erasure_requested") == []
    assert (await check(svc.client, api, SUBJECT))["status"] == "granted"


async def test_a_delivered_subject_erased_webhook_keeps_no_subject_id(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    receiver: WebhookReceiver,
) -> None:
    await granted_consent(
        svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN, birth_date=str(birth_date(clock))
    )
    # the consent.granted webhook is still queued when staff erase the subject
    erased = await svc.client.delete(f"/v1/subjects/{SUBJECT}", headers=svc.staff("admin"))
    assert erased.status_code == 200, erased.text
    await deliver_everything(svc)
    [delivery] = receiver.of_type("subject.erased")
    assert verified_payload(delivery)["data"] == {"subject_id": SUBJECT, "status": "erased"}
    assert receiver.of_type("consent.granted")
    rows = await db.fetch("select * from outbox where kind = 'webhook'")
    assert {row["topic"] for row in rows} >= {"subject.erased", "consent.granted"}
    for row in rows:
        assert row["status"] == "sent"
        assert row["subject_id"] is None, row["topic"]
        assert row["payload"] is None
    assert await db.fetchval("select count(*) from outbox where subject_id = $1", SUBJECT) == 0
