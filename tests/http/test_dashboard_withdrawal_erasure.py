"""Withdrawing a whole consent from the guardian dashboard erases and informs as the consent's
withdrawal link does: with ``CONSENT_WITHDRAWAL_ERASES`` (the default) the withdrawal erases and
both pages say so; without it the guardian may tick the same opt-in erasure.

Real PostgreSQL, the real SMTP server (the mail catcher), the app over HTTP.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from tests.support.dashboard import granted_consent, sign_in_dashboard, sign_in_path
from tests.support.flows import check
from tests.support.guardian_client import csrf_token
from tests.support.service import Service

PARENT = "erasing.parent@example.com"
KEEP = {"CONSENT_WITHDRAWAL_ERASES": "false"}
ERASES_TOO = "we delete your email address and the other personal data we hold for this consent"
ERASE_BOX = 'name="erase" value="yes"'


async def _ask_to_withdraw(
    svc: Service, api: dict[str, str], mailbox: Any, subject: str, hint: str
) -> tuple[str, Any]:
    """A consent of PARENT, signed in; the confirm step for its required purpose."""
    await granted_consent(svc, api, mailbox, subject, PARENT, hint)
    consent = (await check(svc.client, api, subject))["consent_id"]
    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, PARENT))
    board = await svc.client.get("/guardian/dashboard")
    partial = await svc.client.post(
        "/guardian/dashboard/withdraw",
        data={"consent": consent, "purpose": "newsletter", "_csrf_token": csrf_token(board.text)},
    )
    assert partial.status_code == 200, partial.text
    # an optional purpose leaves the consent live: nothing about erasure is asked or said
    assert ERASE_BOX not in partial.text
    assert ERASES_TOO not in partial.text
    ask = await svc.client.post(
        "/guardian/dashboard/withdraw",
        data={"consent": consent, "purpose": "tutoring", "_csrf_token": csrf_token(board.text)},
    )
    assert ask.status_code == 200, ask.text
    return consent, ask


async def _request_row(db: asyncpg.Connection, consent: str) -> Any:
    return await db.fetchrow(
        "select r.guardian_email_enc, r.guardian_email_hash from consent_requests r "
        "join consents c on c.request_id = r.id where c.id = $1",
        uuid.UUID(consent),
    )


async def test_with_erasure_on_withdrawal_the_dashboard_erases_and_says_so(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    consent, ask = await _ask_to_withdraw(svc, api, mailbox, "erase-default", "erin")
    assert ERASES_TOO in ask.text
    assert "app to delete your child" in ask.text
    assert ERASE_BOX not in ask.text
    done = await svc.client.post(
        "/guardian/dashboard/withdraw",
        data={
            "consent": consent,
            "purpose": "tutoring",
            "confirm": "yes",
            "_csrf_token": csrf_token(ask.text),
        },
    )
    assert done.status_code == 200, done.text
    assert "Your consent has been withdrawn" in done.text
    assert "are being deleted" in done.text
    assert "app has been told to delete your child" in done.text
    assert (await check(svc.client, api, "erase-default"))["status"] == "withdrawn"
    # the address goes once the confirmation is sent, as after the link's withdrawal
    await svc.worker.deliver_due()
    row = await _request_row(db, consent)
    assert (row["guardian_email_enc"], row["guardian_email_hash"]) == (None, None)


@pytest.mark.parametrize("svc_env", [KEEP], ids=["withdrawal-keeps-data"])
async def test_without_it_the_dashboard_offers_the_opt_in_erasure(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    consent, ask = await _ask_to_withdraw(svc, api, mailbox, "erase-opt-in", "otto")
    assert ERASE_BOX in ask.text
    assert "Also delete my child" in ask.text
    assert ERASES_TOO not in ask.text
    done = await svc.client.post(
        "/guardian/dashboard/withdraw",
        data={
            "consent": consent,
            "purpose": "tutoring",
            "confirm": "yes",
            "erase": "yes",
            "_csrf_token": csrf_token(ask.text),
        },
    )
    assert done.status_code == 200, done.text
    assert "data and your email address have been deleted" in done.text
    assert (await check(svc.client, api, "erase-opt-in"))["status"] == "none"
    assert await db.fetchval("select count(*) from consents where id = $1", uuid.UUID(consent)) == 0


@pytest.mark.parametrize("svc_env", [KEEP], ids=["withdrawal-keeps-data"])
async def test_without_it_and_unticked_the_data_stays_and_the_page_says_how_to_ask(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    consent, ask = await _ask_to_withdraw(svc, api, mailbox, "erase-kept", "kira")
    done = await svc.client.post(
        "/guardian/dashboard/withdraw",
        data={
            "consent": consent,
            "purpose": "tutoring",
            "confirm": "yes",
            "_csrf_token": csrf_token(ask.text),
        },
    )
    assert done.status_code == 200, done.text
    assert "reply to that email" in done.text
    assert "have been deleted" not in done.text
    assert "are being deleted" not in done.text
    assert (await check(svc.client, api, "erase-kept"))["status"] == "withdrawn"
    await svc.worker.deliver_due()
    row = await _request_row(db, consent)
    assert row["guardian_email_enc"] is not None
