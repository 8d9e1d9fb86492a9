"""The guardian dashboard decides ownership by the exact address its sign-in link went to (a
``+tag`` variant is another guardian), its consent links live only as long as the session that
issued them, and a refused form on such a link counts against the consent like one on its
withdrawal link.

Real PostgreSQL, the real SMTP server (the mail catcher), the app over HTTP; time moves only
through the ManualClock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from service.consent import endings
from service.consent.dashboard import SESSION_IDLE_TIMEOUT
from tests.support.dashboard import ask_for_link, granted_consent, sign_in_dashboard, sign_in_path
from tests.support.flows import check
from tests.support.guardian_client import csrf_token
from tests.support.service import Service

PLAIN = "tagged.parent@example.com"
TAGGED = "tagged.parent+x@example.com"


async def _consent_link(svc: Service, consent: str, page: str = "address") -> str:
    board = await svc.client.get("/guardian/dashboard")
    assert board.status_code == 200, board.text
    moved = await svc.client.post(
        "/guardian/dashboard/manage",
        data={"consent": consent, "page": page, "_csrf_token": csrf_token(board.text)},
    )
    assert moved.status_code == 303, moved.text
    location: str = moved.headers["location"]
    assert location.startswith(f"/guardian/{page}/")
    return location


async def test_a_tagged_address_sees_and_acts_on_only_its_own_children(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await granted_consent(svc, api, mailbox, "tag-plain-child", PLAIN, "plain_kid")
    await granted_consent(svc, api, mailbox, "tag-tagged-child", TAGGED, "tagged_kid")
    plain_consent = (await check(svc.client, api, "tag-plain-child"))["consent_id"]

    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, TAGGED))
    board = await svc.client.get("/guardian/dashboard")
    assert board.status_code == 200, board.text
    assert "tagged_kid" in board.text
    assert "plain_kid" not in board.text
    assert plain_consent not in board.text
    token = csrf_token(board.text)
    for form in (
        {"purpose": "newsletter", "confirm": "yes"},
        {"purpose": "tutoring", "confirm": "yes"},
    ):
        refused = await svc.client.post(
            "/guardian/dashboard/withdraw",
            data={"consent": plain_consent, **form, "_csrf_token": token},
        )
        assert refused.status_code == 404, refused.text
        assert "plain_kid" not in refused.text
    for page in ("address", "rights"):
        manage = await svc.client.post(
            "/guardian/dashboard/manage",
            data={"consent": plain_consent, "page": page, "_csrf_token": token},
        )
        assert manage.status_code == 404, manage.text
    answer = await check(svc.client, api, "tag-plain-child", "newsletter")
    assert (answer["status"], answer["allowed"]) == ("granted", True)

    # and the untagged address sees its own child only
    signed_out = await svc.client.post("/guardian/sign-out", data={"_csrf_token": token})
    assert signed_out.status_code == 200
    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, PLAIN))
    board = await svc.client.get("/guardian/dashboard")
    assert "plain_kid" in board.text
    assert "tagged_kid" not in board.text


async def test_a_tagged_address_without_a_consent_of_its_own_gets_no_link(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await granted_consent(svc, api, mailbox, "tag-only-plain", PLAIN, "only_plain")
    answer = await ask_for_link(svc, TAGGED)
    assert answer.status_code == 200
    assert "If this address has given consent for a child" in answer.text
    assert await svc.worker.deliver_due() == 0
    assert mailbox.to(TAGGED) == []


async def test_the_case_of_the_local_part_does_not_make_another_guardian(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await granted_consent(svc, api, mailbox, "tag-case-child", PLAIN, "case_kid")
    shouted = "Tagged.Parent@example.com"
    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, shouted))
    board = await svc.client.get("/guardian/dashboard")
    assert "case_kid" in board.text


async def test_a_consent_link_ends_with_its_session_on_sign_out(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await granted_consent(svc, api, mailbox, "links-sign-out", PLAIN, "signout_kid")
    consent = (await check(svc.client, api, "links-sign-out"))["consent_id"]
    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, PLAIN))
    address = await _consent_link(svc, consent, "address")
    rights = await _consent_link(svc, consent, "rights")
    assert (await svc.client.get(address)).status_code == 200
    assert (await svc.client.get(rights)).status_code == 200
    board = await svc.client.get("/guardian/dashboard")
    out = await svc.client.post("/guardian/sign-out", data={"_csrf_token": csrf_token(board.text)})
    assert out.status_code == 200
    assert await db.fetchval("select count(*) from guardian_consent_links") == 0
    unknown = await svc.client.get("/guardian/address/" + "A" * 43)
    for location in (address, rights):
        refused = await svc.client.get(location)
        assert refused.status_code == unknown.status_code == 404
        assert refused.headers["content-type"].startswith("text/html")
        assert "signout_kid" not in refused.text
    # the consent itself is untouched
    assert (await check(svc.client, api, "links-sign-out", "newsletter"))["allowed"] is True


async def test_a_consent_link_ends_with_its_session_when_idle(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await granted_consent(svc, api, mailbox, "links-idle", PLAIN, "idle_kid")
    consent = (await check(svc.client, api, "links-idle"))["consent_id"]
    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, PLAIN))
    address = await _consent_link(svc, consent, "address")
    svc.clock.advance(SESSION_IDLE_TIMEOUT - timedelta(minutes=1))
    assert (await svc.client.get(address)).status_code == 200
    # opening the consent page does not keep the session alive; the dashboard does
    svc.clock.advance(timedelta(minutes=2))
    refused = await svc.client.get(address)
    assert refused.status_code == 404
    assert "idle_kid" not in refused.text


async def test_a_refused_form_on_a_consent_link_counts_as_a_strike(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await granted_consent(svc, api, mailbox, "links-strike", PLAIN, "strike_kid")
    consent = (await check(svc.client, api, "links-strike"))["consent_id"]
    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, PLAIN))
    address = await _consent_link(svc, consent, "address")
    refused = await svc.client.post(address, data={"email": "new.parent@example.com"})
    assert refused.status_code == 403
    count = await db.fetchval(
        "select withdraw_failed_submissions from consents where id = $1::uuid", consent
    )
    assert count == 1
    for _ in range(endings.MAX_FAILED_WITHDRAWALS - 1):
        await svc.client.post(address, data={"email": "new.parent@example.com"})
    locked = await db.fetchval(
        "select withdraw_locked_until from consents where id = $1::uuid", consent
    )
    assert locked is not None
    assert (await svc.client.get(address)).status_code == 429
