"""The zone a guardian reads times in: one per country of the age table, a real IANA zone; for a
country whose age rule counts in its westernmost zone, the zone where most of it lives."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from service.consent import policy


def test_every_country_of_the_table_has_a_real_display_zone() -> None:
    for row in policy.COUNTRY_RULES:
        zone = policy.display_timezone(row.country)
        assert ZoneInfo(zone).key == zone


@pytest.mark.parametrize(
    ("country", "zone"),
    [
        ("SI", "Europe/Ljubljana"),
        ("si", "Europe/Ljubljana"),
        ("US", "America/New_York"),
        ("CA", "America/Toronto"),
        ("BR", "America/Sao_Paulo"),
        ("ES", "Europe/Madrid"),
        ("PT", "Europe/Lisbon"),
        ("CN", "Asia/Shanghai"),
        ("JP", "UTC"),  # no row: UTC, named as such
        ("XX", "UTC"),
    ],
)
def test_display_zones(country: str, zone: str) -> None:
    assert policy.display_timezone(country) == zone


def test_the_age_rule_still_counts_in_the_westernmost_zone() -> None:
    assert policy.timezone_for("US") == "Pacific/Honolulu"
    assert policy.timezone_for("ES") == "Atlantic/Canary"
