"""Who needs a guardian's consent: ages of digital consent per country and the date rules.

Pure: no I/O and no settings. The caller passes the clock and the operator's minimum age.
"""

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import msgspec

from service.settings import OPERATOR_MIN_AGE_RANGE
from service.states import VerificationMethod

MAX_AGE_YEARS = 120
# Abuse limit (design 5a): consent requests per guardian email address in 24 hours, whichever
# way the address came (the app's request, or the parent's own device through the handoff).
GUARDIAN_REQUESTS_PER_DAY = 5

# The day begins last at UTC-12, so a child of a country without a row is never counted a day
# older than they may really be.
FALLBACK_TIMEZONE = "Etc/GMT+12"
# Times shown to a guardian of a country without a row: in UTC, named as such.
DISPLAY_FALLBACK_TIMEZONE = "UTC"

# Start of the table for rows without a known change date, not the date each law took effect.
_TABLE_START = date(2018, 5, 25)


class InvalidBirthDate(ValueError):
    """The birth date is not a real date, lies in the future or more than 120 years back."""


class UnknownCountry(ValueError):
    """The code is not an officially assigned ISO 3166-1 alpha-2 code."""


class CountryRule(msgspec.Struct, frozen=True, kw_only=True):
    country: str
    age: int
    basis: str
    effective_from: date
    # The country's westernmost main zone: its calendar day starts last there, so a birthday
    # never counts early anywhere in the country.
    timezone: str
    # The zone times are shown in to the guardian (pages, emails), where it is not ``timezone``:
    # where most of the country lives (its capital's zone in the IANA tz database's
    # zone1970.tab, or the most populous zone of a country spanning several).
    display_timezone: str | None = None
    # Set where the child must consent together with the guardian: the law that says so.
    joint_consent_basis: str | None = None
    # The verification methods that may authorise disclosing the child's data to third parties
    # (None: any method that may authorise consent), and the law that limits them.
    disclosure_methods: frozenset[VerificationMethod] | None = None
    disclosure_basis: str | None = None

    @property
    def joint_consent(self) -> bool:
        return self.joint_consent_basis is not None


class AgeDecision(msgspec.Struct, frozen=True, kw_only=True):
    consent_required: bool
    age: int
    age_of_consent: int
    jurisdiction: str
    basis: str
    consent_required_until: date | None
    # The child must consent too (the app attests it with the request's ``child_agreed``).
    joint_consent: bool = False
    joint_consent_basis: str | None = None


def _rule(
    country: str,
    age: int,
    timezone: str,
    basis: str,
    since: date = _TABLE_START,
    *,
    joint_consent_basis: str | None = None,
    disclosure_methods: frozenset[VerificationMethod] | None = None,
    disclosure_basis: str | None = None,
    display_timezone: str | None = None,
) -> CountryRule:
    return CountryRule(
        country=country,
        age=age,
        basis=basis,
        effective_from=since,
        timezone=timezone,
        joint_consent_basis=joint_consent_basis,
        disclosure_methods=disclosure_methods,
        disclosure_basis=disclosure_basis,
        display_timezone=display_timezone,
    )


_GDPR_DEFAULT = "GDPR Art. 8(1) default of 16 (no national derogation)"

