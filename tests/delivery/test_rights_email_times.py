"""The rights emails (address confirmation, address changed, the copy of the data) give times in
the child's country's zone, named, like every other email."""

from __future__ import annotations

from datetime import UTC, datetime

from service.consent import policy
from service.delivery import emails

WHEN = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)
SLOVENIA = policy.display_timezone("SI")


def test_the_rights_emails_name_the_local_zone() -> None:
    rendered = [
        emails.render_address_confirmation_email(
            locale="en",
            operator_name="Astra Tutoring",
            confirm_url="https://consent.test/guardian/address/confirm/x",
            expires_at=WHEN,
            timezone=SLOVENIA,
        ),
        emails.render_address_changed_email(
            locale="en",
            operator_name="Astra Tutoring",
            new_address="n***@e***.com",
            changed_at=WHEN,
            timezone=SLOVENIA,
        ),
        emails.render_copy_email(
            locale="en",
            operator_name="Astra Tutoring",
            requested_at=WHEN,
            timezone=SLOVENIA,
            filename="data-copy.json",
            copy_json="{}",
        ),
    ]
    for email in rendered:
        assert "15:05 (Central European Standard Time)" in email.text, email.text
        assert "UTC" not in email.text
    sl = emails.render_address_changed_email(
        locale="sl",
        operator_name="Astra Tutoring",
        new_address="n***@e***.com",
        changed_at=WHEN,
        timezone=SLOVENIA,
    )
    assert "15:05 (srednjeevropski standardni čas)" in sl.text, sl.text
