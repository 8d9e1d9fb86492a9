"""The guardian's side after a consent, end to end: the emails about a revocation and a
partial withdrawal name the child's account, a dashboard withdrawal's email says to sign in
(a link's says to use the link), the dashboard marks the required purpose and shows until when
the consent is valid, the sign-in limit page does not assume a link was received, and the
handoff QR code's title is in the request's language.

Real PostgreSQL, the real SMTP server (the mail catcher), the app over HTTP.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from typing import Any

import asyncpg

from service.consent import policy
from service.i18n import format_datetime, translator
from service.security.personal_data import normalize_email
from tests.support.dashboard import ask_for_link, granted_consent, sign_in_dashboard, sign_in_path
from tests.support.dates import birth_date_years_ago
from tests.support.flows import check
from tests.support.guardian_client import csrf_token
from tests.support.service import Service

PARENT = "walking.parent@example.com"
CONCERNS = "This consent concerns the account “{}”."
SIGN_IN_AT = (
    "You can withdraw your consent for the remaining purposes at any time by signing in at:"
)
SAME_LINK = "with the same link:"
SVG = "{http://www.w3.org/2000/svg}"


def words(document: str) -> str:
    """The words of a text or an HTML document, tags dropped, entities decoded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", document)).split())


async def _only_email(svc: Service, mailbox: Any) -> Any:
    assert await svc.worker.deliver_due() == 1
    [message] = mailbox.to(normalize_email(PARENT))
    return message


async def test_the_revocation_email_names_the_childs_account(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await granted_consent(svc, api, mailbox, "walk-revoked", PARENT, "nika_3a")
    consent = (await check(svc.client, api, "walk-revoked"))["consent_id"]

    revoked = await svc.client.post(
        f"/v1/consents/{consent}/revoke",
        json={"reason": "duplicate account (ticket 7)"},
        headers=svc.staff("support"),
    )

    assert revoked.status_code == 200, revoked.text
    message = await _only_email(svc, mailbox)
    assert CONCERNS.format("nika_3a") in words(message.text)
    assert CONCERNS.format("nika_3a") in words(message.html)


async def test_a_dashboard_withdrawal_email_names_the_child_and_says_to_sign_in(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await granted_consent(svc, api, mailbox, "walk-dash", PARENT, "tim")
    consent = (await check(svc.client, api, "walk-dash"))["consent_id"]
    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, PARENT))
    board = await svc.client.get("/guardian/dashboard")

    done = await svc.client.post(
        "/guardian/dashboard/withdraw",
        data={
            "consent": consent,
            "purpose": "newsletter",
            "confirm": "yes",
            "_csrf_token": csrf_token(board.text),
        },
    )

    assert done.status_code == 200, done.text
    message = await _only_email(svc, mailbox)
    dashboard = svc.runtime.link("/guardian")
    for text in (words(message.text), words(message.html)):
        assert CONCERNS.format("tim") in text
        assert f"{SIGN_IN_AT} {dashboard}" in text
        assert SAME_LINK not in text
        assert "/guardian/withdraw/" not in text


async def test_a_withdrawal_links_email_names_the_child_and_keeps_the_link(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    path = await granted_consent(svc, api, mailbox, "walk-link", PARENT, "ela")
    page = await svc.client.get(path)
    assert page.status_code == 200, page.text

    done = await svc.client.post(
        path,
        data={"confirm": "yes", "purposes": ["newsletter"], "_csrf_token": csrf_token(page.text)},
    )

    assert done.status_code == 200, done.text
    message = await _only_email(svc, mailbox)
    for text in (words(message.text), words(message.html)):
        assert CONCERNS.format("ela") in text
        assert SAME_LINK in text
        assert SIGN_IN_AT not in text
    assert svc.runtime.link(path) in message.text


async def test_the_dashboard_marks_the_required_purpose_and_shows_the_consents_end(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await granted_consent(svc, api, mailbox, "walk-board", PARENT, "vid")
    await granted_consent(svc, api, mailbox, "walk-board-2", PARENT, "zala")
    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, PARENT))

    board = await svc.client.get("/guardian/dashboard")

    assert board.status_code == 200, board.text
    text = words(board.text)
    # tutoring, the required purpose, once per child
    assert board.text.count('<span class="badge badge-required">Required</span>') == 2
    assert text.count("withdrawing it ends this consent altogether") == 2
    # rectification changes one consent's address, so the button says which
    assert text.count("Change the email address for this child's consent") == 2
    assert "Change your email address" not in text
    row = await db.fetchrow(
        "select expires_at, jurisdiction from consents where subject_id = $1", "walk-board"
    )
    assert row is not None
    shown = format_datetime(row["expires_at"], "en", policy.display_timezone(row["jurisdiction"]))
    assert f"Valid until: {shown}" in text


async def test_the_sign_in_limit_page_does_not_speak_of_a_received_link(svc: Service) -> None:
    answers = [await ask_for_link(svc, f"never.asked{i}@example.com") for i in range(11)]

    assert answers[-1].status_code == 429
    text = words(answers[-1].text)
    assert "Too many sign-in links have been asked for from this network" in text
    assert "already received" not in text


async def test_the_qr_codes_title_is_in_the_requests_language(
    svc: Service, api: dict[str, str]
) -> None:
    for locale in ("sl", "de", "en"):
        created = await svc.client.post(
            "/v1/consent-requests",
            json={
                "subject_id": f"walk-qr-{locale}",
                "birth_date": birth_date_years_ago(svc.clock),
                "country": "SI",
                "purposes": ["tutoring"],
                "locale": locale,
            },
            headers=api,
        )
        assert created.status_code == 201, created.text
        answer = await svc.client.get(
            f"/v1/consent-requests/{created.json()['id']}/handoff.svg", headers=api
        )
        assert answer.status_code == 200, answer.text
        root = ET.fromstring(answer.content)  # noqa: S314 - our own answer, in a test
        title = root.find(f"{SVG}title")
        assert title is not None
        assert title.text == translator(locale).gettext("QR code")
    assert translator("sl").gettext("QR code") == "QR koda"
