"""Re-consent after a notice change: `consent-service reconsent` asks the guardians of live
consents on an older notice again, once; the old consent lasts until the guardian decides or
the grace period ends. Real PostgreSQL, SMTP and webhook receiver; time moves only through the
ManualClock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg

from service.clock import ManualClock
from service.consent.endings import RECONSENT_REFUSED_REASON
from service.consent.reconsent import open_reconsents
from service.db.consents import RECONSENT_LAPSE_REASON
from service.i18n import translator
from tests.support.cli import run_cli
from tests.support.flows import GRANT_ALL, check, granted_consent
from tests.support.guardian_client import guardian_link, open_and_submit
from tests.support.service import Service, start_service
from tests.support.webhooks import WEBHOOK_SECRET, WebhookReceiver, webhook_receiver

OLD_GUARDIAN = "old.notice@example.com"
NEW_GUARDIAN = "new.notice@example.com"
CHANGED = {
    "CONSENT_OPERATOR_ADDRESS": "Slovenska cesta 1, 1000 Ljubljana, Slovenia",
    "CONSENT_RECONSENT_GRACE_DAYS": "10",
}


@asynccontextmanager
async def before_and_after(
    base_env: dict[str, str], clock: ManualClock, api: dict[str, str], mailbox: Any
) -> AsyncIterator[tuple[Service, str, WebhookReceiver]]:
    """A consent granted under the first notice (child-old), then the service with a changed
    notice, under which child-new consents; yields that service and child-old's consent id."""
    async with webhook_receiver() as receiver:
        hooks = {"CONSENT_WEBHOOK_URL": receiver.url, "CONSENT_WEBHOOK_SECRET": WEBHOOK_SECRET}
        async with start_service(base_env, clock, hooks) as before:
            old = await granted_consent(
                before, api, mailbox, subject_id="child-old", email=OLD_GUARDIAN
            )
        async with start_service(base_env, clock, {**hooks, **CHANGED}) as after:
            await granted_consent(after, api, mailbox, subject_id="child-new", email=NEW_GUARDIAN)
            await after.worker.deliver_due()
            mailbox.clear()
            yield after, old.consent_id, receiver


async def reconsent_email(svc: Service, mailbox: Any) -> Any:
    await svc.worker.deliver_due()
    [message] = mailbox.to(OLD_GUARDIAN)
    return message


async def test_reconsent_asks_only_consents_on_an_older_notice_and_only_once(
    base_env: dict[str, str],
    clock: ManualClock,
    api: dict[str, str],
    mailbox: Any,
    db: asyncpg.Connection,
) -> None:
    async with before_and_after(base_env, clock, api, mailbox) as (svc, old_id, _):
        env = {**base_env, **CHANGED}

        dry = await run_cli("reconsent", "--dry-run", env=env)
        assert dry.code == 0, dry.stderr
        assert dry.stdout.startswith("would open 1 re-consent requests")
        assert (
            await db.fetchval("select count(*) from consent_requests where status = 'pending'") == 0
        )

        first = await run_cli("reconsent", env=env)
        assert first.code == 0, first.stderr
        assert first.stdout.startswith("opened 1 re-consent requests")
        again = await run_cli("reconsent", env=env)
        assert again.stdout.startswith("opened 0 re-consent requests")
        assert "1 with a request pending already" in again.stdout
        summary = await open_reconsents(db, svc.runtime)
        assert (summary.opened, summary.already_pending) == (0, 1)

        [pending] = await db.fetch(
            "select subject_id, reconsent_of, policy_version, purposes from consent_requests "
            "where status = 'pending'"
        )
        assert pending["subject_id"] == "child-old"
        assert pending["reconsent_of"] == uuid.UUID(old_id)
        assert pending["policy_version"] == svc.runtime.notice("en").version
        assert pending["purposes"] == ["tutoring", "progress_reports", "newsletter"]

        clock.advance(timedelta(minutes=5))  # the command ran on the system's clock, a bit later
        message = await reconsent_email(svc, mailbox)
        assert CHANGED["CONSENT_OPERATOR_ADDRESS"] in message.text
        assert "so we ask for your consent again" in message.text
        # Written to a guardian who consented before: no first-signup story, no false promise
        # that the address is deleted when the link expires (it stays with the live consent).
        assert "A child has signed up" not in message.text
        assert "we will delete your email address" not in message.text
        assert "we will delete your email address" not in message.html
        assert mailbox.to(NEW_GUARDIAN) == []
        # Still live meanwhile, now ending at the grace deadline at the latest.
        assert (await check(svc.client, api, "child-old"))["status"] == "granted"
        ends = await db.fetchval("select expires_at from consents where id = $1::uuid", old_id)
        assert ends <= clock.now() + timedelta(days=10)


