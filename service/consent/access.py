"""The information a copy of the data carries (GDPR Art. 15(1)(a)-(h)), in one language.

Built from what drives the service itself: the purpose catalogue (purposes, categories,
recipients), the retention policy the sweeps enforce, and the operator's settings (contact,
supervisory authority), so the copy says what the service does. The texts are the notice's
(``service.consent.notice``), in the language asked for.
"""

from __future__ import annotations

import msgspec

from service.consent.notice import Fact
from service.consent.retention import policy_of
from service.consent.runtime import Runtime
from service.i18n import N_, translator

# What the service itself stores about a child and a guardian (the catalogue's categories are
# what the main app processes for each purpose).
_STORED_CATEGORIES = {
    "guardian_email": N_("Your email address"),
    "subject_id": N_("Your child's account identifier in the app"),
    "country_and_age": N_("Your child's country, and date of birth or age"),
    "decisions": N_("Your consent decisions, with their dates and the notice you were shown"),
    "messages": N_("The emails we sent you (when, and whether they were delivered)"),
    "rights_requests": N_("The requests you made about your data and how they were answered"),
}
# Which right each guardian right is, in the notice's order of rights.
_RIGHT_IDS = (
    "access",
    "rectification",
    "erasure",
    "restriction",
    "objection",
    "portability",
    "withdrawal",
    "complaint",
)


class PurposeInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    title: str
    description: str
    required: bool
    legal_basis: str
    data_categories: list[str]


class CategoryInfo(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name: str


class RecipientInfo(msgspec.Struct, frozen=True, kw_only=True):
    purpose: str
    name: str
    why: str


class PurposeRetentionInfo(msgspec.Struct, frozen=True, kw_only=True):
    purpose: str
    days: int
    text: str


class RetentionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The periods in days, the same values the retention sweeps apply."""

    purposes: list[PurposeRetentionInfo]
    unanswered_request_days: int
    refused_request_days: int
    closed_request_days: int
    lapsed_consent_days: int
    ended_consent_days: int
    consent_max_validity_days: int
    text: str


class RightInfo(msgspec.Struct, frozen=True, kw_only=True):
    right: str
    name: str
    text: str


class AuthorityInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    url: str | None


class AutomatedDecisions(msgspec.Struct, frozen=True, kw_only=True):
    used: bool
    text: str


class AccessInformation(msgspec.Struct, frozen=True, kw_only=True):
    """Art. 15(1): (a) ``purposes``, (b) ``categories``, (c) ``recipients``, (d) ``retention``,
    (e) ``rights`` and ``how_to_exercise``, (f) ``supervisory_authority``, (g) ``source``,
    (h) ``automated_decision_making``; ``controller`` says who answers."""

    locale: str
    controller: list[Fact]
    purposes: list[PurposeInfo]
    categories: list[CategoryInfo]
    recipients: list[RecipientInfo]
    retention: RetentionInfo
    rights: list[RightInfo]
    how_to_exercise: str
    supervisory_authority: AuthorityInfo
    source: str
    automated_decision_making: AutomatedDecisions


def _days(seconds: float) -> int:
    return int(seconds // 86400)


def information(runtime: Runtime, locale: str) -> AccessInformation:
    notice = runtime.notice(locale)
    language = translator(notice.locale)
    policy = policy_of(runtime)
    catalogue = runtime.catalogue
    basis = language.gettext("Consent (GDPR Art. 6(1)(a) and 8)")
    codes = list(dict.fromkeys(c for p in catalogue.purposes for c in p.data_categories))
    authority = runtime.settings.operator_supervisory_authority
    return AccessInformation(
        locale=notice.locale,
        controller=notice.operator,
        purposes=[
            PurposeInfo(
                id=p.id,
                title=p.localized_title(notice.locale),
                description=p.localized_description(notice.locale),
                required=p.required,
                legal_basis=basis,
                data_categories=list(p.data_categories),
            )
            for p in catalogue.purposes
        ],
        categories=[
            *(
                CategoryInfo(code=c, name=language.gettext(m))
                for c, m in _STORED_CATEGORIES.items()
            ),
            *(CategoryInfo(code=c, name=language.data_category(c)) for c in codes),
        ],
        recipients=[
            RecipientInfo(
                purpose=p.id,
                name=r.localized_name(notice.locale),
                why=r.localized_why(notice.locale),
            )
            for p in catalogue.purposes
            for r in p.recipients
        ],
        retention=RetentionInfo(
            purposes=[
                PurposeRetentionInfo(
                    purpose=p.id,
                    days=p.kept_for.days,
                    text=language.retention(p.kept_for.days),
                )
                for p in policy.purposes
            ],
            unanswered_request_days=_days(policy.pending_request.total_seconds()),
            refused_request_days=_days(policy.denied_request.total_seconds()),
            closed_request_days=_days(policy.closed_request.total_seconds()),
            lapsed_consent_days=_days(policy.lapsed_consent.total_seconds()),
            ended_consent_days=_days(policy.ended_consent.total_seconds()),
            consent_max_validity_days=_days(policy.consent_max_validity.total_seconds()),
            text=language.ngettext(
                "Your email address and your links are deleted %(num)d day after your consent "
                "ends, and after a refusal or an unanswered request sooner; a record that your "
                "consent was given and ended is kept without them.",
                "Your email address and your links are deleted %(num)d days after your consent "
                "ends, and after a refusal or an unanswered request sooner; a record that your "
                "consent was given and ended is kept without them.",
                _days(policy.ended_consent.total_seconds()),
            ),
        ),
        rights=[
            RightInfo(right=right_id, name=right.name, text=right.text)
            for right_id, right in zip(_RIGHT_IDS, notice.rights, strict=True)
        ],
        how_to_exercise=notice.exercise,
        supervisory_authority=AuthorityInfo(name=authority.name, url=authority.url),
        source=language.gettext(
            "Your child's account identifier, country and age or date of birth come from "
            "%(operator)s's app, where your child signed up; your email address comes from that "
            "sign-up too, and your decisions from you.",
            operator=runtime.settings.operator_name,
        ),
        automated_decision_making=AutomatedDecisions(
            used=False,
            text=language.gettext(
                "No decision about you or your child is made by automated means alone, and no "
                "profile of you or your child is made (GDPR Art. 22)."
            ),
        ),
    )
