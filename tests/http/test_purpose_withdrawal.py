"""The guardian withdraws some purposes and keeps the rest (GDPR Art. 7(3), 21(3)): the page, the
check, the re-issued token verified against the JWKS, the consent.updated webhook received by a
real HTTP receiver, the email in the request's language and the audit trail; a required purpose
(or all of them) ends the consent as before; form mistakes are explained and change nothing."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import jwt
import pytest

from service.clock import ManualClock
from service.security.personal_data import normalize_email
from tests.support.dates import birth_date_years_ago
from tests.support.flows import check, create_request, grant_via_link
from tests.support.guardian_client import csrf_token, guardian_link, is_html
from tests.support.service import Service
from tests.support.webhooks import (
    WebhookReceiver,
    verified_payload,
    webhook_env,
)

SUBJECT = "child-partial-1"
GUARDIAN = "Partial.Parent@Example.com"
RECIPIENT = normalize_email(GUARDIAN)
ALL = ["tutoring", "progress_reports", "newsletter"]
# a message key instead of its text ("error.confirm", "withdraw.heading")
RAW_KEY = re.compile(r"\b(?:error|email|withdraw|withdrawn|review|link)\.[a-z_]+\b")

TEXTS = {
    "en": {
        "heading": "Withdraw your consent",
        "titles": {"tutoring": "Tutoring", "progress_reports": "Progress reports"},
        "newsletter": "Newsletter",
        "partial_heading": "Part of your consent has been withdrawn",
        "remains": "Your consent remains for:",
        "ended_heading": "Your consent has been withdrawn",
        "none_ticked": "Please tick at least one purpose to withdraw.",
        "unknown": "Please choose only from the purposes listed on this page.",
        "confirm": "Please confirm that you want to withdraw your consent.",
        "erase_partial": (
            "Your child&#39;s data can only be deleted when you withdraw your consent "
            "altogether. Also tick the required purpose, or leave deletion unticked."
        ),
        "email_subject": "Učilnica Tutoring: you withdrew part of your consent",
        "email_withdrawn": "Consent withdrawn for",
        "email_remains": "Your consent remains for",
    },
    "sl": {
        "heading": "Preklic soglasja",
        "titles": {"tutoring": "Inštrukcije", "progress_reports": "Poročila o napredku"},
        "newsletter": "E-novice",
        "partial_heading": "Del vašega soglasja je preklican",
        "remains": "Vaše soglasje še velja za:",
        "ended_heading": "Vaše soglasje je preklicano",
        "none_ticked": "Označite vsaj en namen, za katerega preklicujete soglasje.",
        "unknown": "Izberite le med nameni, navedenimi na tej strani.",
        "confirm": "Potrdite, da želite preklicati soglasje.",
        "erase_partial": (
            "Podatke vašega otroka lahko izbrišemo le, če soglasje prekličete v celoti. "
            "Označite tudi obvezni namen ali pa izbrisa ne označite."
        ),
        "email_subject": "Učilnica Tutoring: del soglasja ste preklicali",
        "email_withdrawn": "Preklicano soglasje za",
        "email_remains": "Vaše soglasje še velja za",
    },
}


@pytest.fixture
def svc_env(receiver: WebhookReceiver) -> dict[str, str]:
    # The opt-in erasure on the page (without erasure on withdrawal, which
    # tests/consent/test_erasure_on_withdrawal.py covers).
    return {**webhook_env(receiver), "CONSENT_WITHDRAWAL_ERASES": "false"}


@dataclass(frozen=True)
class Granted:
    consent_id: str
    withdraw_path: str


async def grant_all(svc: Service, api: dict[str, str], mailbox: Any, locale: str) -> Granted:
    await create_request(
        svc.client,
        api,
        subject_id=SUBJECT,
        email=GUARDIAN,
        birth_date=birth_date_years_ago(svc.clock),
        locale=locale,
    )
    assert await svc.worker.deliver_due() == 1
    [message] = mailbox.to(RECIPIENT)
    withdraw_path = await grant_via_link(svc.client, guardian_link(message.text))
    answer = await check(svc.client, api, SUBJECT)
    assert answer["allowed"] is True
    await svc.worker.deliver_due()  # the confirmation and consent.granted
    mailbox.clear()
    return Granted(consent_id=str(answer["consent_id"]), withdraw_path=withdraw_path)


async def withdraw(svc: Service, path: str, **form: Any) -> Any:
    page = await svc.client.get(path)
    assert page.status_code == 200, page.text
    return await svc.client.post(path, data={**form, "_csrf_token": csrf_token(page.text)})


def checkboxes(page: str) -> dict[str, str]:
    """The withdrawal form's purpose checkboxes: value → the whole input tag."""
    return {
        match.group(1): match.group(0)
        for match in re.finditer(
            r'<input type="checkbox" id="withdraw-[^"]+" name="purposes" '
            r'value="([a-z_]+)"[^>]*>',
            page,
        )
    }


