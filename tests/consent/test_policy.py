from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import msgspec
import pytest

from service.consent.policy import (
    COUNTRY_RULES,
    ISO_COUNTRY_CODES,
    AgeDecision,
    InvalidBirthDate,
    UnknownCountry,
    age_on,
    anniversary,
    decide_age,
    local_today,
    normalize_country,
    parse_birth_date,
    rule_for,
    validate_birth_date,
)
from service.settings import OPERATOR_MIN_AGE_DEFAULT

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CHILD_BORN = date(2014, 6, 1)  # 12 years old at NOW

# (country, age of consent with operator minimum 15, with operator minimum 13), from
# shared/jurisdictions.md; written out so that a wrong row in the table fails.
EXPECTED_AGES = [
    ("AT", 15, 14),
    ("BE", 15, 13),
    ("BG", 15, 14),
    ("CY", 15, 14),
    ("CZ", 15, 15),
    ("DE", 16, 16),
    ("DK", 15, 15),
    ("EE", 15, 13),
    ("ES", 15, 14),
    ("FI", 15, 13),
    ("FR", 15, 15),
    ("GR", 15, 15),
    ("HR", 16, 16),
    ("HU", 16, 16),
    ("IE", 16, 16),
    ("IT", 15, 14),
    ("LT", 15, 14),
    ("LU", 16, 16),
    ("LV", 15, 13),
    ("MT", 15, 13),
    ("NL", 16, 16),
    ("PL", 16, 16),
    ("PT", 15, 13),
    ("RO", 16, 16),
    ("SE", 15, 13),
    ("SI", 15, 15),
    ("SK", 16, 16),
    ("IS", 15, 13),
    ("LI", 16, 16),
    ("NO", 15, 13),
    ("GB", 15, 13),
    ("US", 15, 13),
    ("BR", 15, 13),
    ("CA", 15, 14),
    ("CN", 15, 14),
    ("KR", 15, 14),
    ("IN", 18, 18),
]


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC)


def test_expected_ages_cover_every_country_in_the_table() -> None:
    assert {country for country, _, _ in EXPECTED_AGES} == {r.country for r in COUNTRY_RULES}


@pytest.mark.parametrize(("country", "with_operator_15", "with_operator_13"), EXPECTED_AGES)
def test_age_of_consent_per_country(
    country: str, with_operator_15: int, with_operator_13: int
) -> None:
    for operator_min_age, expected in ((15, with_operator_15), (13, with_operator_13)):
        decision = decide_age(CHILD_BORN, country, NOW, operator_min_age)
        assert decision.age_of_consent == expected
        assert decision.jurisdiction == country
        assert decision.age == 12
        assert decision.consent_required is (expected > 12)
        assert decision.consent_required_until == (
            date(2014 + expected, 6, 1) if expected > 12 else None
        )


def test_table_rows_are_real_countries_with_loadable_zones() -> None:
    for row in COUNTRY_RULES:
        assert row.country in ISO_COUNTRY_CODES
        assert ZoneInfo(row.timezone).key == row.timezone
        assert row.basis


def test_each_country_keeps_one_timezone_across_its_rows() -> None:
    zones: dict[str, set[str]] = {}
    for row in COUNTRY_RULES:
        zones.setdefault(row.country, set()).add(row.timezone)
    assert all(len(z) == 1 for z in zones.values())


def test_iso_codes_are_the_249_assigned_ones() -> None:
    assert len(ISO_COUNTRY_CODES) == 249
    assert {"SI", "GB", "US", "JP", "AQ", "XK"} - ISO_COUNTRY_CODES == {"XK"}


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2023-12-31T12:00:00", 13),
        ("2023-12-31T23:30:00", 15),  # already 1 January 2024 in Copenhagen
        ("2024-01-01T12:00:00", 15),
    ],
)
def test_denmark_raised_its_age_on_2024_01_01(now: str, expected: int) -> None:
    assert decide_age(date(2012, 5, 5), "DK", at(now), 13).age_of_consent == expected


@pytest.mark.parametrize(
    ("now", "expected", "law"),
    [
        ("2023-01-25T12:00:00", 16, "before ZVOP-2"),
        ("2023-01-26T12:00:00", 15, "ZVOP-2 Art. 8"),
    ],
)
def test_slovenia_lowered_its_age_under_zvop2(now: str, expected: int, law: str) -> None:
    decision = decide_age(date(2010, 5, 5), "SI", at(now), 13)
    assert decision.age_of_consent == expected
    assert law in decision.basis


