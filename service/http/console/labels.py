"""What an audit action or an outbox topic reads as on a console page. The raw id stays
visible next to the label (staff grep logs for it); an id without a label here is shown raw."""

from __future__ import annotations

from service.i18n import N_

ACTION_LABELS = {
    "request.created": N_("Request opened"),
    "request.superseded": N_("Request replaced by a newer one"),
    "request.reminded": N_("Reminder sent to the guardian"),
    "request.denied": N_("Guardian refused"),
    "request.expired": N_("Request expired unanswered"),
    "request.cancelled": N_("Request cancelled"),
    "request.purged": N_("Request data deleted after retention"),
    "consent.granted": N_("Guardian gave consent"),
    "consent.revoked": N_("Consent revoked by staff"),
    "consent.withdrawn": N_("Consent withdrawn by the guardian"),
    "consent.expired": N_("Consent ended (the child came of age or validity ran out)"),
    "consent.superseded": N_("Consent replaced by a newer one"),
    "consent.not_required": N_("Consent no longer needed"),
    "consent.purposes_withdrawn": N_("Some purposes withdrawn"),
    "consent.erased": N_("Consent data erased"),
    "consent.purged": N_("Consent data deleted after retention"),
    "consent.lapsing_notified": N_("Guardian told the consent ends soon"),
    "consent.reconsent_requested": N_("New consent asked for under a changed notice"),
    "subject.viewed": N_("Case read through the staff API"),
    "subject.looked_up": N_("Looked up by guardian address"),
    "subject.events_read": N_("Audit trail read"),
    "subject.exported": N_("Data exported"),
    "subject.erased": N_("Personal data erased"),
    "subject.restricted": N_("Processing restricted"),
    "subject.unrestricted": N_("Restriction lifted"),
    "subject.birth_date_corrected": N_("Birth date corrected"),
    "guardian.address_change_requested": N_("Guardian address change asked for"),
    "guardian.address_changed": N_("Guardian address changed"),
    "data_request.opened": N_("Rights request received"),
    "data_request.updated": N_("Rights request updated"),
    "data_request.in_progress": N_("Rights request in progress"),
    "data_request.done": N_("Rights request done"),
    "data_request.refused": N_("Rights request refused"),
    "console.viewed": N_("Page viewed in the console"),
    "console.searched": N_("Searched in the console"),
}

TOPIC_LABELS = {
    # emails
    "guardian_request": N_("Consent request to the guardian"),
    "guardian_reminder": N_("Reminder to the guardian"),
    "consent_confirmation": N_("Confirmation of the consent"),
    "consent_replaced": N_("Consent replaced"),
    "consent_revoked": N_("Consent revoked"),
    "consent_withdrawn": N_("Withdrawal confirmed"),
    "consent_expired": N_("Consent ended"),
    "consent_lapsing": N_("Consent ends soon"),
    "consent_purposes_withdrawn": N_("Purposes withdrawn"),
    "guardian_address_confirmation": N_("Confirm the new address"),
    "guardian_address_changed": N_("Guardian address changed"),
    "data_copy": N_("Copy of the data"),
    # webhooks (event types)
    "consent.granted": N_("Consent given"),
    "consent.denied": N_("Consent refused"),
    "consent.revoked": N_("Consent revoked"),
    "consent.withdrawn": N_("Consent withdrawn"),
    "consent.expired": N_("Consent ended"),
    "consent.updated": N_("Consent changed"),
    "consent.lapsing": N_("Consent ends soon"),
    "subject.erasure_requested": N_("Erasure requested"),
    "subject.erased": N_("Data erased"),
    "subject.restricted": N_("Processing restricted"),
    "subject.unrestricted": N_("Restriction lifted"),
}

# The reasons the service itself writes into the audit trail (word for word, see
# ``service.consent``), as staff read them; a reason staff wrote is shown as written.
SYSTEM_REASONS = {
    "withdrawn by the guardian": N_("withdrawn by the guardian"),
    "purposes withdrawn by the guardian": N_("purposes withdrawn by the guardian"),
    "resent on demand": N_("resent on demand"),
    "scheduled reminder before the link expires": N_("scheduled reminder before the link expires"),
    "a newer consent request for the same subject": N_(
        "a newer consent request for the same subject"
    ),
    "the request was sent again with its Idempotency-Key": N_(
        "the request was sent again with its Idempotency-Key"
    ),
    "birth_date_corrected": N_("birth date corrected"),
    "the child reached the age of consent before the guardian decided": N_(
        "the child reached the age of consent before the guardian decided"
    ),
    "no answer before the link expired; guardian address deleted": N_(
        "no answer before the link expired; guardian address deleted"
    ),
    "the child reaches the age of consent soon": N_("the child reaches the age of consent soon"),
    "review link unlocked by support": N_("review link unlocked by support"),
    "withdrawal link unlocked by support": N_("withdrawal link unlocked by support"),
    "re-consent: the notice changed": N_("re-consent: the notice changed"),
    "the notice changed; the consent ends unless the guardian consents again": N_(
        "the notice changed; the consent ends unless the guardian consents again"
    ),
    "the guardian refused consent under the changed notice": N_(
        "the guardian refused consent under the changed notice"
    ),
    "lapsed: the child reached the age of consent or the maximum validity": N_(
        "lapsed: the child reached the age of consent or the maximum validity"
    ),
}

# view events: consecutive ones of one staff member fold into one timeline row
VIEW_ACTIONS = frozenset({"console.viewed", "subject.viewed", "subject.events_read"})
