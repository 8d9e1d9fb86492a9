"""The written retention policy is generated from the values the worker enforces: change a
retention setting and both what the sweep purges (moved by the ManualClock) and what
``consent-service retention-policy`` prints and ``GET /privacy/retention`` shows change with it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from service.clock import ManualClock
from service.consent.purposes import load_catalogue
from service.consent.retention import retention_policy
from service.settings import load_settings
from tests.support.cli import run_cli
from tests.support.credentials import make_api_key
from tests.support.dates import DAY, SECOND
from tests.support.flows import open_request
from tests.support.guardian_client import open_and_submit
from tests.support.service import start_service

GUARDIAN = "policy.parent@example.com"


async def deny_and_sweep_at(
    base_env: dict[str, str],
    clock: ManualClock,
    mailbox: Any,
    db: asyncpg.Connection,
    *,
    retention_denied: timedelta,
) -> dict[str, Any]:
    """Deny a request under ``CONSENT_RETENTION_DENIED``; sweep just before and just after."""
    env = {"CONSENT_RETENTION_DENIED": str(int(retention_denied.total_seconds()))}
    async with start_service(base_env, clock, env) as svc:
        api = {"Authorization": f"Bearer {await make_api_key(db)}"}
        request_id, link = await open_request(
            svc, api, mailbox, subject_id=f"child-policy-{uuid.uuid4().hex[:8]}", email=GUARDIAN
        )
        denied = await open_and_submit(svc.client, link, {"decision": "deny"})
        assert denied.status_code == 200, denied.text
        decided_at = clock.now()
        clock.set(decided_at + retention_denied - SECOND)
        before = (await svc.worker.sweep())["purged_requests"]
        still_there = await db.fetchval(
            "select guardian_email_enc is not null from consent_requests where id = $1",
            uuid.UUID(request_id),
        )
        clock.set(decided_at + retention_denied + SECOND)
        after = (await svc.worker.sweep())["purged_requests"]
        gone = await db.fetchval(
            "select guardian_email_enc is null from consent_requests where id = $1",
            uuid.UUID(request_id),
        )
        page_en = await svc.client.get("/privacy/retention")
        page_sl = await svc.client.get("/privacy/retention", headers={"Accept-Language": "sl"})
        markdown = await svc.client.get(
            "/privacy/retention?locale=sl", headers={"Accept": "text/markdown"}
        )
    cli = await run_cli("retention-policy", env={**base_env, **env})
    cli_sl = await run_cli("retention-policy", "--locale", "sl", env={**base_env, **env})
    return {
        "purged_before": before,
        "kept_before": still_there,
        "purged_after": after,
        "gone_after": gone,
        "page_en": page_en,
        "page_sl": page_sl,
        "markdown": markdown,
        "cli": cli,
        "cli_sl": cli_sl,
    }


@pytest.mark.parametrize(
    ("retention_denied", "english", "slovenian"),
    [
        (30 * DAY, "30 days after the refusal.", "30 dni po zavrnitvi."),
        (2 * DAY, "2 days after the refusal.", "2 dneva po zavrnitvi."),
    ],
    ids=["default", "two-days"],
)
async def test_a_retention_setting_changes_the_purge_the_command_and_the_page_alike(
    base_env: dict[str, str],
    clock: ManualClock,
    mailbox: Any,
    db: asyncpg.Connection,
    retention_denied: timedelta,
    english: str,
    slovenian: str,
) -> None:
    seen = await deny_and_sweep_at(base_env, clock, mailbox, db, retention_denied=retention_denied)

    assert seen["purged_before"] == 0
    assert seen["kept_before"] is True
    assert seen["purged_after"] == 1
    assert seen["gone_after"] is True

    cli = seen["cli"]
    assert cli.code == 0, cli.stderr
    assert cli.lines[0] == "# Retention policy"
    assert f"- **How long:** {english}" in cli.lines
    cli_sl = seen["cli_sl"]
    assert cli_sl.code == 0, cli_sl.stderr
    assert cli_sl.lines[0] == "# Pravilnik o hrambi podatkov"
    assert f"- **Kako dolgo:** {slovenian}" in cli_sl.lines

    page_en = seen["page_en"]
    assert page_en.status_code == 200, page_en.text
    assert page_en.headers["content-type"].startswith("text/html")
    assert english in page_en.text
    assert "<h1>Retention policy</h1>" in page_en.text
    assert '<html lang="en">' in page_en.text
    page_sl = seen["page_sl"]
    assert page_sl.status_code == 200, page_sl.text
    assert slovenian in page_sl.text
    assert '<html lang="sl">' in page_sl.text
    assert "Retention policy" not in page_sl.text

    markdown = seen["markdown"]
    assert markdown.status_code == 200, markdown.text
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.headers["content-language"] == "sl"
    assert markdown.text == cli_sl.stdout


def test_the_policy_holds_every_enforced_value(base_env: dict[str, str], tmp_path: Any) -> None:
    settings = load_settings(
        {
            **base_env,
            "CONSENT_REQUEST_TTL": "86400",
            "CONSENT_RETENTION_DENIED": "3600",
            "CONSENT_RETENTION_EXPIRED": str(3 * 86400),
            "CONSENT_RETENTION_WITHDRAWN": str(45 * 86400),
            "CONSENT_MAX_VALIDITY": str(200 * 86400),
            "CONSENT_LAPSING_NOTICE_DAYS": "14",
        }
    )
    policy = retention_policy(settings, load_catalogue(None))
    assert policy.pending_request == DAY
    assert policy.denied_request == timedelta(hours=1)
    assert policy.closed_request == policy.lapsed_consent == 3 * DAY
    assert policy.undelivered_message == 3 * DAY
    assert policy.ended_consent == 45 * DAY
    assert policy.consent_max_validity == 200 * DAY
    assert policy.lapsing_notice == 14 * DAY
    assert [(p.id, p.kept_for) for p in policy.purposes] == [
        ("tutoring", 730 * DAY),
        ("progress_reports", 365 * DAY),
        ("newsletter", 365 * DAY),
        ("research_sharing", 365 * DAY),
    ]


async def test_the_page_names_the_purposes_and_what_is_kept_after_erasure(
    base_env: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    async with start_service(base_env, clock) as svc:
        html = await svc.client.get("/privacy/retention?locale=sl")
        markdown = await svc.client.get(
            "/privacy/retention", headers={"Accept": "text/markdown, text/html;q=0.5"}
        )
    assert html.status_code == 200, html.text
    assert "<td>Inštrukcije</td>" in html.text
    assert "<td>730 dni</td>" in html.text
    assert "Po izbrisu ali preklicu" in html.text
    assert html.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in html.headers["content-security-policy"]
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "| Tutoring |" in markdown.text
    assert "| 730 days |" in markdown.text
    assert "## After erasure or withdrawal" in markdown.text
    assert "30 days before a consent lapses" in markdown.text


async def test_the_slovenian_policy_has_no_english_line_left(base_env: dict[str, str]) -> None:
    english = await run_cli("retention-policy", env=base_env)
    slovenian = await run_cli("retention-policy", "--locale", "sl", env=base_env)
    assert english.code == 0, english.stderr
    assert slovenian.code == 0, slovenian.stderr
    shared = set(english.lines) & set(slovenian.lines)
    assert shared <= {"", "|---|---|---|"}, shared
    assert len(english.lines) == len(slovenian.lines)
