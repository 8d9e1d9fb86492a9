"""The direct notice as the guardian receives it (the email through a real SMTP server) and sees
it (the review page): who the operator is, the DPO, each purpose's data, retention and
recipients, every right with the supervisory authority, and that no disclosure to third
parties is needed to use the service. In English and Slovenian, on the rendered text."""

from __future__ import annotations

import html
import re
from typing import Any

import asyncpg
import pytest

from service.consent.errors import FormError
from service.http.guardian_pages import FORM_ERRORS
from service.i18n import LOCALES, translator
from tests.support.credentials import OPERATOR_ENV
from tests.support.dates import birth_date_years_ago
from tests.support.flows import GRANT_ALL, create_request
from tests.support.guardian_client import csrf_token, guardian_link, path_of
from tests.support.service import Service

ADDRESS = OPERATOR_ENV["CONSENT_OPERATOR_ADDRESS"]
CONTACT = OPERATOR_ENV["CONSENT_OPERATOR_EMAIL"]
DPO = OPERATOR_ENV["CONSENT_OPERATOR_DPO_EMAIL"]
AUTHORITY, AUTHORITY_URL = "Informacijski pooblaščenec", "https://www.ip-rs.si"
RIGHTS = {
    "Access": "you can ask what data we hold and get a copy of it.",
    "Rectification": "you can have incorrect or incomplete data corrected.",
    "Erasure": "you can have the data deleted.",
    "Restriction": "you can have the use of the data limited while a question about it is settled.",
    "Objection": "you can object to a use of the data that is based on our legitimate interests.",
    "Portability": "you can receive the data in a machine-readable format, or have it sent to "
    "another provider.",
    "Withdrawal": "you can withdraw your consent at any time, as easily as you gave it; this "
    "does not affect what was done before the withdrawal.",
}
EXPECTED_RETENTION = {
    # the shipped catalogue: tutoring 730 days, the two optional purposes 365 days each
    "en": ["Kept for at most 2 years", "Kept for at most 1 year"],
    "sl": ["Hramba: največ 2 leti", "Hramba: največ 1 leto"],
    "de": ["Höchstens 2 Jahre gespeichert", "Höchstens 1 Jahr gespeichert"],
    "hr": ["Čuva se najviše 2 godine", "Čuva se najviše 1 godinu"],
    "it": ["Conservati al massimo 2 anni", "Conservati al massimo 1 anno"],
    "hu": ["Legfeljebb 2 évig őrizzük", "Legfeljebb 1 évig őrizzük"],
    "fr": ["Conservées au plus 2 ans", "Conservées au plus 1 an"],
    "es": ["Se conservan como máximo 2 años", "Se conservan como máximo 1 año"],
}


def visible_text(document: str) -> str:
    """The words of an HTML document, tags dropped, entities decoded, spaces collapsed."""
    without_tags = re.sub(r"<[^>]+>", " ", document)
    return " ".join(html.unescape(without_tags).split())


def flat(text: str) -> str:
    return " ".join(text.split())


def expected_phrases(locale: str) -> list[str]:
    t = translator(locale)
    operator = OPERATOR_ENV["CONSENT_OPERATOR_NAME"]
    phrases = [
        operator,
        ADDRESS,
        CONTACT,
        DPO,
        t("Postal address"),
        t("Data protection officer"),
        t(
            "Your child can use %(operator)s without your agreeing to any disclosure of their "
            "data to third parties.",
            operator=operator,
        ),
        t("Not disclosed to anyone outside %(operator)s.", operator=operator),
        t(
            "you can lodge a complaint with the supervisory authority: %(authority)s.",
            authority=f"{AUTHORITY} ({AUTHORITY_URL})",
        ),
        t("Complaint"),
        t(
            "To use any of these rights, write to %(email)s or to our postal address.",
            email=CONTACT,
        ),
        *EXPECTED_RETENTION[locale],
    ]
    for name, text in RIGHTS.items():
        phrases += [t(name), t(text)]
    # every use rests on consent, so the objection right says how to stop one: withdraw it
    phrases.append(t("The uses listed here rest on your consent: withdrawing it stops them."))
    for category in ("account", "lessons", "progress", "guardian_contact"):
        phrases.append(t.data_category(category))
    return [flat(p) for p in phrases]


