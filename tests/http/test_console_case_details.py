"""A child's case in the console as support reads it: times in the operator's zone with the
zone named, each timeline action and each message topic with a label in the staff member's
language (the raw id kept beside it), and what the child told the app."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.clock import ManualClock
from service.dev.identity_provider import DevIdentityProvider
from service.dev.pgcluster import free_port
from service.settings import ConfigError, Settings, load_settings
from tests.support.browser import live_server
from tests.support.console import console_settings, console_test_marks, sign_in
from tests.support.credentials import make_api_key
from tests.support.flows import create_request

pytestmark = console_test_marks()

SUBJECT = "child-details-1"
HINT = "mia_2016"
# A winter moment: Ljubljana is on Central European Standard Time, New York on Eastern.
WINTER = datetime(2026, 1, 15, 11, 30, tzinfo=UTC)


async def _case_page(
    base_env: dict[str, str],
    issuer: str,
    db: asyncpg.Connection,
    locale: str,
    **env: str,
) -> str:
    port = free_port()
    settings = console_settings(base_env, port, issuer, **env)
    app = create_app(settings, clock=ManualClock(WINTER))
    async with live_server(app, port) as base_url:
        key = await make_api_key(db, "consent:request")
        async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as api:
            await create_request(
                api,
                {"Authorization": f"Bearer {key}"},
                subject_id=SUBJECT,
                email="parent.details@example.com",
                birth_date="2015-04-01",
                child_hint=HINT,
            )
        headers = {"Accept-Language": locale}
        async with httpx.AsyncClient(base_url=base_url, timeout=10.0, headers=headers) as staff:
            await sign_in(staff, base_url, "support")
            page = await staff.get(f"/console/subjects/{SUBJECT}")
    assert page.status_code == 200, page.text
    return page.text


@pytest.fixture
def identity_issuer(identity_provider: DevIdentityProvider) -> str:
    return identity_provider.issuer


async def test_the_case_reads_in_the_operators_zone_with_labels_and_the_childs_words(
    base_env: dict[str, str], identity_issuer: str, db: asyncpg.Connection
) -> None:
    page = await _case_page(base_env, identity_issuer, db, "en")
    # 11:30 UTC is 12:30 in Ljubljana, the default operator country's zone, named.
    assert "12:30 (Central European Standard Time)" in page
    assert "11:30" not in page
    assert "Request opened" in page
    assert '<code class="raw-id">request.created</code>' in page
    assert "Consent request to the guardian" in page
    assert '<code class="raw-id">guardian_request</code>' in page
    assert "What the child told the app" in page
    assert f"<q>{HINT}</q>" in page


async def test_the_labels_follow_the_staff_members_language(
    base_env: dict[str, str], identity_issuer: str, db: asyncpg.Connection
) -> None:
    page = await _case_page(base_env, identity_issuer, db, "sl")
    assert "Zahteva odprta" in page
    assert '<code class="raw-id">request.created</code>' in page
    assert "Prošnja za soglasje skrbniku" in page
    assert "Kaj je otrok povedal aplikaciji" in page


async def test_an_operator_elsewhere_reads_its_own_zone(
    base_env: dict[str, str], identity_issuer: str, db: asyncpg.Connection
) -> None:
    page = await _case_page(base_env, identity_issuer, db, "en", CONSENT_OPERATOR_COUNTRY="us")
    assert "06:30 (Eastern Standard Time)" in page


def test_an_operator_country_that_is_not_a_country_code_stops_the_start(
    base_env: dict[str, str],
) -> None:
    with pytest.raises(ConfigError, match="CONSENT_OPERATOR_COUNTRY"):
        load_settings({**base_env, "CONSENT_OPERATOR_COUNTRY": "Slovenia"})
    settings: Settings = load_settings({**base_env, "CONSENT_OPERATOR_COUNTRY": "de"})
    assert settings.operator_country == "DE"