COUNTRY_RULES: tuple[CountryRule, ...] = (
    # EU member states, GDPR Art. 8(1) and the national act that sets the age.
    _rule("AT", 14, "Europe/Vienna", "GDPR Art. 8(1); DSG § 4(4) (AT)"),
    _rule("BE", 13, "Europe/Brussels", "GDPR Art. 8(1); Law of 30 July 2018 Art. 7 (BE)"),
    _rule("BG", 14, "Europe/Sofia", "GDPR Art. 8(1); Personal Data Protection Act Art. 25c (BG)"),
    _rule("CY", 14, "Asia/Nicosia", "GDPR Art. 8(1); Law 125(I)/2018 s. 8 (CY)"),
    _rule("CZ", 15, "Europe/Prague", "GDPR Art. 8(1); Act No. 110/2019 Coll. s. 7 (CZ)"),
    _rule("DE", 16, "Europe/Berlin", f"{_GDPR_DEFAULT} (DE)"),
    _rule("DK", 13, "Europe/Copenhagen", "GDPR Art. 8(1); Databeskyttelsesloven § 6(3) (DK)"),
    _rule(
        "DK",
        15,
        "Europe/Copenhagen",
        "GDPR Art. 8(1); Databeskyttelsesloven § 6(3) as amended from 2024-01-01 (DK)",
        since=date(2024, 1, 1),
    ),
    _rule("EE", 13, "Europe/Tallinn", "GDPR Art. 8(1); Isikuandmete kaitse seadus § 8 (EE)"),
    _rule(
        "ES",
        14,
        "Atlantic/Canary",
        "GDPR Art. 8(1); LOPDGDD Art. 7 (ES)",
        display_timezone="Europe/Madrid",
    ),
    _rule("FI", 13, "Europe/Helsinki", "GDPR Art. 8(1); Tietosuojalaki 1050/2018 s. 5 (FI)"),
    _rule(
        "FR",
        15,
        "Europe/Paris",
        "GDPR Art. 8(1); Loi Informatique et Libertés Art. 45 (FR)",
        joint_consent_basis=(
            "Loi n° 78-17 Informatique et Libertés Art. 45 (FR): below 15, consent is given "
            "jointly by the child and the holder(s) of parental responsibility"
        ),
    ),
    _rule("GR", 15, "Europe/Athens", "GDPR Art. 8(1); Law 4624/2019 Art. 21 (GR)"),
    _rule("HR", 16, "Europe/Zagreb", "GDPR Art. 8(1); GDPR Implementation Act Art. 19 (HR)"),
    _rule("HU", 16, "Europe/Budapest", f"{_GDPR_DEFAULT} (HU)"),
    _rule("IE", 16, "Europe/Dublin", "GDPR Art. 8(1); Data Protection Act 2018 s. 31 (IE)"),
    _rule("IT", 14, "Europe/Rome", "GDPR Art. 8(1); Codice privacy Art. 2-quinquies (IT)"),
    _rule("LT", 14, "Europe/Vilnius", "GDPR Art. 8(1); Law on Legal Protection of PD Art. 6 (LT)"),
    _rule("LU", 16, "Europe/Luxembourg", f"{_GDPR_DEFAULT} (LU)"),
    _rule("LV", 13, "Europe/Riga", "GDPR Art. 8(1); Personal Data Processing Law s. 33 (LV)"),
    _rule("MT", 13, "Europe/Malta", "GDPR Art. 8(1); S.L. 586.11 (MT)"),
    _rule("NL", 16, "Europe/Amsterdam", "GDPR Art. 8(1); UAVG Art. 5 (NL)"),
    _rule("PL", 16, "Europe/Warsaw", f"{_GDPR_DEFAULT} (PL)"),
    _rule(
        "PT",
        13,
        "Atlantic/Azores",
        "GDPR Art. 8(1); Lei 58/2019 Art. 16 (PT)",
        display_timezone="Europe/Lisbon",
    ),
    _rule("RO", 16, "Europe/Bucharest", f"{_GDPR_DEFAULT} (RO)"),
    _rule("SE", 13, "Europe/Stockholm", "GDPR Art. 8(1); Dataskyddslag 2018:218 ch. 2 s. 4 (SE)"),
    _rule("SI", 16, "Europe/Ljubljana", f"{_GDPR_DEFAULT} (SI, before ZVOP-2)"),
    _rule(
        "SI",
        15,
        "Europe/Ljubljana",
        "GDPR Art. 8(1); ZVOP-2 Art. 8 (SI)",
        since=date(2023, 1, 26),
    ),
    _rule("SK", 16, "Europe/Bratislava", f"{_GDPR_DEFAULT} (SK)"),
    # EEA: the GDPR applies through the EEA Agreement.
    _rule("IS", 13, "Atlantic/Reykjavik", "GDPR Art. 8(1); Act No. 90/2018 Art. 10 (IS)"),
    _rule("LI", 16, "Europe/Vaduz", f"{_GDPR_DEFAULT} (LI)"),
    _rule("NO", 13, "Europe/Oslo", "GDPR Art. 8(1); Personopplysningsloven § 5 (NO)"),
    # Other regimes.
    _rule("GB", 13, "Europe/London", "UK GDPR Art. 8(1); DPA 2018 s. 9"),
    _rule(
        "US",
        13,
        "Pacific/Honolulu",
        "COPPA, 16 CFR 312.2",
        # No method the service offers today is strong enough: email plus is only for an
        # operator that does not disclose.
        disclosure_methods=frozenset(),
        disclosure_basis=(
            "COPPA, 16 CFR 312.5(a)(2) as amended by 90 FR 16918 (2025): separate verifiable "
            "consent to disclose to third parties; 16 CFR 312.5(b)(2): email plus only for an "
            "operator that does not disclose"
        ),
        # Eastern Time: the zone of most of the population (US Census Bureau); the zone is
        # always named with the time, so a guardian elsewhere can tell.
        display_timezone="America/New_York",
    ),
    # Brasília time: the legal time of the capital and of most of the population.
    _rule(
        "BR",
        12,
        "America/Rio_Branco",
        "LGPD Art. 14; ECA Art. 2 (BR)",
        display_timezone="America/Sao_Paulo",
    ),
    # Quebec is the strictest province; one country-wide age keeps the rule fail closed.
    _rule(
        "CA",
        14,
        "America/Vancouver",
        "Quebec Law 25, CQLR c. P-39.1 s. 4.1 (CA)",
        # Eastern Time: Quebec's, Ontario's and the capital's (and most of the population's).
        display_timezone="America/Toronto",
    ),
    # China officially keeps one time (Beijing), but Xinjiang time is in wide local use.
    _rule("CN", 14, "Asia/Urumqi", "PIPL Art. 31 (CN)", display_timezone="Asia/Shanghai"),
    _rule("KR", 14, "Asia/Seoul", "PIPA Art. 22-2 (KR)"),
    _rule("IN", 18, "Asia/Kolkata", "DPDP Act 2023 s. 9; DPDP Rules 2025 r. 10 (IN)"),
)

