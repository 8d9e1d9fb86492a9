"""The console's rights pages (the rights-requests queue, the confirmation of a case action):
opening one is an audit event naming the staff member (``console_views.viewed``), like every
console page.

The actions themselves are the staff API's domain functions (``data_requests``,
``restrictions``, ``rectification``, ``subjects``) called with the session's staff member.
"""

from __future__ import annotations

import uuid

from service.db import consents as consents_repo
from service.db.connection import Connection


async def consent_of_subject(
    connection: Connection, subject_id: str, consent_id: uuid.UUID
) -> bool:
    consent = await consents_repo.get_consent(connection, consent_id)
    return consent is not None and consent.subject_id == subject_id
