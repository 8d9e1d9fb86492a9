"""The written retention policy (COPPA 16 CFR 312.10, GDPR Art. 5(1)(e) and 13(2)(a)).

Rendered from the :class:`RetentionPolicy` the worker's sweeps enforce, in the reader's
language: the same words as Markdown (``consent-service retention-policy``, and
``GET /privacy/retention`` when Markdown is asked for) and as an HTML page.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec

from service.consent.retention import RetentionPolicy
from service.i18n import DEFAULT_LOCALE, Translator, translator


class PolicyEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One kind of record: what it holds, for how long, why, and how it goes."""

    title: str
    kept: str
    period: str
    reason: str
    deletion: str


class PurposeLine(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    data: str
    period: str


class PolicyDocument(msgspec.Struct, frozen=True, kw_only=True):
    locale: str
    title: str
    intro: str
    labels: dict[str, str]
    entries: list[PolicyEntry]
    purposes_heading: str
    purposes_intro: str
    purposes: list[PurposeLine]
    after_heading: str
    after: list[str]


def duration(language: Translator, period: timedelta) -> str:
    """A period in whole days, else hours, else minutes ("30 days", "1 hour")."""
    seconds = int(period.total_seconds())
    if seconds % 86_400 == 0:
        return language.ngettext("%(num)d day", "%(num)d days", seconds // 86_400)
    if seconds % 3_600 == 0:
        return language.ngettext("%(num)d hour", "%(num)d hours", seconds // 3_600)
    return language.ngettext("%(num)d minute", "%(num)d minutes", max(1, seconds // 60))


def policy_document(policy: RetentionPolicy, *, locale: str, operator_name: str) -> PolicyDocument:
    _ = translator(locale)
    d = duration
    lapsing = (
        _(
            "%(period)s before a consent lapses, the guardian is told by email and the app by "
            "webhook that the young person will decide alone from then on.",
            period=d(_, policy.lapsing_notice),
        )
        if policy.lapsing_notice
        else _("No advance notice is sent before a consent lapses.")
    )
    entries = [
        PolicyEntry(
            title=_("Consent requests waiting for an answer"),
            kept=_(
                "The child's pseudonymous id from the app (never a name), birth date and country, "
                "the guardian's email address (encrypted), the purposes asked for and a hash of "
                "the link sent to the guardian."
            ),
            period=_(
                "Until the guardian answers, at most %(period)s (the lifetime of the link).",
                period=d(_, policy.pending_request),
            ),
            reason=_("To ask the guardian for consent and to verify that it was given."),
            deletion=_(
                "When the guardian decides, the birth date is deleted (the date the child comes "
                "of age is kept instead). If nobody answers in time, the request expires and the "
                "guardian's email address and link are deleted at once."
            ),
        ),
        PolicyEntry(
            title=_("Email addresses typed after the code from the child's screen"),
            kept=_(
                "The address the parent typed (encrypted) until it is confirmed, and keyed "
                "hashes of the one-time code emailed there and of the page's session."
            ),
            period=_(
                "%(period)s after the code from the child's screen was entered; less when the "
                "address is confirmed or the request ends sooner.",
                period=d(_, policy.handoff_session),
            ),
            reason=_("So that the parent can confirm the address with the code emailed there."),
            deletion=_(
                "The worker deletes them. A confirmed address becomes the request's guardian "
                "address and is kept as described above."
            ),
        ),
        PolicyEntry(
            title=_("Refused requests"),
            kept=_(
                "The request as above without the birth date, and the guardian's email address."
            ),
            period=_(
                "%(period)s after the refusal.",
                period=d(_, policy.denied_request),
            ),
            reason=_("To answer a guardian who asks why their child could not sign up."),
            deletion=_(
                "The worker deletes the email address, its lookup hash and the link; the "
                "request's status and purposes stay, without personal contact data."
            ),
        ),
        PolicyEntry(
            title=_("Requests that expired unanswered or were replaced"),
            kept=_(
                "The request's status and purposes, and for a request replaced by a newer one "
                "the guardian's email address (an unanswered request's address is deleted when "
                "it expires)."
            ),
            period=_(
                "%(period)s after the request closed.",
                period=d(_, policy.closed_request),
            ),
            reason=_("To answer questions about a request that was never completed."),
            deletion=_(
                "The worker deletes the remaining email address, its lookup hash and the link."
            ),
        ),
        PolicyEntry(
            title=_("Consents in force"),
            kept=_(
                "The purposes granted, the notice version the guardian saw, how consent was "
                "verified, an opaque reference to the guardian, the guardian's email address "
                "(encrypted), the signed consent token and a hash of the withdrawal link."
            ),
            period=_(
                "While the consent is in force: until the child reaches the age of consent, "
                "and at most %(period)s.",
                period=d(_, policy.consent_max_validity),
            ),
            reason=_(
                "To show the app what the guardian allowed, to let the guardian withdraw, and to "
                "demonstrate the consent (GDPR Art. 7(1))."
            ),
            deletion=lapsing + " " + _("When the consent ends, the periods below apply."),
        ),
        PolicyEntry(
            title=_("Consents that lapsed"),
            kept=_("The consent as above."),
            period=_(
                "%(period)s after the lapse.",
                period=d(_, policy.lapsed_consent),
            ),
            reason=_("To answer questions about a consent that has just ended."),
            deletion=_(
                "The worker deletes the consent token, the withdrawal link and the guardian's "
                "email address; the consent's status, purposes and dates stay."
            ),
        ),
        PolicyEntry(
            title=_("Consents withdrawn, revoked or replaced"),
            kept=_("The consent as above."),
            period=_(
                "%(period)s after the consent ended.",
                period=d(_, policy.ended_consent),
            ),
            reason=_(
                "The guardian or a supervisory authority may still ask about the consent for a "
                "while; after that the audit trail keeps the proof."
            ),
            deletion=_(
                "The worker deletes the consent token, the withdrawal link and the guardian's "
                "email address; the consent's status, purposes and dates stay."
            ),
        ),
        PolicyEntry(
            title=_("Emails to the guardian"),
            kept=_("The message (with the guardian's email address), encrypted."),
            period=_(
                "Until it is delivered; a message that could not be delivered or was no longer "
                "needed, %(period)s.",
                period=d(_, policy.undelivered_message),
            ),
            reason=_("To deliver the message, with retries when the mail server is down."),
            deletion=_(
                "A delivered message's content is deleted at once; the worker deletes the "
                "content of the others."
            ),
        ),
        PolicyEntry(
            title=_("Records of repeated requests from the app"),
            kept=_("The answer to a request the app may send again (the child's pseudonymous id)."),
            period=d(_, policy.idempotency_record),
            reason=_("So that a repeated request does not email the guardian twice."),
            deletion=_("The worker deletes them."),
        ),
        PolicyEntry(
            title=_("Sign-in links and sessions of the guardian dashboard"),
            kept=_(
                "A keyed hash of the address a sign-in link was sent to, and hashes of the link "
                "and of the session; never the address itself."
            ),
            period=d(_, policy.dashboard_sign_in),
            reason=_(
                "So that a parent can sign in without an account, and to limit how many links "
                "one address receives."
            ),
            deletion=_("The worker deletes them."),
        ),
        PolicyEntry(
            title=_("Counters of codes emailed to one address"),
            kept=_(
                "A keyed hash of the address and how many one-time codes were sent to it that "
                "day; never the address itself."
            ),
            period=d(_, policy.address_code_counter),
            reason=_("To limit how many codes one address receives."),
            deletion=_("The worker deletes them."),
        ),
        PolicyEntry(
            title=_("Counters of form submissions"),
            kept=_("How many forms were sent from one network address."),
            period=d(_, policy.rate_limit_window),
            reason=_("To limit abuse of the guardian pages."),
            deletion=_("The worker deletes them."),
        ),
    ]
    if policy.withdrawal_erases:
        ending_paragraphs = [
            _(
                "A withdrawal of the whole consent deletes at once the guardian's email address "
                "(kept, encrypted, only until the confirmation email has been sent), the birth "
                "date and the consent token, and tells the app to delete the child's data. Kept "
                "for the period above: the consent's status, purposes and dates under the child's "
                "pseudonymous id, and the audit trail, so that it can be shown what was consented "
                "to and when it was withdrawn."
            ),
            _(
                "Kept after a revocation: the consent's status, purposes and dates under the "
                "child's pseudonymous id, and the audit trail, so that it can be shown what was "
                "consented to and when it ended; the guardian's email address is deleted after "
                "the period above."
            ),
        ]
    else:
        ending_paragraphs = [
            _(
                "Kept after a withdrawal or revocation without erasure: the consent's status, "
                "purposes and dates under the child's pseudonymous id, and the audit trail, so "
                "that it can be shown what was consented to and when it ended; the guardian's "
                "email address is deleted after the period above."
            )
        ]
    after = [
        _(
            "Erasure (at the guardian's request, or by the operator) deletes at once every "
            "request, consent, undelivered email and record of repeated requests about the child "
            "and the guardian's email address, and tells the app to delete its copy."
        ),
        _(
            "Kept after erasure: the audit trail's entries without the child's id, reasons or "
            "details (only random record ids, what happened, who acted in general terms and "
            "when), and one entry that an erasure took place. They keep the hash chain that "
            "shows the trail was not altered and identify no one."
        ),
        *ending_paragraphs,
        _(
            "When the periods above end, the records that stay keep the child's id and the "
            "guardian's reference only as keyed pseudonyms that identify no one without the "
            "service's key, and the audit trail's entries about them lose the child's id, "
            "reasons and details."
        ),
        _("Logs hold no email addresses and no links. Backups follow the operator's own schedule."),
    ]
    return PolicyDocument(
        locale=_.locale,
        title=_("Retention policy"),
        intro=_(
            "How long %(operator)s keeps the data of children and their parents or guardians "
            "that this consent service holds, why, and how it is deleted (COPPA 16 CFR 312.10, "
            "GDPR Art. 5(1)(e) and 13(2)(a)). The periods are the ones the service applies: "
            "they are read from its configuration.",
            operator=operator_name,
        ),
        labels={
            "kept": _("What is kept"),
            "period": _("How long"),
            "reason": _("Why"),
            "deletion": _("How it is deleted"),
            "purpose": _("Purpose"),
            "data": _("Data"),
            "at_most": _("Kept for at most"),
        },
        entries=entries,
        purposes_heading=_("Data used for each purpose in the app"),
        purposes_intro=_(
            "%(operator)s keeps the data of each purpose the guardian allows at most this long. "
            "When a consent ends or the child's data is erased, the app is told by webhook.",
            operator=operator_name,
        ),
        purposes=[
            PurposeLine(
                title=purpose.title.get(_.locale) or purpose.title[DEFAULT_LOCALE],
                data=", ".join(_.data_category(code) for code in purpose.data_categories),
                period=d(_, purpose.kept_for),
            )
            for purpose in policy.purposes
        ],
        after_heading=_("After erasure or withdrawal"),
        after=after,
    )


def render_markdown(document: PolicyDocument) -> str:
    labels = document.labels
    lines = [f"# {document.title}", "", document.intro, ""]
    for entry in document.entries:
        lines += [
            f"## {entry.title}",
            "",
            f"- **{labels['kept']}:** {entry.kept}",
            f"- **{labels['period']}:** {entry.period}",
            f"- **{labels['reason']}:** {entry.reason}",
            f"- **{labels['deletion']}:** {entry.deletion}",
            "",
        ]
    lines += [
        f"## {document.purposes_heading}",
        "",
        document.purposes_intro,
        "",
        f"| {labels['purpose']} | {labels['data']} | {labels['at_most']} |",
        "|---|---|---|",
        *(f"| {line.title} | {line.data} | {line.period} |" for line in document.purposes),
        "",
        f"## {document.after_heading}",
        "",
        *(f"- {paragraph}" for paragraph in document.after),
    ]
    return "\n".join(lines) + "\n"