async def request_email(svc: Service, api: dict[str, str], mailbox: Any, locale: str) -> Any:
    email = f"notice.{locale}@example.com"
    await create_request(
        svc.client,
        api,
        subject_id=f"child-notice-{locale}",
        email=email,
        birth_date=birth_date_years_ago(svc.clock),
        locale=locale,
    )
    assert await svc.worker.deliver_due() == 1
    [message] = mailbox.to(email)
    return message


@pytest.mark.parametrize("locale", LOCALES)
async def test_the_request_email_carries_the_whole_direct_notice(
    svc: Service, api: dict[str, str], mailbox: Any, locale: str
) -> None:
    message = await request_email(svc, api, mailbox, locale)
    text, rendered_html = flat(message.text), visible_text(message.html)

    for phrase in expected_phrases(locale):
        assert phrase in text, phrase
        assert phrase in rendered_html, phrase
    for raw_id in ("guardian_contact", "progress_reports", "retention_days"):
        assert raw_id not in text
        assert raw_id not in rendered_html


@pytest.mark.parametrize("locale", LOCALES)
async def test_the_review_page_names_the_operator_and_every_right(
    svc: Service, api: dict[str, str], mailbox: Any, locale: str
) -> None:
    message = await request_email(svc, api, mailbox, locale)
    page = await svc.client.get(path_of(guardian_link(message.text)))
    assert page.status_code == 200
    words = visible_text(page.text)

    t = translator(locale)
    # the sentence on disclosure comes only with a disclosure purpose, and none is asked here
    no_disclosure = flat(
        t(
            "Your child can use %(operator)s without your agreeing to any disclosure of their "
            "data to third parties.",
            operator=OPERATOR_ENV["CONSENT_OPERATOR_NAME"],
        )
    )
    for phrase in expected_phrases(locale):
        if phrase == no_disclosure:
            assert phrase not in words
        else:
            assert phrase in words, phrase
    # The operator, the decision and each purpose's essentials are in view; who we are and the
    # rights fold away under one summary, so the form stays near the top on a phone.
    before, rest = page.text.split('<details class="who-and-rights">', 1)
    details, after = rest.split("</details>", 1)
    outside = visible_text(before + after)
    assert OPERATOR_ENV["CONSENT_OPERATOR_NAME"] in outside
    for retention in EXPECTED_RETENTION[locale]:
        assert retention in outside
    assert visible_text(details).startswith(t("Who we are and your rights"))
    assert ADDRESS in visible_text(details)
    assert flat(t("Notice version: %(label)s", label="")) in visible_text(details)
    for raw_id in ("guardian_contact", "retention_days"):
        assert raw_id not in words


async def test_a_grant_under_a_notice_that_changed_since_the_page_was_shown_is_asked_again(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    message = await request_email(svc, api, mailbox, "sl")
    path = path_of(guardian_link(message.text))
    page = await svc.client.get(path)
    shown = re.search(r'name="notice_version" value="([^"]+)"', page.text)
    assert shown is not None
    current = svc.runtime.notice("sl").version
    assert shown.group(1) == current
    grant = {**GRANT_ALL, "_csrf_token": csrf_token(page.text)}

    stale = await svc.client.post(
        path, data={**grant, "notice_version": "2026-11-01+sl.000000000000"}
    )

    assert stale.status_code == 422
    t = translator("sl")
    assert t(FORM_ERRORS[FormError.NOTICE_CHANGED]) in visible_text(stale.text)
    assert await db.fetchval("select count(*) from consents") == 0

    again = await svc.client.post(
        path, data={**grant, "_csrf_token": csrf_token(stale.text), "notice_version": current}
    )
    assert again.status_code == 200, again.text
    assert await db.fetchval("select policy_version from consents") == current
