"""An address change confirmed while a re-consent request waits for the same guardian moves that
request to the new address too, so its grant is the same guardian's: the old consent is
superseded without a "replaced by another guardian" email, and the new confirmation reaches the
new address. Real PostgreSQL and SMTP; the ManualClock."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from service.clock import ManualClock
from service.consent.reconsent import open_reconsents
from tests.support.flows import GRANT_ALL, check, granted_consent
from tests.support.guardian_client import csrf_token, guardian_link, open_and_submit
from tests.support.service import start_service

OLD = "reconsent.old@example.com"
NEW = "reconsent.new@example.org"
CHANGED_NOTICE = {"CONSENT_OPERATOR_ADDRESS": "Slovenska cesta 1, 1000 Ljubljana, Slovenia"}
CONFIRM_PATH = re.compile(r"/guardian/address/confirm/[A-Za-z0-9_-]+")


async def test_a_waiting_reconsent_follows_the_confirmed_address(
    base_env: dict[str, str],
    clock: ManualClock,
    api: dict[str, str],
    mailbox: Any,
    db: asyncpg.Connection,
) -> None:
    async with start_service(base_env, clock) as before:
        old = await granted_consent(before, api, mailbox, subject_id="child-moved", email=OLD)
        await before.worker.deliver_due()
    async with start_service(base_env, clock, CHANGED_NOTICE) as svc:
        await open_reconsents(db, svc.runtime)
        await svc.worker.deliver_due()
        reconsent_link = guardian_link(mailbox.to(OLD)[-1].text)

        address_path = old.withdraw_path.replace("/guardian/withdraw/", "/guardian/address/")
        form = await svc.client.get(address_path)
        asked = await svc.client.post(
            address_path, data={"email": NEW, "_csrf_token": csrf_token(form.text)}
        )
        assert asked.status_code == 200, asked.text
        await svc.worker.deliver_due()
        match = CONFIRM_PATH.search(mailbox.to(NEW)[-1].text)
        assert match
        shown = await svc.client.get(match.group(0))
        confirmed = await svc.client.post(
            match.group(0), data={"_csrf_token": csrf_token(shown.text)}
        )
        assert confirmed.status_code == 200, confirmed.text

        refs = await db.fetch("select distinct guardian_ref from consent_requests")
        assert len(refs) == 1  # the consent's request and the waiting re-consent alike
        await svc.worker.deliver_due()
        [notice] = mailbox.to(OLD)[-1:]
        assert "your email address has been changed" in notice.subject
        mailbox.clear()
        granted = await open_and_submit(svc.client, reconsent_link, GRANT_ALL)
        assert granted.status_code == 200, granted.text
        await svc.worker.deliver_due()

        answer = await check(svc.client, api, "child-moved")
        assert answer["consent_id"] != old.consent_id
        statuses = await db.fetch("select status from consents order by granted_at")
        assert [row["status"] for row in statuses] == ["superseded", "granted"]
        assert (
            await db.fetchval("select count(*) from outbox where topic = 'consent_replaced'") == 0
        )
        assert mailbox.to(OLD) == []
        assert [m.subject for m in mailbox.to(NEW)] == [
            "Učilnica Tutoring: confirmation of your consent"
        ]
