"""When a rights request is due: calendar days, or working days for a complaint; configured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.consent.data_requests import due_at
from service.settings import ConfigError, Settings, load_settings
from service.states import DataRequestKind

FRIDAY_LATE = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)


@pytest.fixture
def env(key_files: dict[str, str]) -> dict[str, str]:
    return {
        "CONSENT_DATABASE_URL": "postgresql://consent@127.0.0.1:5432/consent",
        "CONSENT_SMTP_URL": "smtp://127.0.0.1:2525",
        "CONSENT_MAIL_FROM": "consent@tutoring.example",
        "CONSENT_PUBLIC_URL": "https://consent.example/",
        "CONSENT_SIGNING_KEY_FILE": key_files["signing"],
        "CONSENT_DATA_KEY": key_files["data_key"],
    }


def test_defaults_are_the_operators_promises(env: dict[str, str]) -> None:
    settings = load_settings(env)
    assert (settings.data_request_due_days, settings.complaint_due_working_days) == (10, 5)


@pytest.mark.parametrize("kind", [k for k in DataRequestKind if k != DataRequestKind.COMPLAINT])
def test_every_request_but_a_complaint_is_due_in_calendar_days(
    env: dict[str, str], kind: DataRequestKind
) -> None:
    # ten days, weekends included: the promise counts days, not working days
    assert due_at(kind, FRIDAY_LATE, load_settings(env)) == FRIDAY_LATE + timedelta(days=10)


def test_a_complaint_counts_weekdays_in_utc(env: dict[str, str]) -> None:
    settings = load_settings(env)
    # received Friday 23:30 UTC: Monday to Friday of the next week
    assert due_at(DataRequestKind.COMPLAINT, FRIDAY_LATE, settings) == datetime(
        2026, 12, 11, 23, 30, tzinfo=UTC
    )
    sunday = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    assert due_at(DataRequestKind.COMPLAINT, sunday, settings) == datetime(
        2026, 12, 11, 8, 0, tzinfo=UTC
    )
    # public holidays count as working days (25 and 26 December): earlier, never later
    christmas_eve = datetime(2026, 12, 24, 9, 0, tzinfo=UTC)
    assert due_at(DataRequestKind.COMPLAINT, christmas_eve, settings) == datetime(
        2026, 12, 31, 9, 0, tzinfo=UTC
    )


def test_longer_working_day_periods_skip_every_weekend(env: dict[str, str]) -> None:
    settings = load_settings({**env, "CONSENT_COMPLAINT_DUE_WORKING_DAYS": "10"})
    monday = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert due_at(DataRequestKind.COMPLAINT, monday, settings) == monday + timedelta(days=14)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONSENT_DATA_REQUEST_DUE_DAYS", "0"),
        ("CONSENT_DATA_REQUEST_DUE_DAYS", "31"),
        ("CONSENT_DATA_REQUEST_DUE_DAYS", "ten"),
        ("CONSENT_COMPLAINT_DUE_WORKING_DAYS", "0"),
        ("CONSENT_COMPLAINT_DUE_WORKING_DAYS", "21"),
    ],
)
def test_invalid_periods_name_the_variable(env: dict[str, str], variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({**env, variable: value})
    assert str(error.value).startswith(f"{variable}:")


def test_settings_keep_the_periods(env: dict[str, str]) -> None:
    settings: Settings = load_settings(
        {**env, "CONSENT_DATA_REQUEST_DUE_DAYS": "30", "CONSENT_COMPLAINT_DUE_WORKING_DAYS": "20"}
    )
    assert (settings.data_request_due_days, settings.complaint_due_working_days) == (30, 20)
