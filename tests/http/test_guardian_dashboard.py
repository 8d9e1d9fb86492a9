"""The guardian dashboard over HTTP: a sign-in link by email with a neutral answer, its limits,
its single use and expiry, the session's idle timeout and sign-out, one guardian never seeing
another's child, per-purpose withdrawal with its confirm step, CSRF, and the short-lived links
to a consent's rights and address pages.

Real PostgreSQL, the real SMTP server (the mail catcher), the app over HTTP; time moves only
through the ManualClock.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import asyncpg

from service.consent.dashboard import (
    SESSION_IDLE_TIMEOUT,
    SIGN_IN_LINK_TTL,
    SIGN_IN_LINKS_PER_ADDRESS_PER_DAY,
)
from tests.support.dashboard import (
    SIGN_IN_LINK,
    ask_for_link,
    granted_consent,
    sign_in_dashboard,
    sign_in_path,
)
from tests.support.dates import birth_date_years_ago
from tests.support.flows import check, create_request
from tests.support.guardian_client import csrf_token, guardian_link
from tests.support.service import Service, browser

PARENT = "dash.parent@example.com"
OTHER = "dash.other@example.com"
CONSENT_FIELD = re.compile(r'name="consent" value="([0-9a-f-]{36})"')


async def _family(svc: Service, api: dict[str, str], mailbox: Any) -> None:
    await granted_consent(svc, api, mailbox, "dash-child-a", PARENT, "anna_k")
    await granted_consent(svc, api, mailbox, "dash-child-b", PARENT, "bor_k")
    await granted_consent(svc, api, mailbox, "dash-child-x", OTHER, "xaver_z")


async def test_the_answer_is_the_same_for_any_address_and_only_a_consenting_one_gets_a_link(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await granted_consent(svc, api, mailbox, "dash-neutral", PARENT, "nina")
    known = await ask_for_link(svc, PARENT)
    unknown = await ask_for_link(svc, "nobody.here@example.com")
    assert known.status_code == unknown.status_code == 200
    strip = re.compile(r'name="_csrf_token" value="[^"]+"')
    assert strip.sub("", known.text) == strip.sub("", unknown.text)
    assert "If this address has given consent for a child" in known.text
    assert await svc.worker.deliver_due() == 1
    assert len(mailbox.to(PARENT)) == 1
    assert mailbox.to("nobody.here@example.com") == []


async def test_a_malformed_address_is_a_form_error_and_sends_nothing(
    svc: Service, mailbox: Any
) -> None:
    answer = await ask_for_link(svc, "not an address")
    assert answer.status_code == 422
    assert 'id="email-error"' in answer.text
    assert await svc.worker.deliver_due() == 0


async def test_the_dashboard_lists_every_child_of_the_address_and_withdraws_one_purpose(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await _family(svc, api, mailbox)
    path = await sign_in_path(svc, mailbox, PARENT)
    # the link's page may be opened (a mail scanner) any number of times before the button
    for _ in range(2):
        assert (await svc.client.get(path)).status_code == 200
    signed_in = await sign_in_dashboard(svc, svc.client, path)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/guardian/dashboard"
    cookie = signed_in.headers["set-cookie"]
    assert "guardian_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    assert "Path=/guardian" in cookie

    board = await svc.client.get("/guardian/dashboard")
    assert board.status_code == 200, board.text
    assert "anna_k" in board.text
    assert "bor_k" in board.text
    assert "xaver_z" not in board.text
    consent_a = (await check(svc.client, api, "dash-child-a"))["consent_id"]
    assert f'value="{consent_a}"' in board.text

    # the first press only asks to confirm: nothing changes
    ask = await svc.client.post(
        "/guardian/dashboard/withdraw",
        data={
            "consent": consent_a,
            "purpose": "newsletter",
            "_csrf_token": csrf_token(board.text),
        },
    )
    assert ask.status_code == 200, ask.text
    assert 'name="confirm" value="yes"' in ask.text
    assert (await check(svc.client, api, "dash-child-a", "newsletter"))["allowed"] is True

    done = await svc.client.post(
        "/guardian/dashboard/withdraw",
        data={
            "consent": consent_a,
            "purpose": "newsletter",
            "confirm": "yes",
            "_csrf_token": csrf_token(ask.text),
        },
    )
    assert done.status_code == 200, done.text
    assert "Part of your consent has been withdrawn" in done.text
    assert "anna_k" in done.text
    assert (await check(svc.client, api, "dash-child-a", "newsletter"))["allowed"] is False
    assert (await check(svc.client, api, "dash-child-a", "tutoring"))["allowed"] is True
    assert (await check(svc.client, api, "dash-child-b", "newsletter"))["allowed"] is True
    assert (await check(svc.client, api, "dash-child-x", "newsletter"))["allowed"] is True
    events = await db.fetch(
        "select actor from audit_events where subject_id = 'dash-child-a' "
        "and action = 'consent.purposes_withdrawn'"
    )
    assert [e["actor"] for e in events] == ["guardian"]
    # the guardian is told by email, with the dashboard as the way back (no long-lived link)
    assert await svc.worker.deliver_due() >= 1
    [told] = mailbox.to(PARENT)
    assert "/guardian/sign-in/" not in told.text

    board = await svc.client.get("/guardian/dashboard")
    assert "Withdrawn" in board.text


async def test_a_sign_in_link_works_once(svc: Service, api: dict[str, str], mailbox: Any) -> None:
    await granted_consent(svc, api, mailbox, "dash-once", PARENT, "olga")
    path = await sign_in_path(svc, mailbox, PARENT)
    page = await svc.client.get(path)
    token = csrf_token(page.text)
    assert (await svc.client.post(path, data={"_csrf_token": token})).status_code == 303
    again = await svc.client.post(path, data={"_csrf_token": token})
    assert again.status_code == 410
    assert "already been used" in again.text
    assert (await svc.client.get(path)).status_code == 410


async def test_a_sign_in_link_expires(svc: Service, api: dict[str, str], mailbox: Any) -> None:
    await granted_consent(svc, api, mailbox, "dash-expiry", PARENT, "ema")
    path = await sign_in_path(svc, mailbox, PARENT)
    page = await svc.client.get(path)
    svc.clock.advance(SIGN_IN_LINK_TTL + timedelta(seconds=1))
    late = await svc.client.post(path, data={"_csrf_token": csrf_token(page.text)})
    assert late.status_code == 410
    assert "expired" in late.text
    assert "guardian_session=" not in late.headers.get("set-cookie", "")
    assert (await svc.client.get("/guardian/dashboard")).status_code == 401


async def test_an_unknown_sign_in_link_is_a_page_not_an_error(svc: Service) -> None:
    for path in ("/guardian/sign-in/" + "A" * 43, "/guardian/sign-in/short"):
        answer = await svc.client.get(path)
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")


async def test_a_session_ends_when_idle_and_on_sign_out(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await granted_consent(svc, api, mailbox, "dash-idle", PARENT, "idle_kid_q")
    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, PARENT))
    svc.clock.advance(SESSION_IDLE_TIMEOUT - timedelta(minutes=1))
    assert (await svc.client.get("/guardian/dashboard")).status_code == 200
    svc.clock.advance(SESSION_IDLE_TIMEOUT - timedelta(minutes=1))
    assert (await svc.client.get("/guardian/dashboard")).status_code == 200
    svc.clock.advance(SESSION_IDLE_TIMEOUT + timedelta(seconds=1))
    idle = await svc.client.get("/guardian/dashboard")
    assert idle.status_code == 401
    assert "idle_kid_q" not in idle.text
    assert "You are signed out" in idle.text

    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, PARENT))
    board = await svc.client.get("/guardian/dashboard")
    assert board.status_code == 200
    out = await svc.client.post("/guardian/sign-out", data={"_csrf_token": csrf_token(board.text)})
    assert out.status_code == 200
    assert (await svc.client.get("/guardian/dashboard")).status_code == 401


async def test_one_guardian_cannot_act_on_anothers_child(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await _family(svc, api, mailbox)
    other_consent = (await check(svc.client, api, "dash-child-x"))["consent_id"]
    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, PARENT))
    board = await svc.client.get("/guardian/dashboard")
    token = csrf_token(board.text)
    for consent in (other_consent, "not-a-uuid"):
        for purpose_form in (
            {"purpose": "newsletter", "confirm": "yes"},
            {"purpose": "tutoring", "confirm": "yes"},
        ):
            refused = await svc.client.post(
                "/guardian/dashboard/withdraw",
                data={"consent": consent, **purpose_form, "_csrf_token": token},
            )
            assert refused.status_code == 404, refused.text
            assert "xaver_z" not in refused.text
        manage = await svc.client.post(
            "/guardian/dashboard/manage",
            data={"consent": consent, "page": "rights", "_csrf_token": token},
        )
        assert manage.status_code == 404
    answer = await check(svc.client, api, "dash-child-x", "newsletter")
    assert answer["allowed"] is True


async def test_a_form_without_its_csrf_token_changes_nothing(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await granted_consent(svc, api, mailbox, "dash-csrf", PARENT, "cene")
    consent = (await check(svc.client, api, "dash-csrf"))["consent_id"]
    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, PARENT))
    refused = await svc.client.post(
        "/guardian/dashboard/withdraw",
        data={"consent": consent, "purpose": "newsletter", "confirm": "yes"},
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert (await check(svc.client, api, "dash-csrf", "newsletter"))["allowed"] is True
    # a sign-in link pressed from another site's form does not sign in
    path = await sign_in_path(svc, mailbox, PARENT)
    other = browser(svc.app)
    async with other:
        forged = await other.post(path, data={})
        assert forged.status_code == 403
    assert (await sign_in_dashboard(svc, svc.client, path)).status_code == 303


async def test_an_address_gets_at_most_five_links_a_day_and_the_answer_never_changes(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await granted_consent(svc, api, mailbox, "dash-limit", PARENT, "lea")
    first = await ask_for_link(svc, PARENT)
    for _ in range(SIGN_IN_LINKS_PER_ADDRESS_PER_DAY):
        over = await ask_for_link(svc, PARENT)
        # the same neutral page: a refusal here would tell that the address has consented
        assert over.status_code == first.status_code == 200
        assert "If this address has given consent for a child" in over.text
    assert await svc.worker.deliver_due() == SIGN_IN_LINKS_PER_ADDRESS_PER_DAY
    # a day after the first link, the address may have a new one
    svc.clock.advance(timedelta(days=1, seconds=1))
    assert (await ask_for_link(svc, PARENT)).status_code == 200
    assert await svc.worker.deliver_due() == 1


async def test_the_network_limit_holds_across_addresses(svc: Service) -> None:
    answers = [await ask_for_link(svc, f"n{i}@example.com") for i in range(12)]
    assert [answer.status_code for answer in answers[:10]] == [200] * 10
    assert [answer.status_code for answer in answers[10:]] == [429, 429]
    assert int(answers[10].headers["retry-after"]) > 0
    assert "Too many sign-in links" in answers[10].text


async def test_rights_and_address_pages_open_with_a_short_lived_link(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await granted_consent(svc, api, mailbox, "dash-rights", PARENT, "rok")
    consent = (await check(svc.client, api, "dash-rights"))["consent_id"]
    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, PARENT))
    board = await svc.client.get("/guardian/dashboard")
    for page_name, heading in (("rights", "Your data and your rights"), ("address", "Change")):
        moved = await svc.client.post(
            "/guardian/dashboard/manage",
            data={"consent": consent, "page": page_name, "_csrf_token": csrf_token(board.text)},
        )
        assert moved.status_code == 303
        location = moved.headers["location"]
        assert location.startswith(f"/guardian/{page_name}/")
        opened = await svc.client.get(location)
        assert opened.status_code == 200, opened.text
        assert heading in opened.text
        assert "rok" in opened.text
    svc.clock.advance(SIGN_IN_LINK_TTL + timedelta(seconds=1))
    assert (await svc.client.get(location)).status_code == 404


async def test_consent_pages_name_the_account_and_a_single_purpose_is_ticked(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await create_request(
        svc.client,
        api,
        subject_id="dash-single",
        email=PARENT,
        birth_date=birth_date_years_ago(svc.clock),
        purposes=["tutoring"],
        child_hint="samo",
    )
    await svc.worker.deliver_due()
    [message] = mailbox.to(PARENT)
    link = guardian_link(message.text)
    from tests.support.guardian_client import open_and_submit

    result = await open_and_submit(
        svc.client, link, {"decision": "grant", "purposes": ["tutoring"], "attestation": "yes"}
    )
    assert result.status_code == 200
    assert "samo" in result.text
    await svc.worker.deliver_due()
    [confirmation] = mailbox.to(PARENT)[1:]
    assert "This consent concerns the account “samo”." in confirmation.text
    assert "samo" in confirmation.html
    withdraw_path = re.search(r'href="(/guardian/withdraw/[A-Za-z0-9_-]+)"', result.text)
    assert withdraw_path
    page = await svc.client.get(withdraw_path.group(1))
    assert "samo" in page.text
    assert re.search(r'name="purposes" value="tutoring" checked', page.text)
    for other in ("rights", "address"):
        shown = await svc.client.get(withdraw_path.group(1).replace("withdraw", other))
        assert "samo" in shown.text
    withdrawn = await svc.client.post(
        withdraw_path.group(1),
        data={"purposes": ["tutoring"], "confirm": "yes", "_csrf_token": csrf_token(page.text)},
    )
    assert withdrawn.status_code == 200
    assert "samo" in withdrawn.text


async def test_withdrawing_the_required_purpose_ends_that_consent_only(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await _family(svc, api, mailbox)
    consent_a = (await check(svc.client, api, "dash-child-a"))["consent_id"]
    await sign_in_dashboard(svc, svc.client, await sign_in_path(svc, mailbox, PARENT))
    board = await svc.client.get("/guardian/dashboard")
    form = {"consent": consent_a, "purpose": "tutoring", "_csrf_token": csrf_token(board.text)}
    ask = await svc.client.post("/guardian/dashboard/withdraw", data=form)
    assert ask.status_code == 200
    assert "withdrawing it ends your consent altogether" in ask.text
    assert (await check(svc.client, api, "dash-child-a"))["status"] == "granted"
    done = await svc.client.post("/guardian/dashboard/withdraw", data={**form, "confirm": "yes"})
    assert done.status_code == 200, done.text
    assert "Your consent has been withdrawn" in done.text
    ended = await check(svc.client, api, "dash-child-a")
    assert (ended["status"], ended["allowed"]) == ("withdrawn", False)
    assert (await check(svc.client, api, "dash-child-b"))["allowed"] is True
    # erased on withdrawal (the default): the address no longer leads to that child
    board = await svc.client.get("/guardian/dashboard")
    assert "anna_k" not in board.text
    assert "bor_k" in board.text
    again = await svc.client.post(
        "/guardian/dashboard/withdraw",
        data={**form, "confirm": "yes", "_csrf_token": csrf_token(board.text)},
    )
    assert again.status_code == 404


async def test_the_link_and_the_dashboard_speak_the_browsers_language(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await granted_consent(svc, api, mailbox, "dash-sl", PARENT, "zala")
    async with browser(svc.app) as client:
        client.headers["Accept-Language"] = "sl-SI,sl;q=0.9"
        form = await client.get("/guardian")
        assert "Pošljite mi povezavo za prijavo" in form.text
        sent = await client.post(
            "/guardian", data={"email": PARENT, "_csrf_token": csrf_token(form.text)}
        )
        assert "povezava za prijavo že na poti" in sent.text
        assert await svc.worker.deliver_due() == 1
        [message] = mailbox.to(PARENT)
        assert message.subject.endswith("vaša povezava za prijavo")
        match = SIGN_IN_LINK.search(message.text)
        assert match
        page = await client.get(match.group(1))
        assert "Nadaljuj" in page.text
        await client.post(match.group(1), data={"_csrf_token": csrf_token(page.text)})
        board = await client.get("/guardian/dashboard")
        assert board.status_code == 200
        assert "Soglasja za vaše otroke" in board.text
        assert "Račun »zala«" in board.text
