"""The guardian's rights page, reached with the withdrawal link: each request from submission to
completion as a tracked data request, the copy of the data read back from the real SMTP server
(the guardian's own address only, never an earlier guardian's), and the page's texts in every
shipped language."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from html import unescape
from typing import Any, cast

import asyncpg

from service.clock import ManualClock
from service.consent.data_requests import due_at
from service.db.audit_events import verify_chain
from service.i18n import format_datetime, translator
from service.security.personal_data import normalize_email
from tests.support.flows import check, create_request, grant_via_link, granted_consent
from tests.support.guardian_client import csrf_token, guardian_link
from tests.support.service import Service
from tests.support.stored_data import personal_traces

GUARDIAN = "Rights.Parent@Example.COM"
EARLIER_GUARDIAN = "earlier.guardian@example.com"
SUBJECT = "child-rights-page-1"


def _rights_path(withdraw_path: str) -> str:
    return withdraw_path.replace("/guardian/withdraw/", "/guardian/rights/")


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _post(svc: Service, withdraw_path: str, action: str, **form: Any) -> Any:
    page = await svc.client.get(_rights_path(withdraw_path))
    assert page.status_code == 200, page.text
    return await svc.client.post(
        f"{_rights_path(withdraw_path)}/{action}",
        data={**form, "_csrf_token": csrf_token(page.text)},
    )


async def _data_requests(svc: Service) -> list[dict[str, Any]]:
    listed = await svc.client.get("/v1/data-requests", headers=svc.staff("support"))
    assert listed.status_code == 200, listed.text
    return cast(list[dict[str, Any]], listed.json()["data_requests"])


def _attachment(message: Any) -> dict[str, Any]:
    parsed = cast(EmailMessage, message_from_bytes(message.raw, policy=policy.default))
    [part] = list(parsed.iter_attachments())
    assert part.get_content_type() == "application/json"
    assert part.get_filename() == "data-copy.json"
    return cast(dict[str, Any], json.loads(part.get_content()))


async def _two_guardians_over_time(svc: Service, api: dict[str, str], mailbox: Any) -> str:
    """An earlier guardian's consent, superseded by the current guardian's; the current
    guardian's withdrawal path."""
    await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=EARLIER_GUARDIAN)
    svc.clock.advance(timedelta(hours=1))
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    return granted.withdraw_path


