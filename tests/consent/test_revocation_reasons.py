"""What the guardian reads when staff revoke: a preset reason in the request's language, a text
written for them as written, or a neutral sentence; never the internal reason or note. The note
stays in the audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from service.consent.revocation_reasons import PRESET_REASONS
from service.i18n import translator
from service.security.personal_data import normalize_email
from tests.support.dates import birth_date_years_ago
from tests.support.flows import create_request, grant_via_link
from tests.support.guardian_client import guardian_link
from tests.support.problems import assert_problem
from tests.support.service import Service

GUARDIAN = "Reasons.Parent@Example.com"
RECIPIENT = normalize_email(GUARDIAN)
REASON = "Internal: identity doubt raised by the school office (ticket 88)"
NOTE = "Spoke with the father on Tuesday; he was upset. Do not call before 9."


async def _granted(
    svc: Service, api: dict[str, str], mailbox: Any, subject: str, locale: str
) -> str:
    await create_request(
        svc.client,
        api,
        subject_id=subject,
        email=GUARDIAN,
        birth_date=birth_date_years_ago(svc.clock),
        locale=locale,
    )
    assert await svc.worker.deliver_due() >= 1
    link = guardian_link(mailbox.to(RECIPIENT)[-1].text)
    await grant_via_link(svc.client, link)
    consent = await svc.client.get(
        "/v1/consents/check", params={"subject_id": subject, "purpose": "tutoring"}, headers=api
    )
    await svc.worker.deliver_due()
    mailbox.clear()
    return str(consent.json()["consent_id"])


async def _revoke(svc: Service, consent_id: str, **body: Any) -> Any:
    response = await svc.client.post(
        f"/v1/consents/{consent_id}/revoke",
        json={"reason": REASON, **body},
        headers=svc.staff("support", sub="bojana"),
    )
    assert response.status_code == 200, response.text
    assert await svc.worker.deliver_due() >= 1
    return response


@pytest.mark.parametrize("locale", ["sl", "de"])
async def test_a_preset_reason_is_read_in_the_guardians_language_and_the_note_never(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection, locale: str
) -> None:
    subject = f"child-reasons-{locale}"
    consent_id = await _granted(svc, api, mailbox, subject, locale)
    await _revoke(svc, consent_id, note=NOTE, guardian_reason="preset:account_closed")
    [email] = mailbox.to(RECIPIENT)
    expected = translator(locale).gettext(PRESET_REASONS["account_closed"])
    assert expected != PRESET_REASONS["account_closed"]  # translated, not the English words
    assert expected in email.text
    for secret in (NOTE, REASON, "ticket 88", "Tuesday"):
        assert secret not in email.text
        assert secret not in email.html

    revoked = await db.fetchrow(
        "select actor, reason, details from audit_events where action = 'consent.revoked'"
    )
    assert revoked["actor"] == "staff:bojana"
    assert revoked["reason"] == REASON
    assert "preset:account_closed" in revoked["details"]
    note = await db.fetchrow(
        "select actor, reason, subject_id from audit_events where action = 'consent.note'"
    )
    assert (note["actor"], note["reason"], note["subject_id"]) == ("staff:bojana", NOTE, subject)


async def test_a_reason_written_for_the_guardian_is_shown_as_written(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    consent_id = await _granted(svc, api, mailbox, "child-reasons-own", "sl")
    written = "Po vašem klicu 3. 12. smo soglasje preklicali \N{EN DASH} hvala za obvestilo <3"
    await _revoke(svc, consent_id, guardian_reason=written)
    [email] = mailbox.to(RECIPIENT)
    assert written in email.text
    assert "hvala za obvestilo &lt;3" in email.html
    assert REASON not in email.text


async def test_without_a_guardian_reason_the_email_says_it_neutrally(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    consent_id = await _granted(svc, api, mailbox, "child-reasons-none", "de")
    await _revoke(svc, consent_id, note=NOTE)
    [email] = mailbox.to(RECIPIENT)
    neutral = translator("de").gettext("Our support team ended the consent after reviewing it.")
    assert neutral in email.text
    assert REASON not in email.text
    assert NOTE not in email.text


@pytest.mark.parametrize(
    "body",
    [
        {"guardian_reason": "preset:no_such_reason"},
        {"guardian_reason": "preset:"},
        {"guardian_reason": "line one\nline two"},
        {"guardian_reason": "x" * 501},
        {"note": "x" * 2001},
        {"guardian_reason": 7},
        {"note": "bell \x07"},
    ],
)
async def test_a_bad_guardian_reason_or_note_is_refused_and_changes_nothing(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection, body: dict[str, Any]
) -> None:
    consent_id = await _granted(svc, api, mailbox, "child-reasons-bad", "sl")
    response = await svc.client.post(
        f"/v1/consents/{consent_id}/revoke",
        json={"reason": REASON, **body},
        headers=svc.staff("support"),
    )
    assert response.status_code in (400, 422), response.text
    assert_problem(response, response.status_code)
    status = await db.fetchval("select status from consents where id = $1::uuid", consent_id)
    assert status == "granted"
    assert (
        await db.fetchval("select count(*) from audit_events where action = 'consent.revoked'") == 0
    )


def test_every_preset_is_translated_into_every_shipped_language() -> None:
    for locale in ("sl", "de", "hr", "it", "hu", "fr", "es"):
        for message in PRESET_REASONS.values():
            assert translator(locale).gettext(message) != message, (locale, message)


def test_the_presets_are_documented_in_the_openapi_description() -> None:
    text = (Path(__file__).parents[2] / "openapi" / "openapi.json").read_text()
    for preset in PRESET_REASONS:
        assert f"preset:{preset}" in text