async def test_without_an_answer_the_old_consent_ends_with_the_grace_period(
    base_env: dict[str, str],
    clock: ManualClock,
    api: dict[str, str],
    mailbox: Any,
    db: asyncpg.Connection,
) -> None:
    async with before_and_after(base_env, clock, api, mailbox) as (svc, old_id, receiver):
        assert (await open_reconsents(db, svc.runtime)).opened == 1
        await reconsent_email(svc, mailbox)

        clock.advance(timedelta(days=10) - timedelta(seconds=1))
        assert (await check(svc.client, api, "child-old"))["status"] == "granted"

        clock.advance(timedelta(seconds=1))
        answer = await check(svc.client, api, "child-old")
        assert (answer["status"], answer["allowed"]) == ("expired", False)
        swept = await svc.worker.sweep()
        assert swept["lapsed_consents"] == 1
        ended = await db.fetchrow(
            "select status, end_reason from consents where id = $1::uuid", old_id
        )
        assert (ended["status"], ended["end_reason"]) == ("expired", RECONSENT_LAPSE_REASON)
        await svc.worker.deliver_due()
        expired = [d.json()["data"] for d in receiver.of_type("consent.expired")]
        assert {"consent_id": old_id, "status": "expired"}.items() <= next(
            e for e in expired if e["consent_id"] == old_id
        ).items()
        assert (await check(svc.client, api, "child-new"))["status"] == "granted"


async def test_a_grant_of_the_reconsent_supersedes_the_old_consent(
    base_env: dict[str, str],
    clock: ManualClock,
    api: dict[str, str],
    mailbox: Any,
    db: asyncpg.Connection,
) -> None:
    async with before_and_after(base_env, clock, api, mailbox) as (svc, old_id, _):
        await open_reconsents(db, svc.runtime)
        message = await reconsent_email(svc, mailbox)

        result = await open_and_submit(svc.client, guardian_link(message.text), GRANT_ALL)

        assert result.status_code == 200, result.text
        old = await db.fetchval("select status from consents where id = $1::uuid", old_id)
        assert old == "superseded"
        answer = await check(svc.client, api, "child-old")
        assert answer["status"] == "granted"
        assert answer["consent_id"] != old_id
        version = await db.fetchval(
            "select policy_version from consents where id = $1::uuid", answer["consent_id"]
        )
        assert version == svc.runtime.notice("en").version
        assert (await open_reconsents(db, svc.runtime)).outdated == 0


async def test_refusing_the_reconsent_withdraws_the_old_consent_at_once(
    base_env: dict[str, str],
    clock: ManualClock,
    api: dict[str, str],
    mailbox: Any,
    db: asyncpg.Connection,
) -> None:
    async with before_and_after(base_env, clock, api, mailbox) as (svc, old_id, receiver):
        await open_reconsents(db, svc.runtime)
        message = await reconsent_email(svc, mailbox)

        result = await open_and_submit(
            svc.client, guardian_link(message.text), {"decision": "deny"}
        )

        assert result.status_code == 200, result.text
        ended = await db.fetchrow(
            "select status, end_reason from consents where id = $1::uuid", old_id
        )
        assert (ended["status"], ended["end_reason"]) == ("withdrawn", RECONSENT_REFUSED_REASON)
        answer = await check(svc.client, api, "child-old")
        assert (answer["status"], answer["allowed"]) == ("withdrawn", False)
        await svc.worker.deliver_due()
        assert [d.json()["data"]["consent_id"] for d in receiver.of_type("consent.withdrawn")] == [
            old_id
        ]
        told = mailbox.to(OLD_GUARDIAN)[-1]  # after the re-consent request itself
        withdrawn = translator("en")(
            "%(operator)s: your consent has been withdrawn", operator=svc.settings.operator_name
        )
        assert told.subject == withdrawn
