"""A guardian corrects their address (GDPR Art. 16) from the withdrawal link, or staff start it:
the new address must confirm a link before anything uses it, the old address is then told, the
consent stays the same consent, and nobody is told it was "replaced by another guardian".

Real PostgreSQL, the real SMTP server (the mail catcher), the app over HTTP; time moves only
through the ManualClock.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import jwt
import pytest

from service.consent.rectification import ADDRESS_CONFIRMATION_TTL
from service.security.personal_data import mask_email
from tests.support.dates import birth_date_years_ago
from tests.support.flows import check, create_request, grant_via_link, withdraw_via_form
from tests.support.guardian_client import csrf_token, guardian_link, is_html
from tests.support.service import Service

OLD = "old.parent@example.com"
NEW = "New.Parent@example.org"
CONFIRM_LINK = re.compile(r"https?://[^\s<>\"]+(/guardian/address/confirm/[A-Za-z0-9_-]+)")

TEXTS = {
    "en": {
        "form_heading": "Change your email address",
        "label": "New email address",
        "sent_heading": "Check your new address",
        "confirm_heading": "Confirm your new email address",
        "confirm_button": "Confirm new address",
        "changed_heading": "Your email address has been changed",
        "invalid": "Please enter one email address, such as name@example.com, without spaces",
        "unchanged": "This is the address we already use for you.",
        "confirmation_subject": "Učilnica Tutoring: confirm your new email address",
        "confirmation_text": "Please confirm that this address is yours",
        "confirmation_button": "Confirm my new address",
        "changed_subject": "Učilnica Tutoring: your email address has been changed",
        "changed_text": "Your consent itself has not changed",
        "expired_heading": "This link has expired",
        "used_heading": "This link can no longer be used",
    },
    "sl": {
        "form_heading": "Spremenite svoj e-poštni naslov",
        "label": "Novi e-poštni naslov",
        "sent_heading": "Preverite svoj novi naslov",
        "confirm_heading": "Potrdite svoj novi e-poštni naslov",
        "confirm_button": "Potrdi novi naslov",
        "changed_heading": "Vaš e-poštni naslov je bil spremenjen",
        "invalid": "Vnesite en e-poštni naslov, na primer ime@primer.si, brez presledkov",
        "unchanged": "Na ta naslov vam že pišemo.",
        "confirmation_subject": "Učilnica Tutoring: potrdite svoj novi e-poštni naslov",
        "confirmation_text": "Potrdite, da je naslov vaš",
        "confirmation_button": "Potrdi moj novi naslov",
        "changed_subject": "Učilnica Tutoring: vaš e-poštni naslov je bil spremenjen",
        "changed_text": "Vaše soglasje se ni spremenilo",
        "expired_heading": "Ta povezava je potekla",
        "used_heading": "Te povezave ni več mogoče uporabiti",
    },
}


async def _granted(
    svc: Service, api: dict[str, str], mailbox: Any, subject: str, locale: str
) -> tuple[str, str]:
    """A consent granted by OLD in ``locale``; returns (consent id, withdrawal path)."""
    await create_request(
        svc.client,
        api,
        subject_id=subject,
        email=OLD,
        birth_date=birth_date_years_ago(svc.clock),
        locale=locale,
    )
    assert await svc.worker.deliver_due() == 1
    [request_email] = mailbox.to(OLD)
    withdraw_path = await grant_via_link(svc.client, guardian_link(request_email.text))
    answer = await check(svc.client, api, subject)
    assert answer["status"] == "granted"
    await svc.worker.deliver_due()  # the email-plus confirmation (no delay in tests)
    return str(answer["consent_id"]), withdraw_path


async def _ask_for(svc: Service, address_path: str, email: str) -> Any:
    page = await svc.client.get(address_path)
    assert page.status_code == 200, page.text
    return await svc.client.post(
        address_path, data={"email": email, "_csrf_token": csrf_token(page.text)}
    )


async def _subjects_of(svc: Service, email: str) -> list[str]:
    found = await svc.client.post(
        "/v1/subjects", json={"guardian_email": email}, headers=svc.staff("support")
    )
    assert found.status_code == 200, found.text
    return [match["subject_id"] for match in found.json()["subjects"]]


def _confirm_path(message: Any) -> str:
    match = CONFIRM_LINK.search(message.text)
    assert match, message.text
    assert match.group(0) in message.html
    return match.group(1)


def _verified_claims(svc: Service, token: str) -> dict[str, Any]:
    key = svc.runtime.signer.jwk
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["EdDSA"],
        audience=svc.settings.token_audience,
        issuer=svc.settings.token_issuer,
    )
    return claims


@pytest.mark.parametrize("locale", ["en", "sl"])
async def test_a_new_address_is_used_only_after_it_confirms_and_the_old_one_is_told(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection, locale: str
) -> None:
    texts = TEXTS[locale]
    subject = f"child-rectify-{locale}"
    consent_id, withdraw_path = await _granted(svc, api, mailbox, subject, locale)
    token_before = (await check(svc.client, api, subject))["token"]
    withdraw_page = await svc.client.get(withdraw_path)
    address_path = withdraw_path.replace("/guardian/withdraw/", "/guardian/address/")
    assert f'href="{address_path}"' in withdraw_page.text
    mailbox.clear()

    form = await svc.client.get(address_path)
    assert form.status_code == 200
    assert is_html(form)
    assert texts["form_heading"] in form.text
    assert texts["label"] in form.text
    assert OLD not in form.text  # the link may travel; the current address is never shown

    invalid = await _ask_for(svc, address_path, "Parent <new@example.org>")
    assert invalid.status_code == 422
    assert texts["invalid"] in invalid.text
    assert 'aria-invalid="true"' in invalid.text
    unchanged = await _ask_for(svc, address_path, OLD.upper().replace("EXAMPLE.COM", "example.com"))
    assert unchanged.status_code == 422
    assert texts["unchanged"] in unchanged.text

    sent = await _ask_for(svc, address_path, NEW)
    assert sent.status_code == 200, sent.text
    assert texts["sent_heading"] in sent.text

    # Nothing uses the new address before it confirms: lookups find the old one ...
    assert await _subjects_of(svc, OLD) == [subject]
    assert await _subjects_of(svc, NEW) == []
    assert await svc.worker.deliver_due() == 1
    [confirmation] = mailbox.to(NEW)
    assert confirmation.subject == texts["confirmation_subject"]
    assert texts["confirmation_text"] in confirmation.text
    assert texts["confirmation_button"] in confirmation.html
    confirm_path = _confirm_path(confirmation)
    assert mailbox.to(OLD) == []

    # ... and emails still go to it: a partial withdrawal before the confirmation.
    page = await svc.client.get(withdraw_path)
    partial = await svc.client.post(
        withdraw_path,
        data={"confirm": "yes", "purposes": ["newsletter"], "_csrf_token": csrf_token(page.text)},
    )
    assert partial.status_code == 200, partial.text
    assert await svc.worker.deliver_due() == 1
    assert len(mailbox.to(OLD)) == 1
    assert len(mailbox.to(NEW)) == 1

    # A GET (a mail scanner's prefetch) changes nothing.
    for _ in range(2):
        shown = await svc.client.get(confirm_path)
        assert shown.status_code == 200
        assert texts["confirm_heading"] in shown.text
        assert texts["confirm_button"] in shown.text
        assert mask_email(NEW) in shown.text
    assert await _subjects_of(svc, NEW) == []

    confirmed = await svc.client.post(confirm_path, data={"_csrf_token": csrf_token(shown.text)})
    assert confirmed.status_code == 200, confirmed.text
    assert texts["changed_heading"] in confirmed.text

    assert await svc.worker.deliver_due() == 1
    [_, notice] = mailbox.to(OLD)
    assert notice.subject == texts["changed_subject"]
    assert texts["changed_text"] in notice.text
    assert texts["changed_text"] in notice.html
    assert NEW not in notice.text  # masked
    assert mask_email(NEW) in notice.text
    assert len(mailbox.to(NEW)) == 1

    # The same consent, for the new guardian; its token names the new guardian.
    after = await check(svc.client, api, subject)
    assert (after["status"], after["consent_id"]) == ("granted", consent_id)
    before_claims = _verified_claims(svc, token_before)
    after_claims = _verified_claims(svc, after["token"])
    assert after_claims["jti"] == before_claims["jti"] == consent_id
    assert after_claims["guardian"] != before_claims["guardian"]
    assert after_claims["exp"] == before_claims["exp"]
    assert await _subjects_of(svc, NEW) == [subject]
    assert await _subjects_of(svc, OLD) == []
    assert await db.fetchval("select count(*) from consents") == 1

    # Never "replaced by another guardian", now or when the app asks the new address again.
    await create_request(
        svc.client,
        api,
        subject_id=subject,
        email=NEW,
        birth_date=birth_date_years_ago(svc.clock),
        locale=locale,
    )
    assert await svc.worker.deliver_due() == 1
    await grant_via_link(svc.client, guardian_link(mailbox.to(NEW)[-1].text))
    await svc.worker.deliver_due()
    assert await db.fetchval("select count(*) from outbox where topic = 'consent_replaced'") == 0
    assert len(mailbox.to(OLD)) == 2

    # The rights request, received and done, and the audit trail.
    [tracked] = await db.fetch("select * from data_requests")
    assert (tracked["kind"], tracked["channel"], tracked["status"]) == (
        "rectification",
        "guardian_page",
        "done",
    )
    assert tracked["closed_at"] <= tracked["due_at"]
    actions = [
        row["action"]
        for row in await db.fetch(
            "select action from audit_events where subject_id = $1 order by id", subject
        )
    ]
    for action in (
        "data_request.opened",
        "guardian.address_change_requested",
        "guardian.address_changed",
        "data_request.done",
    ):
        assert action in actions
    # the new address is held only by the request now, encrypted
    assert (
        await db.fetchval(
            "select count(*) from guardian_address_changes where new_email_enc is not null"
        )
        == 0
    )

    again = await svc.client.post(confirm_path, data={"_csrf_token": csrf_token(shown.text)})
    assert again.status_code == 410
    assert texts["used_heading"] in again.text


@pytest.mark.parametrize("locale", ["en", "sl"])
async def test_an_expired_confirmation_link_changes_nothing_and_its_address_is_deleted(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection, locale: str
) -> None:
    subject = f"child-rectify-late-{locale}"
    _, withdraw_path = await _granted(svc, api, mailbox, subject, locale)
    address_path = withdraw_path.replace("/guardian/withdraw/", "/guardian/address/")
    assert (await _ask_for(svc, address_path, NEW)).status_code == 200
    await svc.worker.deliver_due()
    confirm_path = _confirm_path(mailbox.to(NEW)[-1])
    shown = await svc.client.get(confirm_path)
    assert shown.status_code == 200

    svc.clock.advance(ADDRESS_CONFIRMATION_TTL + timedelta(seconds=1))
    for late in (
        await svc.client.get(confirm_path),
        await svc.client.post(confirm_path, data={"_csrf_token": csrf_token(shown.text)}),
    ):
        assert late.status_code == 410
        assert TEXTS[locale]["expired_heading"] in late.text
    await svc.worker.sweep()
    assert (
        await db.fetchval(
            "select count(*) from guardian_address_changes where new_email_enc is not null"
        )
        == 0
    )
    assert await _subjects_of(svc, OLD) == [subject]
    assert await _subjects_of(svc, NEW) == []
    [tracked] = await db.fetch("select status from data_requests")
    assert tracked["status"] == "open"  # staff follow it up; nothing was changed


async def test_a_newer_change_replaces_a_waiting_one_and_an_unknown_link_is_a_page(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    _, withdraw_path = await _granted(svc, api, mailbox, "child-rectify-twice", "en")
    address_path = withdraw_path.replace("/guardian/withdraw/", "/guardian/address/")
    assert (await _ask_for(svc, address_path, "first.try@example.org")).status_code == 200
    assert (await _ask_for(svc, address_path, NEW)).status_code == 200
    await svc.worker.deliver_due()
    first = _confirm_path(mailbox.to("first.try@example.org")[-1])
    replaced = await svc.client.get(first)
    assert replaced.status_code == 410
    assert TEXTS["en"]["used_heading"] in replaced.text

    unknown = await svc.client.get(f"/guardian/address/confirm/{'A' * 43}")
    assert unknown.status_code == 404
    assert is_html(unknown)


async def test_staff_start_the_change_for_a_tracked_request_and_the_new_address_confirms(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    subject = "child-rectify-staff"
    consent_id, _ = await _granted(svc, api, mailbox, subject, "en")
    support = svc.staff("support", sub="bob")
    letter = await svc.client.post(
        "/v1/data-requests",
        json={"subject_id": subject, "kind": "rectification", "channel": "staff_letter"},
        headers=support,
    )
    assert letter.status_code == 201, letter.text
    data_request_id = letter.json()["id"]
    path = f"/v1/consents/{consent_id}/guardian-email"

    assert (await svc.client.post(path, json={"email": NEW})).status_code == 401
    assert (
        await svc.client.post(path, json={"email": NEW}, headers=svc.staff("admin"))
    ).status_code == 403
    for refused in ("not an address", OLD):
        answer = await svc.client.post(path, json={"email": refused}, headers=support)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
    missing = await svc.client.post(
        f"/v1/consents/{uuid.uuid4()}/guardian-email", json={"email": NEW}, headers=support
    )
    assert missing.status_code == 404

    started = await svc.client.post(
        path, json={"email": NEW, "data_request_id": data_request_id}, headers=support
    )
    assert started.status_code == 202, started.text
    body = started.json()
    assert (body["consent_id"], body["data_request_id"]) == (consent_id, data_request_id)
    assert body["status"] == "awaiting_confirmation"
    assert await _subjects_of(svc, NEW) == []

    await svc.worker.deliver_due()
    confirm_path = _confirm_path(mailbox.to(NEW)[-1])
    shown = await svc.client.get(confirm_path)
    confirmed = await svc.client.post(confirm_path, data={"_csrf_token": csrf_token(shown.text)})
    assert confirmed.status_code == 200, confirmed.text

    assert await _subjects_of(svc, NEW) == [subject]
    assert (await check(svc.client, api, subject))["consent_id"] == consent_id
    tracked = await svc.client.get(f"/v1/data-requests/{data_request_id}", headers=support)
    assert tracked.json()["status"] == "done"
    assert await db.fetchval("select count(*) from data_requests") == 1
    requested_by = await db.fetchval(
        "select actor from audit_events where action = 'guardian.address_change_requested'"
    )
    assert requested_by == "staff:bob"
    await svc.worker.deliver_due()
    assert [m for m in mailbox.messages if "replaced" in m.subject] == []


async def test_a_withdrawn_consent_offers_no_address_change(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    consent_id, withdraw_path = await _granted(svc, api, mailbox, "child-rectify-ended", "en")
    assert (await withdraw_via_form(svc.client, withdraw_path)).status_code == 200
    address_path = withdraw_path.replace("/guardian/withdraw/", "/guardian/address/")
    gone = await svc.client.get(address_path)
    assert gone.status_code == 410
    assert is_html(gone)
    ended = await svc.client.post(
        f"/v1/consents/{consent_id}/guardian-email",
        json={"email": NEW},
        headers=svc.staff("support"),
    )
    assert ended.status_code == 409
    assert ended.json()["current_status"] == "withdrawn"


async def test_what_the_guardian_typed_is_shown_again_escaped_and_nothing_is_sent(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    _, withdraw_path = await _granted(svc, api, mailbox, "child-rectify-typed", "en")
    address_path = withdraw_path.replace("/guardian/withdraw/", "/guardian/address/")
    mailbox.clear()
    typed = '"><script>alert(1)</script>@example.org'
    refused = await _ask_for(svc, address_path, typed)
    assert refused.status_code == 422
    assert "<script>" not in refused.text
    assert "&lt;script&gt;" in refused.text
    assert await svc.worker.deliver_due() == 0
    assert await db.fetchval("select count(*) from guardian_address_changes") == 0
    assert await db.fetchval("select count(*) from data_requests") == 0
