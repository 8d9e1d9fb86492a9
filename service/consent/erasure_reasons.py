"""Why staff erased a child's data, as the erasure's anonymous tombstone keeps it.

The tombstone (``subject.erased``) can never be redacted, so it holds only a category from the
list below and, optionally, the id of the tracked rights request the erasure answers. Staff's
own words about a case belong on that rights request, which an erasure anonymises with the
rest of the child's data; they never reach the tombstone.
"""

from __future__ import annotations

from enum import StrEnum

from service.i18n import N_


class ErasureReason(StrEnum):
    GUARDIAN_REQUEST = "guardian_request"
    ACCOUNT_CLOSED = "account_closed"
    UNLAWFULLY_COLLECTED = "unlawfully_collected"
    LEGAL_OBLIGATION = "legal_obligation"
    OTHER = "other"


# category -> what staff read when choosing it (a gettext message), in the order offered
ERASURE_REASONS: dict[ErasureReason, str] = {
    ErasureReason.GUARDIAN_REQUEST: N_("The guardian asked for erasure (Art. 17)"),
    ErasureReason.ACCOUNT_CLOSED: N_("The child's account was closed"),
    ErasureReason.UNLAWFULLY_COLLECTED: N_("The data was collected unlawfully"),
    ErasureReason.LEGAL_OBLIGATION: N_("A legal obligation requires the erasure"),
    ErasureReason.OTHER: N_("Another reason"),
}