async def test_the_withdrawal_page_links_to_the_rights_page(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    page = await svc.client.get(granted.withdraw_path)
    assert f'href="{_rights_path(granted.withdraw_path)}"' in page.text
    rights = await svc.client.get(_rights_path(granted.withdraw_path))
    assert rights.status_code == 200
    token = granted.withdraw_path.rsplit("/", 1)[1]
    assert f'href="/guardian/address/{token}"' in rights.text
    assert svc.settings.operator_email in rights.text
    assert svc.settings.operator_supervisory_authority.name in unescape(rights.text)
    # viewing the page changes nothing
    assert await _data_requests(svc) == []


async def test_a_copy_goes_to_the_guardians_own_address_with_only_their_own_data(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    withdraw_path = await _two_guardians_over_time(svc, api, mailbox)
    mailbox.clear()
    clock.advance(timedelta(minutes=5))
    asked_at = clock.now()

    done = await _post(svc, withdraw_path, "copy", kind="access")
    assert done.status_code == 200, done.text
    assert "We have sent you a copy of your data" in done.text
    [tracked] = await _data_requests(svc)
    assert (tracked["kind"], tracked["channel"]) == ("access", "guardian_page")
    assert (tracked["status"], tracked["answered_on_time"]) == ("done", True)
    assert _moment(tracked["received_at"]) == asked_at
    assert _moment(tracked["due_at"]) == asked_at + timedelta(days=10)
    assert _moment(tracked["closed_at"]) == asked_at
    assert tracked["subject_id"] == SUBJECT

    assert await svc.worker.deliver_due() >= 1
    [message] = [m for m in mailbox.to(normalize_email(GUARDIAN)) if "copy" in m.subject]
    assert not [m for m in mailbox.to(EARLIER_GUARDIAN) if "copy" in m.subject]
    copy = _attachment(message)
    assert EARLIER_GUARDIAN not in json.dumps(copy).lower()
    assert EARLIER_GUARDIAN.split("@")[0] not in message.text + message.html
    assert [r["guardian_email"] for r in copy["requests"]] == [normalize_email(GUARDIAN)]
    assert [c["status"] for c in copy["consents"]] == ["granted"]
    assert copy["data_requests"] == []
    assert copy["guardian"] == copy["consents"][0]["guardian"]
    assert {e["action"] for e in copy["events"]} >= {"request.created", "consent.granted"}
    for section in ("purposes", "categories", "retention", "rights", "source"):
        assert copy["information"][section]
    assert copy["information"]["automated_decision_making"]["used"] is False

    # the operator's own export still holds both guardians; asking for the copy was recorded
    export = await svc.client.get(f"/v1/subjects/{SUBJECT}/export", headers=svc.staff("admin"))
    emails = sorted(r["guardian_email"] for r in export.json()["requests"])
    assert emails == sorted([normalize_email(GUARDIAN), EARLIER_GUARDIAN])
    actions = [e["action"] for e in export.json()["events"]]
    assert actions.count("subject.exported") == 1  # the guardian's copy; this one comes after
    assert "data_request.done" in actions
    assert (await verify_chain(db))[1] is None


async def test_a_portability_copy_is_tracked_as_portability(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    done = await _post(svc, granted.withdraw_path, "copy", kind="portability")
    assert done.status_code == 200, done.text
    [tracked] = await _data_requests(svc)
    assert (tracked["kind"], tracked["status"]) == ("portability", "done")
    mailbox.clear()
    await svc.worker.deliver_due()
    [message] = [m for m in mailbox.to(normalize_email(GUARDIAN)) if "copy" in m.subject]
    assert _attachment(message)["subject_id"] == SUBJECT


async def test_erasure_needs_confirming_then_erases_at_once(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    unconfirmed = await _post(svc, granted.withdraw_path, "erase")
    assert unconfirmed.status_code == 422
    assert 'id="erase_confirm-error"' in unconfirmed.text
    assert await _data_requests(svc) == []

    asked_at = clock.now()
    done = await _post(svc, granted.withdraw_path, "erase", erase_confirm="yes")
    assert done.status_code == 200, done.text
    assert "has been deleted" in done.text
    [tracked] = await _data_requests(svc)
    assert (tracked["kind"], tracked["status"], tracked["erased"]) == ("erasure", "done", True)
    assert tracked["subject_id"] is None
    assert _moment(tracked["received_at"]) == asked_at
    assert _moment(tracked["due_at"]) == asked_at + timedelta(days=10)
    assert tracked["answered_on_time"] is True
    assert await db.fetchval("select count(*) from consent_requests") == 0
    assert await personal_traces(db, texts=[SUBJECT, normalize_email(GUARDIAN)]) == []
    assert (await check(svc.client, api, SUBJECT))["allowed"] is False
    # the link is used up with the consent
    assert (await svc.client.get(_rights_path(granted.withdraw_path))).status_code == 404


async def test_an_objection_stops_the_purpose_at_once(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    nothing = await _post(svc, granted.withdraw_path, "object")
    assert nothing.status_code == 422
    required = await _post(svc, granted.withdraw_path, "object", purposes=["tutoring"])
    assert required.status_code == 422
    assert await _data_requests(svc) == []

    asked_at = clock.now()
    done = await _post(svc, granted.withdraw_path, "object", purposes=["newsletter"])
    assert done.status_code == 200, done.text
    assert "Newsletter" in done.text
    [tracked] = await _data_requests(svc)
    assert (tracked["kind"], tracked["status"]) == ("objection", "done")
    assert _moment(tracked["received_at"]) == asked_at
    assert _moment(tracked["due_at"]) == asked_at + timedelta(days=10)
    assert (await check(svc.client, api, SUBJECT, "newsletter"))["allowed"] is False
    assert (await check(svc.client, api, SUBJECT, "tutoring"))["allowed"] is True


async def test_a_complaint_is_acknowledged_with_its_due_date_and_answered_by_staff(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    empty = await _post(svc, granted.withdraw_path, "complaint", complaint="   ")
    assert empty.status_code == 422
    assert 'id="complaint-error"' in empty.text

    asked_at = clock.now()
    text = "You refused to send me the copy of my son's progress reports."
    acknowledged = await _post(svc, granted.withdraw_path, "complaint", complaint=text)
    assert acknowledged.status_code == 200, acknowledged.text
    due = due_at_of_complaint(svc, asked_at)
    assert unescape(acknowledged.text).count(format_datetime(due, "en")) == 1
    [tracked] = await _data_requests(svc)
    assert (tracked["kind"], tracked["status"], tracked["note"]) == ("complaint", "open", text)
    assert _moment(tracked["received_at"]) == asked_at
    assert _moment(tracked["due_at"]) == due
    assert due - asked_at >= timedelta(days=5)

    clock.advance(timedelta(days=1))
    answered = await svc.client.patch(
        f"/v1/data-requests/{tracked['id']}",
        json={"status": "done", "outcome": "Copy sent after all."},
        headers=svc.staff("support", sub="dora"),
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["answered_on_time"] is True


def due_at_of_complaint(svc: Service, received: datetime) -> datetime:
    from service.states import DataRequestKind

    return due_at(DataRequestKind.COMPLAINT, received, svc.settings)


async def test_an_unanswered_complaint_becomes_overdue_in_the_list_and_the_metric(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    complained = await _post(svc, granted.withdraw_path, "complaint", complaint="Wrong answer.")
    assert complained.status_code == 200, complained.text
    overdue = await svc.client.get(
        "/v1/data-requests", params={"overdue": "true"}, headers=svc.staff("support")
    )
    assert overdue.json()["data_requests"] == []

    clock.advance(timedelta(days=8))  # past five working days, whatever the weekday
    overdue = await svc.client.get(
        "/v1/data-requests", params={"overdue": "true"}, headers=svc.staff("support")
    )
    [late] = overdue.json()["data_requests"]
    assert (late["kind"], late["channel"], late["overdue"]) == ("complaint", "guardian_page", True)
    metrics = (await svc.client.get("/metrics")).text
    assert re.search(r"^consent_data_requests_overdue 1(\.0)?$", metrics, re.M), metrics


async def test_the_rights_page_and_its_answers_in_the_guardians_language(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock
) -> None:
    for number, locale in enumerate(["en", "sl"]):
        subject = f"child-rights-page-lang-{number}"
        await create_request(
            svc.client, api, subject_id=subject, email=GUARDIAN, birth_date="2016-03-03",
            locale=locale,
        )  # fmt: skip
        mailbox.clear()
        await svc.worker.deliver_due()
        [message] = mailbox.to(normalize_email(GUARDIAN))
        withdraw_path = await grant_via_link(svc.client, guardian_link(message.text))
        language = translator(locale)
        page = await svc.client.get(_rights_path(withdraw_path))
        text = unescape(page.text)
        for english in (
            "Your data and your rights",
            "Get a copy of your data",
            "Correct your email address",
            "Object to a use of your child's data",
            "Delete your child's data",
            "Complain about a decision",
            "Who to contact",
        ):
            assert language.gettext(english) in text
        if locale == "sl":
            assert "Vaši podatki in vaše pravice" in text
        withdraw_page = unescape((await svc.client.get(withdraw_path)).text)
        assert language.gettext("Your data and your rights") in withdraw_page

        asked_at = clock.now()
        acknowledged = await _post(svc, withdraw_path, "complaint", complaint="Please explain.")
        due = due_at_of_complaint(svc, asked_at)
        answer = unescape(acknowledged.text)
        assert language.gettext("We have received your complaint") in answer
        assert (
            language.gettext(
                "We will decide on it by %(due)s at the latest.", due=format_datetime(due, locale)
            )
            in answer
        )

        await _post(svc, withdraw_path, "copy", kind="access")
        mailbox.clear()
        await svc.worker.deliver_due()
        [copy] = [m for m in mailbox.to(normalize_email(GUARDIAN)) if m.raw.count(b"data-copy")]
        assert copy.subject == language.gettext(
            "%(operator)s: the copy of your data", operator=svc.settings.operator_name
        )
        body = language.gettext(
            "If you did not ask for this copy, reply to this email.",
        )
        assert body in copy.text
        information = _attachment(copy)["information"]
        assert information["locale"] == locale
        assert information["rights"][0]["name"] == language.gettext("Access")


async def test_refused_submissions_on_the_rights_page_strike_the_withdrawal_link(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    rights = _rights_path(granted.withdraw_path)
    forged = {"complaint": "Forged.", "_csrf_token": "0" * 128}
    statuses = [
        (await svc.client.post(f"{rights}/{action}", data=forged)).status_code
        for action in ("complaint", "copy", "erase", "object", "complaint")
    ]
    assert statuses == [403, 403, 403, 403, 429]
    # the link is locked for the rights page and the withdrawal page alike; nothing recorded
    assert (await svc.client.get(rights)).status_code == 429
    assert (await svc.client.get(granted.withdraw_path)).status_code == 429
    assert await db.fetchval("select count(*) from data_requests") == 0
