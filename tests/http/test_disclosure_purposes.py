"""Disclosure purposes end to end: off unless the app asks for one; in the US shown but not
grantable with email plus (a forged form is refused); elsewhere granted only when ticked; the
verification method kept per purpose."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import jwt
import msgspec

from service.consent.errors import FormError
from service.http.guardian_pages import FORM_ERRORS
from service.i18n import translator
from service.security.personal_data import normalize_email
from tests.support.dates import birth_date_years_ago
from tests.support.flows import ALL_PURPOSES, check, create_request
from tests.support.guardian_client import csrf_token, guardian_link, path_of
from tests.support.problems import assert_problem
from tests.support.rendering import esc
from tests.support.service import Service

GUARDIAN = "disclosure.parent@example.com"
DISCLOSURE = "research_sharing"
WITH_DISCLOSURE = [*ALL_PURPOSES, DISCLOSURE]
RECIPIENT = {
    "en": "University education research groups",
    "sl": "Univerzitetne raziskovalne skupine na področju izobraževanja",
}
NOT_AVAILABLE = (
    "Not available yet: sharing your child's data with others needs a stronger way of checking "
    "that you are the parent than email, and this service does not offer one yet. You can "
    "still give consent to the other purposes."
)
EMAIL_NOT_AVAILABLE = (
    "This purpose cannot be given yet: sharing your child's data with others needs a stronger "
    "way of checking that you are the parent than this email, and it is not available yet."
)


def checkbox(page: str, purpose: str) -> str:
    match = re.search(rf'<input type="checkbox" id="purpose-{purpose}"[^>]*>', page)
    assert match, f"no checkbox for {purpose}"
    return match.group(0)


async def open_request(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    *,
    subject_id: str,
    country: str,
    purposes: list[str],
    locale: str = "en",
) -> tuple[str, Any]:
    """Open a request, deliver its email; return (the review path, the email)."""
    await create_request(
        svc.client,
        api,
        subject_id=subject_id,
        email=GUARDIAN,
        birth_date=birth_date_years_ago(svc.clock),
        country=country,
        purposes=purposes,
        locale=locale,
    )
    assert await svc.worker.deliver_due() >= 1
    message = mailbox.to(normalize_email(GUARDIAN))[-1]
    return path_of(guardian_link(message.text)), message


async def submit(svc: Service, path: str, purposes: list[str]) -> Any:
    review = await svc.client.get(path)
    assert review.status_code == 200, review.text
    return await svc.client.post(
        path,
        data={
            "_csrf_token": csrf_token(review.text),
            "decision": "grant",
            "purposes": purposes,
            "attestation": "yes",
        },
    )


async def test_a_request_that_does_not_list_it_leaves_the_disclosure_purpose_out(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    path, message = await open_request(
        svc, api, mailbox, subject_id="child-plain", country="US", purposes=ALL_PURPOSES
    )
    page = await svc.client.get(path)
    assert 'id="purpose-research_sharing"' not in page.text
    assert "Shared with" not in page.text
    assert RECIPIENT["en"] not in message.text
    answer = await submit(svc, path, WITH_DISCLOSURE)
    assert answer.status_code == 422  # not part of this request: not on the page
    status = await check(svc.client, api, "child-plain", DISCLOSURE)
    assert status["allowed"] is False


async def test_purposes_are_never_defaulted(
    svc: Service, api: dict[str, str], db: asyncpg.Connection
) -> None:
    body = {
        "subject_id": "child-no-purposes",
        "birth_date": birth_date_years_ago(svc.clock),
        "country": "US",
        "guardian_email": GUARDIAN,
    }
    response = await svc.client.post("/v1/consent-requests", json=body, headers=api)
    assert_problem(response, 422)
    assert "purposes" in response.json()["detail"]
    assert await db.fetchval("select count(*) from consent_requests") == 0


async def test_us_the_email_names_the_recipients_and_says_it_cannot_be_given_yet(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    _, message = await open_request(
        svc, api, mailbox, subject_id="child-us-mail", country="US", purposes=WITH_DISCLOSURE
    )
    text = " ".join(message.text.split())
    assert "Sharing progress with education researchers" in text
    assert f"Shared with: - {RECIPIENT['en']}: To study which kinds of lessons" in text
    assert EMAIL_NOT_AVAILABLE in text
    html = " ".join(message.html.split())
    assert esc(RECIPIENT["en"]) in html
    assert esc(EMAIL_NOT_AVAILABLE) in html


async def test_si_the_email_names_the_recipients_in_slovenian_without_the_us_note(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    _, message = await open_request(
        svc,
        api,
        mailbox,
        subject_id="child-si-mail",
        country="SI",
        purposes=WITH_DISCLOSURE,
        locale="sl",
    )
    text = " ".join(message.text.split())
    assert f"Prejemniki podatkov: - {RECIPIENT['sl']}: Da proučijo" in text
    assert "Tega namena še ni mogoče odobriti" not in text


async def test_us_review_page_shows_it_disabled_with_the_reason_in_english_and_slovenian(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    for locale, subject in (("en", "child-us-en"), ("sl", "child-us-sl")):
        path, _ = await open_request(
            svc,
            api,
            mailbox,
            subject_id=subject,
            country="US",
            purposes=WITH_DISCLOSURE,
            locale=locale,
        )
        page = (await svc.client.get(path)).text
        box = checkbox(page, DISCLOSURE)
        assert " disabled" in box
        assert " checked" not in box
        reason = translator(locale).gettext(NOT_AVAILABLE)
        assert esc(reason) in page
        assert esc(RECIPIENT[locale]) in page
        assert esc(translator(locale).gettext("Shared with")) in page
        for purpose in ALL_PURPOSES:
            assert " disabled" not in checkbox(page, purpose)
    assert translator("sl").gettext(NOT_AVAILABLE) != NOT_AVAILABLE


async def test_us_no_path_grants_the_disclosure_purpose(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    subject = "child-us-grant"
    path, _ = await open_request(
        svc, api, mailbox, subject_id=subject, country="US", purposes=WITH_DISCLOSURE
    )

    # A forged form that ticks the disabled box: refused, nothing recorded.
    forged = await submit(svc, path, ["tutoring", DISCLOSURE])
    assert forged.status_code == 422
    assert esc(FORM_ERRORS[FormError.METHOD_TOO_WEAK]) in forged.text
    assert " disabled" in checkbox(forged.text, DISCLOSURE)
    assert " checked" not in checkbox(forged.text, DISCLOSURE)
    assert await db.fetchval("select count(*) from consents") == 0
    assert (await check(svc.client, api, subject, DISCLOSURE))["allowed"] is False

    # Everything the request lists, as a script would send it: refused the same way.
    everything = await submit(svc, path, WITH_DISCLOSURE)
    assert everything.status_code == 422
    assert await db.fetchval("select count(*) from consents") == 0
    assert (await check(svc.client, api, subject, "tutoring"))["status"] == "pending"

    # What the page lets the guardian tick: granted, without the disclosure purpose.
    granted = await submit(svc, path, ALL_PURPOSES)
    assert granted.status_code == 200, granted.text
    assert (await check(svc.client, api, subject, "tutoring"))["allowed"] is True
    answer = await check(svc.client, api, subject, DISCLOSURE)
    assert answer["status"] == "granted"
    assert answer["allowed"] is False
    claims = jwt.decode(answer["token"], options={"verify_signature": False})
    assert claims["method"] == "email_plus"
    assert DISCLOSURE not in claims["purposes"]
    assert claims["purpose_methods"] == dict.fromkeys(ALL_PURPOSES, "email_plus")

    stored = await db.fetchval("select purpose_methods from consents")
    assert msgspec.json.decode(stored) == dict.fromkeys(ALL_PURPOSES, "email_plus")
    record = await svc.client.get(f"/v1/consents/{answer['consent_id']}", headers=api)
    assert record.json()["purpose_methods"] == dict.fromkeys(ALL_PURPOSES, "email_plus")


async def test_outside_the_us_it_is_granted_only_when_ticked(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    for country in ("SI", "DE"):
        subject = f"child-{country.lower()}-grant"
        path, _ = await open_request(
            svc, api, mailbox, subject_id=subject, country=country, purposes=WITH_DISCLOSURE
        )
        page = (await svc.client.get(path)).text
        box = checkbox(page, DISCLOSURE)
        assert " checked" not in box  # never pre-ticked
        assert " disabled" not in box
        assert esc(NOT_AVAILABLE) not in page
        assert esc(RECIPIENT["en"]) in page

        answer = await submit(svc, path, ["tutoring", DISCLOSURE])
        assert answer.status_code == 200, answer.text
        allowed = await check(svc.client, api, subject, DISCLOSURE)
        assert allowed["allowed"] is True, country
        stored = await db.fetchval(
            "select purpose_methods from consents where subject_id = $1", subject
        )
        assert msgspec.json.decode(stored) == {"tutoring": "email_plus", DISCLOSURE: "email_plus"}

    # not ticked: not granted
    path, _ = await open_request(
        svc, api, mailbox, subject_id="child-si-unticked", country="SI", purposes=WITH_DISCLOSURE
    )
    assert (await submit(svc, path, ["tutoring"])).status_code == 200
    answer = await check(svc.client, api, "child-si-unticked", DISCLOSURE)
    assert answer["status"] == "granted"
    assert answer["allowed"] is False


async def test_the_grant_event_and_the_export_show_the_method_of_each_purpose(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    subject = "child-si-export"
    path, _ = await open_request(
        svc, api, mailbox, subject_id=subject, country="SI", purposes=WITH_DISCLOSURE
    )
    assert (await submit(svc, path, ["tutoring", DISCLOSURE])).status_code == 200
    expected = {"tutoring": "email_plus", DISCLOSURE: "email_plus"}

    events = await svc.client.get(f"/v1/subjects/{subject}/events", headers=svc.staff("support"))
    [granted] = [e for e in events.json()["events"] if e["action"] == "consent.granted"]
    assert granted["details"]["purpose_methods"] == expected
    export = await svc.client.get(f"/v1/subjects/{subject}/export", headers=svc.staff("admin"))
    assert export.status_code == 200, export.text
    [consent] = export.json()["consents"]
    assert consent["purpose_methods"] == expected
    overview = await svc.client.get(f"/v1/subjects/{subject}", headers=svc.staff("support"))
    assert overview.json()["consents"][0]["purpose_methods"] == expected