# Officially assigned ISO 3166-1 alpha-2 codes (as of ISO/TC 46 N1108, 2023-04-05).
_ISO_ALPHA2_ASSIGNED = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
"""
ISO_COUNTRY_CODES: frozenset[str] = frozenset(_ISO_ALPHA2_ASSIGNED.split())

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def anniversary(birth_date: date, years: int) -> date:
    """The day a person born on birth_date reaches `years`.

    Someone born on 29 February reaches an age on 1 March in a non-leap year: the common
    legal reading (the age is reached once the day after 28 February has begun).
    """
    try:
        return birth_date.replace(year=birth_date.year + years)
    except ValueError:
        return date(birth_date.year + years, 3, 1)


def age_on(birth_date: date, day: date) -> int:
    """Completed years on `day`, counted on calendar dates."""
    if day < birth_date:
        raise ValueError("day is before the birth date")
    years = day.year - birth_date.year
    return years if anniversary(birth_date, years) <= day else years - 1


def local_today(country_rule_tz: str, now: datetime) -> date:
    """The calendar day in the zone `country_rule_tz` at the aware instant `now`."""
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(ZoneInfo(country_rule_tz)).date()


def parse_birth_date(text: str) -> date:
    """A birth date written as YYYY-MM-DD (RFC 3339 full-date), as the HTTP API accepts it."""
    if not _ISO_DATE.fullmatch(text):
        raise InvalidBirthDate("birth date must be written as YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidBirthDate("birth date is not a real calendar date") from None


def validate_birth_date(birth_date: date, today: date) -> None:
    """Reject a birth date after `today` or more than 120 years before it.

    The messages leave the date out: they may reach logs, and a birth date is personal data.
    """
    if birth_date > today:
        raise InvalidBirthDate("birth date is in the future")
    if anniversary(birth_date, MAX_AGE_YEARS) < today:
        raise InvalidBirthDate(f"birth date is more than {MAX_AGE_YEARS} years ago")


def normalize_country(code: str) -> str:
    """The assigned ISO 3166-1 alpha-2 code for `code`, ignoring case and surrounding blanks."""
    # Only ASCII is upper-cased: a Turkish dotless i upper-cases to "I", so "s\u0131" would
    # pass as "SI".
    cleaned = code.strip().upper() if code.isascii() else code.strip()
    if cleaned in ISO_COUNTRY_CODES:
        return cleaned
    if cleaned == "UK":
        raise UnknownCountry("'UK' is not an ISO 3166-1 code: the United Kingdom is 'GB'")
    raise UnknownCountry(
        f"unknown country code {cleaned[:12]!r}: expected an ISO 3166-1 alpha-2 code such as 'SI'"
    )


def rule_for(country: str, day: date) -> CountryRule | None:
    """The country's rule in force on `day`: its latest row with effective_from <= day.

    None for an assigned code without a national rule on record; UnknownCountry for any
    other code.
    """
    code = normalize_country(country)
    in_force = [row for row in COUNTRY_RULES if row.country == code and row.effective_from <= day]
    return max(in_force, key=lambda row: row.effective_from, default=None)


def timezone_for(country: str) -> str:
    """The zone whose calendar day counts for a child of `country` (see CountryRule.timezone)."""
    code = normalize_country(country)
    zones = {row.timezone for row in COUNTRY_RULES if row.country == code}
    return zones.pop() if len(zones) == 1 else FALLBACK_TIMEZONE


def display_timezone(country: str) -> str:
    """The zone a guardian of a child of ``country`` reads times in (``CountryRule``'s
    ``display_timezone``, else its zone); UTC for a country without a row, where no single zone
    can be assumed. Always shown named."""
    try:
        code = normalize_country(country)
    except UnknownCountry:
        return DISPLAY_FALLBACK_TIMEZONE
    for row in COUNTRY_RULES:
        if row.country == code:
            return row.display_timezone or row.timezone
    return DISPLAY_FALLBACK_TIMEZONE


def decide_age(birth_date: date, country: str, now: datetime, operator_min_age: int) -> AgeDecision:
    """Whether a child born on birth_date in `country` needs a guardian's consent at `now`.

    The applicable age is the higher of the operator's minimum and the country's age; the
    basis names the rule that decided, citing the national law when both are equal.
    """
    if operator_min_age not in OPERATOR_MIN_AGE_RANGE:
        raise ValueError(
            f"operator minimum age must be between {OPERATOR_MIN_AGE_RANGE.start} and "
            f"{OPERATOR_MIN_AGE_RANGE.stop - 1}, got {operator_min_age}"
        )
    code = normalize_country(country)
    today = local_today(timezone_for(code), now)
    validate_birth_date(birth_date, today)
    rule = rule_for(code, today)
    operator_basis = f"operator policy: guardian consent below {operator_min_age}"
    if rule is None:
        age_of_consent = operator_min_age
        basis = f"{operator_basis} (no national rule on record for {code})"
    elif rule.age >= operator_min_age:
        age_of_consent = rule.age
        basis = rule.basis
    else:
        age_of_consent = operator_min_age
        basis = f"{operator_basis} (national rule: {rule.basis}: {rule.age})"
    age = age_on(birth_date, today)
    consent_required = age < age_of_consent
    joint = consent_required and rule is not None and rule.joint_consent
    return AgeDecision(
        consent_required=consent_required,
        age=age,
        age_of_consent=age_of_consent,
        jurisdiction=code,
        basis=basis,
        consent_required_until=anniversary(birth_date, age_of_consent)
        if consent_required
        else None,
        joint_consent=joint,
        joint_consent_basis=rule.joint_consent_basis if joint and rule is not None else None,
    )


def may_authorise_disclosure(country: str, now: datetime, method: VerificationMethod) -> bool:
    """Whether consent verified by ``method`` may authorise disclosing a child of ``country``'s
    data to third parties, under the rule in force at ``now``."""
    rule = rule_for(country, local_today(timezone_for(country), now))
    if rule is None or rule.disclosure_methods is None:
        return True
    return method in rule.disclosure_methods
