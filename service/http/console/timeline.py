"""A case's audit trail as rows of the console's timeline, in the staff member's language.

The audit trail keeps every event; the timeline folds consecutive views by one staff member
into one row (each page view is an event, and a case handled over an afternoon would
otherwise read as a list of views).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec

from service.db.audit_events import AuditEvent
from service.http.console.labels import ACTION_LABELS, SYSTEM_REASONS, VIEW_ACTIONS
from service.http.console.rendering import LABELS
from service.i18n import Translator

PURPOSE_DETAILS = ("withdrawn_purposes",)


class TimelineRow(msgspec.Struct, kw_only=True):
    occurred_at: datetime
    first_at: datetime
    actor: str
    action: str
    label: str
    transition: str
    purposes: str
    reason: str
    count: int = 1


def timeline(
    events: list[AuditEvent],
    say: Translator,
    purpose_title: Callable[[str], str],
) -> list[TimelineRow]:
    rows: list[TimelineRow] = []
    for event in events:
        last = rows[-1] if rows else None
        if (
            last is not None
            and event.action in VIEW_ACTIONS
            and last.action == event.action
            and last.actor == event.actor
        ):
            last.count += 1
            last.occurred_at = event.occurred_at
            continue
        rows.append(
            TimelineRow(
                occurred_at=event.occurred_at,
                first_at=event.occurred_at,
                actor=event.actor,
                action=event.action,
                label=say.gettext(ACTION_LABELS[event.action])
                if event.action in ACTION_LABELS
                else "",
                transition=_transition(event, say),
                purposes=", ".join(purpose_title(p) for p in _purposes(event)),
                reason=_reason(event.reason, say),
            )
        )
    return rows


def _status(status: str | None, say: Translator) -> str:
    if status is None:
        return "\u2013"
    return say.gettext(LABELS[status]) if status in LABELS else status


def _transition(event: AuditEvent, say: Translator) -> str:
    if not (event.from_status or event.to_status):
        return ""
    return f"{_status(event.from_status, say)} → {_status(event.to_status, say)}"


def _purposes(event: AuditEvent) -> list[str]:
    for key in PURPOSE_DETAILS:
        value = event.details.get(key) if isinstance(event.details, dict) else None
        if isinstance(value, list):
            return [str(p) for p in value]
    return []


def _reason(reason: str | None, say: Translator) -> str:
    if not reason:
        return ""
    system = SYSTEM_REASONS.get(reason)
    return say.gettext(system) if system is not None else reason