async def verified_claims(svc: Service, token: str) -> dict[str, Any]:
    jwks = (await svc.client.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks["keys"] if k["kid"] == kid)
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["EdDSA"],
        audience=svc.settings.token_audience,
        issuer=svc.settings.token_issuer,
        leeway=timedelta(days=7),  # the test's clock runs ahead of the real one
    )
    return claims


async def audit(db: asyncpg.Connection, action: str) -> list[asyncpg.Record]:
    return await db.fetch("select * from audit_events where action = $1 order by id", action)


# ---- withdrawing optional purposes keeps the rest --------------------------------------------


@pytest.mark.parametrize("locale", ["en", "sl"])
async def test_withdrawing_an_optional_purpose_keeps_the_consent_for_the_rest(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    receiver: WebhookReceiver,
    db: asyncpg.Connection,
    locale: str,
) -> None:
    texts = TEXTS[locale]
    granted = await grant_all(svc, api, mailbox, locale)
    before = await svc.client.get(f"/v1/consents/{granted.consent_id}", headers=api)
    old_token = before.json()["token"]

    page = await svc.client.get(granted.withdraw_path)
    assert page.status_code == 200
    assert f'<html lang="{locale}">' in page.text
    assert texts["heading"] in page.text
    boxes = checkboxes(page.text)
    assert list(boxes) == ALL
    assert all(" checked" not in tag for tag in boxes.values()), "nothing is pre-ticked"
    for title in [*texts["titles"].values(), texts["newsletter"]]:
        assert title in page.text
    assert not RAW_KEY.search(page.text)

    clock.advance(timedelta(minutes=3))
    done = await withdraw(svc, granted.withdraw_path, purposes=["newsletter"], confirm="yes")
    assert done.status_code == 200, done.text
    assert texts["partial_heading"] in done.text
    assert texts["remains"] in done.text
    remaining = re.search(r'<ul class="titles remaining">(.*?)</ul>', done.text, re.S)
    assert remaining
    assert re.findall(r"<li>(.*?)</li>", remaining.group(1)) == list(texts["titles"].values())
    assert f'href="{granted.withdraw_path}"' in done.text

    # The check knows at once, before any worker pass.
    for purpose, allowed in (("tutoring", True), ("progress_reports", True), ("newsletter", False)):
        answer = await check(svc.client, api, SUBJECT, purpose)
        assert (answer["allowed"], answer["status"]) == (allowed, "granted"), answer
        assert answer["consent_id"] == granted.consent_id

    # Same consent, fewer purposes, a new token with the same claims but the purposes.
    record = (await svc.client.get(f"/v1/consents/{granted.consent_id}", headers=api)).json()
    assert record["status"] == "granted"
    assert record["purposes"] == ["tutoring", "progress_reports"]
    [withdrawal] = record["withdrawn_purposes"]
    assert withdrawal["purpose"] == "newsletter"
    assert datetime.fromisoformat(withdrawal["withdrawn_at"]) == clock.now()
    token = record["token"]
    assert token != old_token
    assert (await check(svc.client, api, SUBJECT))["token"] == token
    claims = await verified_claims(svc, token)
    old_claims = await verified_claims(svc, old_token)
    assert claims["purposes"] == ["tutoring", "progress_reports"]
    assert claims["jti"] == granted.consent_id
    assert claims["iat"] == int(clock.now().timestamp())
    for name in (
        "iss",
        "aud",
        "sub",
        "exp",
        "jurisdiction",
        "method",
        "policy_version",
        "guardian",
    ):
        assert claims[name] == old_claims[name], name

    [event] = await audit(db, "consent.purposes_withdrawn")
    assert event["actor"] == "guardian"
    assert (event["from_status"], event["to_status"]) == ("granted", "granted")
    assert str(event["consent_id"]) == granted.consent_id
    details = json.loads(event["details"])
    assert details == {"withdrawn_purposes": ["newsletter"], "purposes": record["purposes"]}
    assert await audit(db, "consent.withdrawn") == []

    assert await svc.worker.deliver_due() == 2  # the guardian's email and the webhook
    [email] = mailbox.to(RECIPIENT)
    assert email.subject == texts["email_subject"]
    assert texts["email_withdrawn"] in email.text
    assert texts["email_remains"] in email.text
    withdrawn_part, remains_part = email.text.split(texts["email_remains"], 1)
    assert texts["newsletter"] in withdrawn_part
    assert all(title in remains_part for title in texts["titles"].values())
    assert texts["newsletter"] not in remains_part
    assert f"http://consent.test{granted.withdraw_path}" in email.text
    assert not RAW_KEY.search(email.text)
    assert not RAW_KEY.search(email.html)

    [delivery] = receiver.of_type("consent.updated")
    payload = verified_payload(delivery)
    data = payload["data"]
    assert data["subject_id"] == SUBJECT
    assert data["consent_id"] == granted.consent_id
    assert data["status"] == "granted"
    assert data["purposes"] == ["tutoring", "progress_reports"]
    assert data["withdrawn_purposes"] == ["newsletter"]
    assert receiver.of_type("consent.withdrawn") == []
    assert b"partial.parent" not in delivery.body.lower()


