"""Emails are built with a policy whose header registry makes each header class once; what it
builds is byte for byte what the standard policy builds (non-ASCII names and subjects, folded
headers, both bodies)."""

from __future__ import annotations

import email.policy
import re
import uuid

import pytest
from aiosmtplib.email import flatten_message

from service.delivery import smtp
from service.delivery.emails import RenderedEmail

BOUNDARY = re.compile(rb"===============\d+==")


def _flattened(policy: email.policy.EmailPolicy, monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setattr(smtp, "POLICY", policy)
    message = smtp.build_message(
        item_id=uuid.UUID(int=7),
        mail_from="Šola Tutoring d.o.o. <consent@tutoring.example>",
        reply_to="Zasebnost <privacy@tutoring.example>",
        to="guardian@example.com",
        email=RenderedEmail(
            subject="Prosimo za soglasje za račun vašega otroka pri šoli — zelo dolga zadeva",
            text="Pozdravljeni,\nprosimo, odprite povezavo.\n" * 10,
            html="<p>Pozdravljeni, <a href='https://consent.example/guardian/x'>povezava</a></p>",
        ),
        locale="sl",
    )
    del message["Date"]
    message["Date"] = "Fri, 04 Dec 2026 12:00:00 +0000"
    return BOUNDARY.sub(b"BOUNDARY", flatten_message(message))


def test_the_reused_header_classes_build_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    reused = _flattened(smtp.POLICY, monkeypatch)
    standard = _flattened(email.policy.default, monkeypatch)
    assert reused == standard
    assert b"=?utf-8?" in reused  # the non-ASCII headers were encoded, not passed through
