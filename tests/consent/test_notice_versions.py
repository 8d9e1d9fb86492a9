"""Notice versions are derived from the text the guardian was shown, and every version's text
stays printable: ``policy_version`` = the catalogue's label + the language + a hash of that
language's notice; ``consent-service notice show`` prints it; the export carries it."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncpg
import jwt
import msgspec

from service.clock import ManualClock
from service.consent.notice import build_notice
from service.db import notice_versions
from tests.support.cli import run_cli
from tests.support.dates import birth_date_years_ago
from tests.support.flows import check, create_request, granted_consent
from tests.support.service import Service, start_service

VERSION = re.compile(r"2026-11-01\+(en|sl)\.[0-9a-f]{12}")
NEW_ADDRESS = "Slovenska cesta 1, 1000 Ljubljana, Slovenia"


async def test_a_consent_carries_the_version_of_the_notice_shown(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    granted = await granted_consent(
        svc, api, mailbox, subject_id="child-version", email="version@example.com"
    )
    notice = svc.runtime.notice("en")
    assert VERSION.fullmatch(notice.version)

    request_version = await db.fetchval(
        "select policy_version from consent_requests where id = $1::uuid", granted.request_id
    )
    record = await svc.client.get(f"/v1/consents/{granted.consent_id}", headers=api)
    token = (await check(svc.client, api, "child-version"))["token"]
    claims = jwt.decode(token, options={"verify_signature": False})

    assert request_version == notice.version
    assert record.json()["policy_version"] == notice.version
    assert claims["policy_version"] == notice.version
    stored = await notice_versions.find(db, notice.version)
    assert stored is not None
    assert stored.text == notice.text
    assert stored.locale == "en"


async def test_notice_show_prints_the_exact_text_and_refuses_an_unknown_version(
    svc: Service, api: dict[str, str], db: asyncpg.Connection, database_url: str
) -> None:
    await create_request(
        svc.client,
        api,
        subject_id="child-show",
        email="show@example.com",
        birth_date=birth_date_years_ago(svc.clock),
        locale="sl",
    )
    notice = svc.runtime.notice("sl")

    shown = await run_cli(
        "notice", "show", notice.version, "--locale", "sl", database_url=database_url
    )
    assert shown.code == 0, shown.stderr
    assert shown.stdout == notice.text
    assert "Vaše pravice" in shown.stdout

    unknown = await run_cli(
        "notice", "show", "2026-11-01+sl.000000000000", "--locale", "sl", database_url=database_url
    )
    assert unknown.code != 0
    assert unknown.stdout == ""
    assert "no notice version '2026-11-01+sl.000000000000'" in unknown.stderr

    wrong_locale = await run_cli(
        "notice", "show", notice.version, "--locale", "en", database_url=database_url
    )
    assert wrong_locale.code != 0
    assert "in locale 'en'" in wrong_locale.stderr


async def test_a_changed_notice_is_a_new_version_and_the_old_text_stays_printable(
    base_env: dict[str, str],
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    database_url: str,
) -> None:
    first = await granted_consent(svc, api, mailbox, subject_id="child-v1", email="v1@example.com")
    old = svc.runtime.notice("en")

    async with start_service(base_env, clock, {"CONSENT_OPERATOR_ADDRESS": NEW_ADDRESS}) as changed:
        second = await granted_consent(
            changed, api, mailbox, subject_id="child-v2", email="v2@example.com"
        )
        new = changed.runtime.notice("en")

    assert new.label == old.label  # the operator's label did not change, the text did
    assert new.version != old.version
    versions = {
        row["id"]: row["policy_version"]
        for row in await db.fetch(
            "select id::text, policy_version from consents where id = any($1::uuid[])",
            [first.consent_id, second.consent_id],
        )
    }
    assert versions == {first.consent_id: old.version, second.consent_id: new.version}

    printed_old, printed_new = await asyncio.gather(
        run_cli("notice", "show", old.version, "--locale", "en", database_url=database_url),
        run_cli("notice", "show", new.version, "--locale", "en", database_url=database_url),
    )
    assert printed_old.stdout == old.text
    assert "Trubarjeva cesta 7" in printed_old.stdout
    assert NEW_ADDRESS not in printed_old.stdout
    assert NEW_ADDRESS in printed_new.stdout


def test_every_source_of_the_text_changes_the_version(svc: Service) -> None:
    settings, catalogue = svc.settings, svc.runtime.catalogue
    base = build_notice(settings, catalogue, "en")
    assert build_notice(settings, catalogue, "en").version == base.version  # deterministic

    renamed = msgspec.structs.replace(settings, operator_dpo_email="privacy.officer@tutor.si")
    relabelled = msgspec.structs.replace(catalogue, notice_version="2027-01-01")
    purposes = [
        msgspec.structs.replace(catalogue.purposes[0], retention_days=365),
        *catalogue.purposes[1:],
    ]
    shorter = msgspec.structs.replace(catalogue, purposes=purposes)
    versions = {
        base.version,
        build_notice(renamed, catalogue, "en").version,
        build_notice(settings, relabelled, "en").version,
        build_notice(settings, shorter, "en").version,
        build_notice(settings, catalogue, "sl").version,
    }
    assert len(versions) == 5
    assert build_notice(settings, relabelled, "en").version.startswith("2027-01-01+en.")


async def test_the_export_carries_the_notice_texts_of_the_subject(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await granted_consent(svc, api, mailbox, subject_id="child-export", email="exp@example.com")
    notice = svc.runtime.notice("en")

    export = await svc.client.get("/v1/subjects/child-export/export", headers=svc.staff("admin"))

    assert export.status_code == 200, export.text
    [shown] = export.json()["notices"]
    assert shown["version"] == notice.version
    assert shown["locale"] == "en"
    assert shown["text"] == notice.text