async def test_the_same_link_withdraws_the_rest_later(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    receiver: WebhookReceiver,
    db: asyncpg.Connection,
) -> None:
    granted = await grant_all(svc, api, mailbox, "en")
    first = await withdraw(svc, granted.withdraw_path, purposes=["newsletter"], confirm="yes")
    assert first.status_code == 200, first.text
    clock.advance(timedelta(days=2))

    page = await svc.client.get(granted.withdraw_path)
    assert list(checkboxes(page.text)) == ["tutoring", "progress_reports"]
    second = await withdraw(
        svc, granted.withdraw_path, purposes=["progress_reports"], confirm="yes"
    )
    assert second.status_code == 200, second.text
    record = (await svc.client.get(f"/v1/consents/{granted.consent_id}", headers=api)).json()
    assert record["purposes"] == ["tutoring"]
    assert [w["purpose"] for w in record["withdrawn_purposes"]] == [
        "newsletter",
        "progress_reports",
    ]
    first_at, second_at = (
        datetime.fromisoformat(w["withdrawn_at"]) for w in record["withdrawn_purposes"]
    )
    assert second_at - first_at == timedelta(days=2)
    assert (await verified_claims(svc, record["token"]))["purposes"] == ["tutoring"]
    assert len(await audit(db, "consent.purposes_withdrawn")) == 2

    # The export keeps what was withdrawn when.
    export = await svc.client.get(f"/v1/subjects/{SUBJECT}/export", headers=svc.staff("admin"))
    assert export.status_code == 200, export.text
    [consent] = export.json()["consents"]
    assert consent["withdrawn_purposes"] == record["withdrawn_purposes"]

    # The last purpose is the required one: the consent ends as a withdrawal always did.
    last = await withdraw(svc, granted.withdraw_path, purposes=["tutoring"], confirm="yes")
    assert last.status_code == 200, last.text
    assert "Your consent has been withdrawn" in last.text
    for purpose in ALL:
        answer = await check(svc.client, api, SUBJECT, purpose)
        assert (answer["allowed"], answer["status"]) == (False, "withdrawn")
    await svc.worker.deliver_due()
    [ended] = receiver.of_type("consent.withdrawn")
    assert verified_payload(ended)["data"]["purposes"] == ["tutoring"]
    assert (await svc.client.get(granted.withdraw_path)).status_code == 410


@pytest.mark.parametrize(
    "chosen",
    [["tutoring"], ALL, ["tutoring", "newsletter"]],
    ids=["required-only", "all", "required-and-optional"],
)
async def test_withdrawing_a_required_purpose_or_all_ends_the_consent(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    receiver: WebhookReceiver,
    db: asyncpg.Connection,
    chosen: list[str],
) -> None:
    granted = await grant_all(svc, api, mailbox, "en")
    response = await withdraw(svc, granted.withdraw_path, purposes=chosen, confirm="yes")
    assert response.status_code == 200, response.text
    assert "Your consent has been withdrawn" in response.text
    assert "Your consent remains for" not in response.text
    for purpose in ALL:
        answer = await check(svc.client, api, SUBJECT, purpose)
        assert (answer["allowed"], answer["status"], answer["token"]) == (False, "withdrawn", None)
    record = (await svc.client.get(f"/v1/consents/{granted.consent_id}", headers=api)).json()
    assert record["status"] == "withdrawn"
    assert record["purposes"] == ALL
    assert record["withdrawn_purposes"] == []
    assert len(await audit(db, "consent.withdrawn")) == 1
    assert await audit(db, "consent.purposes_withdrawn") == []
    await svc.worker.deliver_due()
    [delivery] = receiver.of_type("consent.withdrawn")
    assert verified_payload(delivery)["data"]["purposes"] == ALL
    assert receiver.of_type("consent.updated") == []


