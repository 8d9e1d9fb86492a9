"""The direct notice to the guardian (COPPA 16 CFR 312.4(c), GDPR Art. 13), one per language.

One function, :func:`build_notice`, derives it from the purpose catalogue, the operator's
identity (settings) and the translated notice strings. The request email and the review page
show its parts; its plain-text (Markdown) rendering is the document that is versioned and
kept word for word: ``policy_version`` is ``<label>+<locale>.<hash>``, the operator's label
(the catalogue's ``notice_version``) and the first 12 hex digits of the SHA-256 of that
language's text. Any change to what the guardian reads (a catalogue text, an operator setting,
a translation) makes a new version; old versions stay in ``notice_versions``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import msgspec

from service.consent.purposes import Catalogue, Purpose
from service.db import notice_versions
from service.db.connection import Connection
from service.i18n import translator
from service.i18n.translator import Translator
from service.settings import Settings

HASH_LENGTH = 12


class RecipientNotice(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    why: str


class PurposeNotice(msgspec.Struct, frozen=True, kw_only=True):
    """A purpose as the guardian reads it: every field translated, in human words."""

    id: str
    title: str
    description: str
    required: bool
    categories: list[str]
    retention: str
    recipients: list[RecipientNotice]
    # "Shared with" (a heading for the recipients), or the sentence that nobody else gets it.
    sharing: str


class Fact(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    value: str
    link: str | None = None


class Right(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    text: str


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """The notice of one language; ``text`` is the document, the rest its parts for templates."""

    locale: str
    label: str
    version: str
    content_hash: str
    text: str
    operator_name: str
    operator: list[Fact]
    purposes: list[PurposeNotice]
    third_parties: str
    rights_intro: str
    rights: list[Right]
    exercise: str
    privacy_notice_url: str

    def among(self, purpose_ids: list[str]) -> list[PurposeNotice]:
        """The notice's purposes among ``purpose_ids``, in catalogue order."""
        return [p for p in self.purposes if p.id in purpose_ids]


def build_notice(settings: Settings, catalogue: Catalogue, locale: str) -> Notice:
    language = translator(locale)
    draft = Notice(
        locale=language.locale,
        label=catalogue.notice_version,
        version="",
        content_hash="",
        text="",
        operator_name=settings.operator_name,
        operator=_operator_facts(settings, language),
        purposes=[_purpose(p, settings.operator_name, language) for p in catalogue.purposes],
        third_parties=language.gettext(
            "Your child can use %(operator)s without your agreeing to any disclosure of their "
            "data to third parties.",
            operator=settings.operator_name,
        ),
        rights_intro=language.gettext(
            "Consent is the legal basis for using your child's data for these purposes. You "
            "have these rights over your child's data and your own:"
        ),
        rights=_rights(settings, language),
        exercise=language.gettext(
            "To use any of these rights, write to %(email)s or to our postal address.",
            email=settings.operator_email,
        ),
        privacy_notice_url=settings.privacy_notice_url,
    )
    text = _document(draft, language)
    content_hash = hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]
    return msgspec.structs.replace(
        draft,
        version=f"{draft.label}+{draft.locale}.{content_hash}",
        content_hash=content_hash,
        text=text,
    )


async def record_use(connection: Connection, notice: Notice, now: datetime) -> None:
    """Keep the text of a notice about to be shown (once per version, whoever is first)."""
    await notice_versions.remember(
        connection,
        version=notice.version,
        label=notice.label,
        locale=notice.locale,
        content_hash=notice.content_hash,
        text=notice.text,
        now=now,
    )


def _operator_facts(settings: Settings, language: Translator) -> list[Fact]:
    facts = [
        Fact(
            label=language.gettext("Responsible for your child's data (controller)"),
            value=settings.operator_name,
        ),
        Fact(label=language.gettext("Postal address"), value=settings.operator_address),
        Fact(
            label=language.gettext("Contact email"),
            value=settings.operator_email,
            link=f"mailto:{settings.operator_email}",
        ),
    ]
    if settings.operator_dpo_email:
        facts.append(
            Fact(
                label=language.gettext("Data protection officer"),
                value=settings.operator_dpo_email,
                link=f"mailto:{settings.operator_dpo_email}",
            )
        )
    return facts