def test_rule_for_picks_the_latest_row_in_force() -> None:
    before = rule_for("si", date(2023, 1, 25))
    after = rule_for("SI", date(2023, 1, 26))
    assert before is not None
    assert after is not None
    assert (before.age, after.age) == (16, 15)
    assert rule_for("SI", date(2018, 5, 24)) is None
    assert rule_for("JP", date(2026, 1, 1)) is None
    with pytest.raises(UnknownCountry):
        rule_for("XX", date(2026, 1, 1))


def test_day_before_the_15th_birthday_needs_consent_until_it() -> None:
    decision = decide_age(date(2011, 3, 10), "SI", at("2026-03-09T12:00:00"), 15)
    assert decision == AgeDecision(
        consent_required=True,
        age=14,
        age_of_consent=15,
        jurisdiction="SI",
        basis="GDPR Art. 8(1); ZVOP-2 Art. 8 (SI)",
        consent_required_until=date(2026, 3, 10),
    )


def test_on_the_15th_birthday_no_consent_is_needed() -> None:
    decision = decide_age(date(2011, 3, 10), "SI", at("2026-03-10T12:00:00"), 15)
    assert decision.age == 15
    assert decision.consent_required is False
    assert decision.consent_required_until is None


def test_age_is_counted_on_calendar_dates() -> None:
    assert anniversary(date(2011, 3, 10), 15) == date(2026, 3, 10)
    assert age_on(date(2011, 3, 10), date(2026, 3, 9)) == 14
    assert age_on(date(2011, 3, 10), date(2026, 3, 10)) == 15
    assert age_on(date(2011, 3, 10), date(2011, 3, 10)) == 0
    with pytest.raises(ValueError, match="before the birth date"):
        age_on(date(2011, 3, 10), date(2011, 3, 9))


def test_born_on_29_february_reaches_an_age_on_1_march_in_a_common_year() -> None:
    born = date(2012, 2, 29)
    assert anniversary(born, 15) == date(2027, 3, 1)
    assert age_on(born, date(2027, 2, 28)) == 14
    assert age_on(born, date(2027, 3, 1)) == 15
    decision = decide_age(born, "SI", at("2027-02-28T12:00:00"), 15)
    assert decision.consent_required is True
    assert decision.consent_required_until == date(2027, 3, 1)


def test_born_on_29_february_reaches_an_age_on_29_february_in_a_leap_year() -> None:
    born = date(2012, 2, 29)
    assert anniversary(born, 16) == date(2028, 2, 29)
    assert age_on(born, date(2028, 2, 28)) == 15
    assert age_on(born, date(2028, 2, 29)) == 16


def test_birthday_counts_on_the_childs_local_day_in_slovenia() -> None:
    # 23:30 UTC is already 00:30 on 10 March in Ljubljana (UTC+1).
    decision = decide_age(date(2011, 3, 10), "SI", at("2026-03-09T23:30:00"), 15)
    assert decision.age == 15
    assert decision.consent_required is False


def test_birthday_counts_on_the_westernmost_day_in_the_us() -> None:
    # 05:00 UTC is 01:00 on 10 March in New York but still 9 March in Honolulu (UTC-10).
    decision = decide_age(date(2013, 3, 10), "US", at("2026-03-10T05:00:00"), 13)
    assert decision.age == 12
    assert decision.consent_required is True
    assert decision.consent_required_until == date(2026, 3, 10)


def test_birthday_counts_on_the_canary_islands_day_in_spain() -> None:
    # 23:30 UTC is 10 March in Madrid (UTC+1) but still 9 March on the Canaries (UTC+0).
    decision = decide_age(date(2012, 3, 10), "ES", at("2026-03-09T23:30:00"), 13)
    assert decision.age == 13
    assert decision.consent_required is True


def test_country_without_a_row_counts_the_day_at_utc_minus_12() -> None:
    decision = decide_age(date(2011, 3, 10), "JP", at("2026-03-10T11:30:00"), 15)
    assert decision.age == 14


def test_local_today_needs_an_aware_instant() -> None:
    assert local_today("Asia/Seoul", at("2026-03-09T15:30:00")) == date(2026, 3, 10)
    with pytest.raises(ValueError, match="timezone-aware"):
        local_today("Asia/Seoul", datetime(2026, 3, 9, 15, 30))


def test_birth_date_in_the_future_is_rejected() -> None:
    with pytest.raises(InvalidBirthDate, match="in the future"):
        validate_birth_date(date(2026, 11, 24), date(2026, 11, 23))
    with pytest.raises(InvalidBirthDate, match="in the future"):
        decide_age(date(2026, 11, 24), "SI", NOW, 15)
    validate_birth_date(date(2026, 11, 23), date(2026, 11, 23))