async def test_erasure_with_a_required_purpose_still_erases(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    granted = await grant_all(svc, api, mailbox, "en")
    response = await withdraw(
        svc, granted.withdraw_path, purposes=["tutoring"], confirm="yes", erase="yes"
    )
    assert response.status_code == 200, response.text
    assert "have been deleted" in response.text
    assert (await check(svc.client, api, SUBJECT))["status"] == "none"
    assert await db.fetchval("select count(*) from consents") == 0


# ---- form mistakes: explained in the request's language, next to their field; nothing changes


async def _state(db: asyncpg.Connection) -> tuple[Any, ...]:
    consent = await db.fetchrow(
        "select status, purposes, token, withdrawn_purposes::text, withdraw_failed_submissions "
        "from consents"
    )
    events = await db.fetchval("select count(*) from audit_events")
    messages = await db.fetchval("select count(*) from outbox")
    return tuple(consent), events, messages


@pytest.mark.parametrize("locale", ["en", "sl"])
@pytest.mark.parametrize(
    ("form", "error", "field"),
    [
        ({"confirm": "yes"}, "none_ticked", "purposes"),
        ({"confirm": "yes", "purposes": ["newsletter", "pony"]}, "unknown", "purposes"),
        ({"purposes": ["newsletter"]}, "confirm", "confirm"),
        ({"confirm": "yes", "purposes": ["newsletter"], "erase": "yes"}, "erase_partial", "erase"),
    ],
    ids=["nothing-ticked", "unknown-purpose", "not-confirmed", "erase-without-ending"],
)
async def test_a_form_mistake_is_explained_by_its_field_and_changes_nothing(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    db: asyncpg.Connection,
    locale: str,
    form: dict[str, Any],
    error: str,
    field: str,
) -> None:
    texts = TEXTS[locale]
    granted = await grant_all(svc, api, mailbox, locale)
    before = await _state(db)

    response = await withdraw(svc, granted.withdraw_path, **form)

    assert response.status_code == 422, response.text
    assert is_html(response)
    assert f'<html lang="{locale}">' in response.text
    message = texts[error]
    summary = re.search(r'<div class="alert" role="alert">(.*?)</div>', response.text, re.S)
    assert summary
    assert message in summary.group(1)
    by_field = re.search(
        rf'<p id="{field}-error" class="field-error">(.*?)</p>', response.text, re.S
    )
    assert by_field
    assert by_field.group(1) == message
    described = re.findall(r'aria-describedby="([^"]*)"', response.text)
    if field != "confirm":  # the button sits right under its error; the rest point to theirs
        assert any(f"{field}-error" in ids.split() for ids in described)
    assert not RAW_KEY.search(response.text)
    # The guardian's choices are kept; nothing else is ticked.
    ticked = [v for v, tag in checkboxes(response.text).items() if " checked" in tag]
    assert ticked == [p for p in ALL if p in form.get("purposes", [])]
    assert await _state(db) == before
    for purpose in ALL:
        assert (await check(svc.client, api, SUBJECT, purpose))["allowed"] is True


async def test_the_review_form_shows_the_attestation_error_by_the_checkbox(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await create_request(
        svc.client,
        api,
        subject_id=SUBJECT,
        email=GUARDIAN,
        birth_date=birth_date_years_ago(svc.clock),
        locale="sl",
    )
    await svc.worker.deliver_due()
    [message] = mailbox.to(RECIPIENT)
    path = "/" + guardian_link(message.text).split("/", 3)[3]
    page = await svc.client.get(path)
    response = await svc.client.post(
        path,
        data={"decision": "grant", "purposes": ["tutoring"], "_csrf_token": csrf_token(page.text)},
    )
    assert response.status_code == 422
    error = "Potrdite, da ste otrokov starš ali zakoniti skrbnik."
    fieldset = re.search(r'<fieldset class="attestation">(.*?)</fieldset>', response.text, re.S)
    assert fieldset
    assert f'<p id="attestation-error" class="field-error">{error}</p>' in fieldset.group(1)
    attestation = re.search(r'<input type="checkbox" id="attestation"[^>]*>', fieldset.group(1))
    assert attestation
    assert 'aria-describedby="attestation-error"' in attestation.group(0)
    assert 'aria-invalid="true"' in attestation.group(0)
    # Only the problem's own field is marked.
    assert response.text.count('aria-invalid="true"') == 1
    # The buttons: "Give consent" filled (primary), "Refuse consent" outlined (secondary).
    assert re.search(r'value="grant" class="button button-primary"', response.text)
    assert re.search(r'value="deny" class="button button-primary"', response.text)
