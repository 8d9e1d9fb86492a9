"""Disclosure purposes in the catalogue and the law behind them in the age table: a purpose
with third-party recipients is never required; in the US email plus may not authorise it; in
France the child consents together with the guardian."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from service.consent import policy, verification
from service.consent.purposes import DEFAULT_CATALOGUE, load_catalogue
from service.settings import ConfigError
from service.states import VerificationMethod

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CHILD_BORN = date(2016, 6, 15)
RECIPIENT = {
    "name": {"en": "Research partners", "sl": "Raziskovalni partnerji"},
    "why": {"en": "To study learning.", "sl": "Za raziskave učenja."},
}


def catalogue_with(tmp_path: Path, **research: Any) -> Path:
    shipped = json.loads(DEFAULT_CATALOGUE.read_text())
    for purpose in shipped["purposes"]:
        if purpose["id"] == "research_sharing":
            purpose.update(research)
    path = tmp_path / "purposes.json"
    path.write_text(json.dumps(shipped))
    return path


def test_the_shipped_catalogue_has_one_optional_disclosure_purpose() -> None:
    catalogue = load_catalogue(None)
    disclosing = [p for p in catalogue.purposes if p.discloses]
    assert [p.id for p in disclosing] == ["research_sharing"]
    [research] = disclosing
    assert not research.required
    assert research.id not in catalogue.required_ids
    [recipient] = research.recipients
    assert recipient.localized_name("en") == "University education research groups"
    assert recipient.localized_name("sl") == (
        "Univerzitetne raziskovalne skupine na področju izobraževanja"
    )
    assert recipient.localized_why("sl").startswith("Da proučijo")
    # the purposes that disclose nothing have no recipients
    assert all(p.recipients == [] for p in catalogue.purposes if p.id != "research_sharing")


def test_a_required_disclosure_purpose_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="research_sharing discloses data to third parties"):
        load_catalogue(str(catalogue_with(tmp_path, required=True)))


def test_a_required_purpose_without_recipients_is_still_fine(tmp_path: Path) -> None:
    catalogue = load_catalogue(str(catalogue_with(tmp_path, required=True, recipients=[])))
    assert "research_sharing" in catalogue.required_ids


@pytest.mark.parametrize("field", ["name", "why"])
def test_a_recipient_needs_english_texts(tmp_path: Path, field: str) -> None:
    recipient = {**RECIPIENT, field: {"sl": RECIPIENT[field]["sl"]}}
    with pytest.raises(
        ConfigError, match=f"recipient of purpose research_sharing lacks an English {field}"
    ):
        load_catalogue(str(catalogue_with(tmp_path, recipients=[recipient])))


def test_a_recipient_with_an_unknown_field_is_refused(tmp_path: Path) -> None:
    recipient = {**RECIPIENT, "country": "US"}
    with pytest.raises(ConfigError, match="CONSENT_PURPOSES_FILE"):
        load_catalogue(str(catalogue_with(tmp_path, recipients=[recipient])))


def test_a_recipient_falls_back_to_english(tmp_path: Path) -> None:
    recipient = {"name": {"en": "Partners"}, "why": {"en": "Research."}}
    catalogue = load_catalogue(str(catalogue_with(tmp_path, recipients=[recipient])))
    research = catalogue.get("research_sharing")
    assert research is not None
    assert research.recipients[0].localized_name("sl") == "Partners"


def test_email_plus_may_not_authorise_a_disclosure_in_the_us_only() -> None:
    method = VerificationMethod.EMAIL_PLUS
    assert not policy.may_authorise_disclosure("US", NOW, method)
    for country in ("SI", "DE", "FR", "GB", "AQ"):  # AQ: no national rule on record
        assert policy.may_authorise_disclosure(country, NOW, method), country
    [us] = [rule for rule in policy.COUNTRY_RULES if rule.country == "US"]
    assert us.disclosure_methods == frozenset()
    assert us.disclosure_basis is not None
    assert "312.5(a)(2)" in us.disclosure_basis
    assert "90 FR 16918" in us.disclosure_basis


def test_only_a_disclosure_purpose_needs_a_stronger_method() -> None:
    catalogue = load_catalogue(None)
    assert verification.needs_stronger_method(catalogue.purposes, "US", NOW) == ["research_sharing"]
    assert verification.needs_stronger_method(catalogue.purposes, "SI", NOW) == []
    assert verification.purpose_methods(["tutoring"]) == {"tutoring": "email_plus"}


def test_france_asks_for_joint_consent_with_its_source() -> None:
    decision = policy.decide_age(CHILD_BORN, "FR", NOW, 15)
    assert decision.consent_required
    assert decision.joint_consent
    assert decision.joint_consent_basis is not None
    assert "Art. 45" in decision.joint_consent_basis
    [france] = [rule for rule in policy.COUNTRY_RULES if rule.country == "FR"]
    assert france.joint_consent
    assert [rule.country for rule in policy.COUNTRY_RULES if rule.joint_consent] == ["FR"]


@pytest.mark.parametrize("country", ["SI", "DE", "US"])
def test_elsewhere_the_guardian_consents_alone(country: str) -> None:
    decision = policy.decide_age(CHILD_BORN, country, NOW, 15)
    assert decision.consent_required
    assert not decision.joint_consent
    assert decision.joint_consent_basis is None


def test_no_joint_consent_for_a_child_who_may_consent_alone() -> None:
    decision = policy.decide_age(date(2006, 1, 1), "FR", NOW, 15)
    assert not decision.consent_required
    assert not decision.joint_consent