def test_birth_date_exactly_120_years_ago_is_the_oldest_accepted() -> None:
    validate_birth_date(date(1906, 11, 23), date(2026, 11, 23))
    with pytest.raises(InvalidBirthDate, match="more than 120 years ago"):
        validate_birth_date(date(1906, 11, 22), date(2026, 11, 23))
    with pytest.raises(InvalidBirthDate, match="more than 120 years ago"):
        decide_age(date(1900, 1, 1), "SI", NOW, 15)


def test_parse_birth_date_accepts_a_real_date() -> None:
    assert parse_birth_date("2011-03-10") == date(2011, 3, 10)
    assert parse_birth_date("2012-02-29") == date(2012, 2, 29)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2023-02-30", "not a real calendar date"),
        ("2023-13-01", "not a real calendar date"),
        ("2023-02-29", "not a real calendar date"),
        ("not-a-date", "YYYY-MM-DD"),
        ("", "YYYY-MM-DD"),
        ("20230101", "YYYY-MM-DD"),
        ("2023-W01-1", "YYYY-MM-DD"),
        ("2023-01-01T00:00", "YYYY-MM-DD"),
        ("\uff12\uff10\uff12\uff13-01-01", "YYYY-MM-DD"),
    ],
)
def test_parse_birth_date_rejects_anything_but_a_real_date(text: str, message: str) -> None:
    with pytest.raises(InvalidBirthDate, match=message):
        parse_birth_date(text)


@pytest.mark.parametrize(("code", "expected"), [("SI", "SI"), ("si", "SI"), (" gb\n", "GB")])
def test_normalize_country_accepts_iso_codes_in_any_case(code: str, expected: str) -> None:
    assert normalize_country(code) == expected


@pytest.mark.parametrize("code", ["XX", "", "svn", "EU", "s", "s\u0131", "\uff33\uff29"])
def test_normalize_country_rejects_unassigned_codes(code: str) -> None:
    with pytest.raises(UnknownCountry, match="ISO 3166-1"):
        normalize_country(code)


def test_uk_is_rejected_with_a_hint_to_gb() -> None:
    with pytest.raises(UnknownCountry, match="'GB'"):
        normalize_country("uk")


def test_decide_age_rejects_an_unknown_country() -> None:
    with pytest.raises(UnknownCountry):
        decide_age(CHILD_BORN, "XX", NOW, 15)


def test_real_country_without_a_row_gets_the_operator_minimum() -> None:
    for operator_min_age in (15, 13):
        decision = decide_age(CHILD_BORN, "jp", NOW, operator_min_age)
        assert decision.age_of_consent == operator_min_age
        assert decision.jurisdiction == "JP"
        assert decision.basis == (
            f"operator policy: guardian consent below {operator_min_age} "
            "(no national rule on record for JP)"
        )


def test_basis_cites_the_national_law_when_it_decides_or_ties() -> None:
    assert decide_age(CHILD_BORN, "SI", NOW, 15).basis == "GDPR Art. 8(1); ZVOP-2 Art. 8 (SI)"
    assert "(DE)" in decide_age(CHILD_BORN, "DE", NOW, 15).basis


def test_basis_cites_the_operator_policy_when_it_is_stricter() -> None:
    assert decide_age(CHILD_BORN, "US", NOW, 15).basis == (
        "operator policy: guardian consent below 15 (national rule: COPPA, 16 CFR 312.2: 13)"
    )
    assert decide_age(CHILD_BORN, "US", NOW, 13).basis == "COPPA, 16 CFR 312.2"


@pytest.mark.parametrize("operator_min_age", [12, 19, -1])
def test_operator_minimum_age_must_be_between_13_and_18(operator_min_age: int) -> None:
    with pytest.raises(ValueError, match="operator minimum age"):
        decide_age(CHILD_BORN, "SI", NOW, operator_min_age)


def test_operator_minimum_default_is_15() -> None:
    assert OPERATOR_MIN_AGE_DEFAULT == 15
    for operator_min_age in (13, 18):
        decide_age(CHILD_BORN, "SI", NOW, operator_min_age)


def test_decision_encodes_to_json() -> None:
    decision = decide_age(date(2011, 3, 10), "SI", at("2026-03-09T12:00:00"), 15)
    assert msgspec.json.decode(msgspec.json.encode(decision)) == {
        "consent_required": True,
        "age": 14,
        "age_of_consent": 15,
        "jurisdiction": "SI",
        "basis": "GDPR Art. 8(1); ZVOP-2 Art. 8 (SI)",
        "consent_required_until": "2026-03-10",
        "joint_consent": False,
        "joint_consent_basis": None,
    }
