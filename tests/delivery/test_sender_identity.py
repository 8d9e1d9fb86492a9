"""Who guardian emails come from: CONSENT_MAIL_FROM may carry a display name (quoted and, when it
is not ASCII, encoded by the header registry), CONSENT_MAIL_REPLY_TO sets Reply-To; both are
checked at start, so a bad value is one line naming the variable, never a failed send."""

from __future__ import annotations

import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from service.delivery.emails import RenderedEmail
from service.delivery.smtp import build_message, message_id
from service.settings import ConfigError, load_settings

EMAIL = RenderedEmail(subject="Učilnica: a subject", text="Hello", html="<p>Hello</p>")


@pytest.fixture
def env(key_files: dict[str, str]) -> dict[str, str]:
    return {
        "CONSENT_DATABASE_URL": "postgresql://consent@127.0.0.1:5432/consent",
        "CONSENT_SMTP_URL": "smtp://127.0.0.1:2525",
        "CONSENT_MAIL_FROM": "consent@tutoring.example",
        "CONSENT_PUBLIC_URL": "https://consent.example/",
        "CONSENT_SIGNING_KEY_FILE": key_files["signing"],
        "CONSENT_DATA_KEY": key_files["data_key"],
    }


def on_the_wire(mail_from: str, reply_to: str | None = None) -> EmailMessage:
    built = build_message(
        item_id=uuid.uuid4(),
        mail_from=mail_from,
        to="parent@example.com",
        email=EMAIL,
        locale="en",
        reply_to=reply_to,
    )
    parsed = message_from_bytes(built.as_bytes(policy=policy.SMTP), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("consent@tutoring.example", "consent@tutoring.example"),
        ("Example Tutoring <consent@example.com>", "Example Tutoring <consent@example.com>"),
        ('"Tutoring (demo)" <consent@example.com>', '"Tutoring (demo)" <consent@example.com>'),
        ("Mr. Tutor <consent@example.com>", '"Mr. Tutor" <consent@example.com>'),
        ("Učilnica Tutoring <consent@ucilnica.si>", "Učilnica Tutoring <consent@ucilnica.si>"),
    ],
)
def test_the_sender_may_carry_a_display_name(env: dict[str, str], raw: str, kept: str) -> None:
    settings = load_settings({**env, "CONSENT_MAIL_FROM": raw, "CONSENT_MAIL_REPLY_TO": raw})
    assert settings.mail_from == kept
    assert settings.mail_reply_to == kept


@pytest.mark.parametrize(
    "raw",
    [
        "consent",
        "Example Tutoring",
        "Example <consent@example.com",
        "A <a@example.com>, B <b@example.com>",
        "Example <consent@example.com>\r\nBcc: victim@example.com",
        "Example <con sent@example.com>",
    ],
)
@pytest.mark.parametrize("variable", ["CONSENT_MAIL_FROM", "CONSENT_MAIL_REPLY_TO"])
def test_a_bad_mailbox_is_one_line_naming_the_variable(
    env: dict[str, str], raw: str, variable: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({**env, variable: raw})
    message = str(raised.value)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message


def test_reply_to_is_optional(env: dict[str, str]) -> None:
    assert load_settings(env).mail_reply_to is None
    assert "Reply-To" not in on_the_wire("consent@tutoring.example")


def test_from_and_reply_to_headers_are_built_by_the_header_registry() -> None:
    sent = on_the_wire(
        '"Učilnica Tutoring, d.o.o." <consent@ucilnica.si>',
        reply_to="Podpora <podpora@ucilnica.si>",
    )
    [sender] = sent["From"].addresses
    assert sender.display_name == "Učilnica Tutoring, d.o.o."
    assert sender.addr_spec == "consent@ucilnica.si"
    [reply] = sent["Reply-To"].addresses
    assert (reply.display_name, reply.addr_spec) == ("Podpora", "podpora@ucilnica.si")
    [raw_from] = [
        line
        for line in sent.as_bytes(policy=policy.SMTP).split(b"\r\n")
        if line.startswith(b"From: ")
    ]
    assert raw_from.isascii()
    assert b"=?utf-8?" in raw_from  # the non-ASCII name is encoded (RFC 2047)
    assert sent["Message-ID"].endswith("@ucilnica.si>")


def test_message_id_takes_the_domain_of_the_address() -> None:
    item = uuid.uuid4()
    assert message_id(item, "Example <consent@example.com>") == f"<{item}@example.com>"