def _purpose(purpose: Purpose, operator_name: str, language: Translator) -> PurposeNotice:
    locale = language.locale
    return PurposeNotice(
        id=purpose.id,
        title=purpose.localized_title(locale),
        description=purpose.localized_description(locale),
        required=purpose.required,
        categories=[language.data_category(code) for code in purpose.data_categories],
        retention=language.retention(purpose.retention_days),
        recipients=[
            RecipientNotice(name=r.localized_name(locale), why=r.localized_why(locale))
            for r in purpose.recipients
        ],
        sharing=(
            language.gettext("Shared with")
            if purpose.recipients
            else language.gettext(
                "Not disclosed to anyone outside %(operator)s.", operator=operator_name
            )
        ),
    )


def _rights(settings: Settings, language: Translator) -> list[Right]:
    authority = settings.operator_supervisory_authority
    where = f"{authority.name} ({authority.url})" if authority.url else authority.name
    return [
        Right(
            name=language.gettext("Access"),
            text=language.gettext("you can ask what data we hold and get a copy of it."),
        ),
        Right(
            name=language.gettext("Rectification"),
            text=language.gettext("you can have incorrect or incomplete data corrected."),
        ),
        Right(
            name=language.gettext("Erasure"),
            text=language.gettext("you can have the data deleted."),
        ),
        Right(
            name=language.gettext("Restriction"),
            text=language.gettext(
                "you can have the use of the data limited while a question about it is settled."
            ),
        ),
        Right(
            name=language.gettext("Objection"),
            # Every use in the catalogue rests on consent, where objecting means withdrawing
            # (GDPR Art. 21 covers legitimate interests): the notice says so rather than
            # offering a right that has nothing to apply to.
            text=" ".join(
                (
                    language.gettext(
                        "you can object to a use of the data that is based on our legitimate "
                        "interests."
                    ),
                    language.gettext(
                        "The uses listed here rest on your consent: withdrawing it stops them."
                    ),
                )
            ),
        ),
        Right(
            name=language.gettext("Portability"),
            text=language.gettext(
                "you can receive the data in a machine-readable format, or have it sent to "
                "another provider."
            ),
        ),
        Right(
            name=language.gettext("Withdrawal"),
            text=language.gettext(
                "you can withdraw your consent at any time, as easily as you gave it; this does "
                "not affect what was done before the withdrawal."
            ),
        ),
        Right(
            name=language.gettext("Complaint"),
            text=language.gettext(
                "you can lodge a complaint with the supervisory authority: %(authority)s.",
                authority=where,
            ),
        ),
    ]


def _document(notice: Notice, language: Translator) -> str:
    """The notice as plain text (Markdown): what ``notice show`` prints and the hash covers."""
    title = language.gettext(
        "Notice to parents and guardians: %(operator)s", operator=notice.operator_name
    )
    lines = [
        f"# {title}",
        "",
        language.gettext("Notice version: %(label)s", label=notice.label),
        "",
        f"## {language.gettext('Who we are')}",
        "",
        *(f"- {fact.label}: {fact.value}" for fact in notice.operator),
        "",
        f"## {language.gettext('What we ask your consent for')}",
        "",
    ]
    for purpose in notice.purposes:
        kind = language.gettext("Required") if purpose.required else language.gettext("Optional")
        lines += [
            f"### {purpose.title} ({kind})",
            "",
            purpose.description,
            "",
            f"- {language.gettext('Data used')}: {'; '.join(purpose.categories)}",
            f"- {purpose.retention}",
        ]
        if purpose.recipients:
            lines.append(f"- {purpose.sharing}:")
            lines += [f"  - {r.name}: {r.why}" for r in purpose.recipients]
        else:
            lines.append(f"- {purpose.sharing}")
        lines.append("")
    lines += [
        notice.third_parties,
        "",
        f"## {language.gettext('Your rights')}",
        "",
        notice.rights_intro,
        "",
        *(f"- {right.name}: {right.text}" for right in notice.rights),
        "",
        notice.exercise,
        "",
        f"{language.gettext('Full privacy notice')}: {notice.privacy_notice_url}",
        "",
    ]
    return "\n".join(lines)
