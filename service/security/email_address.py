"""Guardian email addresses: which are accepted, how one is written, and what counts as one
mailbox.

Accepted is ``local@domain`` and nothing else around it:

- the local part is an ASCII dot-atom (RFC 5322 ``atext`` runs joined by single dots, at most
  64 characters): no quoted strings, no comments, no whitespace or control characters, and no
  RFC 2047 encoded word (``=?utf-8?q?...?=``), which a mail program would show decoded as
  some other address;
- the domain has at least two labels, a top-level label that is not all digits, and is valid
  IDNA 2008. A Unicode domain is converted to its A-labels (``bücher.example`` ->
  ``xn--bcher-kva.example``). There is no UTS 46 mapping, so compatibility forms such as
  full-width letters (U+FF41...) are refused rather than quietly folded into ASCII.

How an address is written (``address``: stored, and the ``To`` of every email): the local part
exactly as given (RFC 5321 leaves its case to the receiving server) and the domain in lower-case
A-labels.

What counts as one guardian (``identity``: the guardian reference in consent records and
tokens): the address with its local part in lower case too, since mailbox providers ignore case.

What counts as one mailbox (``mailbox``: the keyed lookup hash, so the per-address request limit
and the staff lookup by address): the identity without a ``+tag`` (``parent+school@example.com``
-> ``parent@example.com``), so tagged variants of one address share one limit. Emails still go
to the address as given.
"""

from __future__ import annotations

import re
import unicodedata

import idna
import msgspec

MAX_LOCAL_LENGTH = 64
MAX_ADDRESS_LENGTH = 254  # RFC 5321's 256-octet path, minus its angle brackets
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_ENCODED_WORD_START = "=?"
_TAG_SEPARATOR = "+"


class InvalidEmailAddress(ValueError):
    """The text is not an address this service sends to; the message says why (without it)."""


class EmailAddress(msgspec.Struct, frozen=True, kw_only=True):
    local: str
    domain: str

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def identity(self) -> str:
        return f"{self.local.lower()}@{self.domain}"

    @property
    def mailbox(self) -> str:
        local = self.local.lower()
        untagged, separator, _tag = local.partition(_TAG_SEPARATOR)
        return f"{untagged if separator and untagged else local}@{self.domain}"

    @property
    def lookup_forms(self) -> list[str]:
        """The forms hashed to find this address's rows: the mailbox first, then the identity
        itself when it differs (a row hashed under its tagged identity is found by it too)."""
        return list(dict.fromkeys([self.mailbox, self.identity]))


def parse_email_address(raw: str) -> EmailAddress:
    """The address in ``raw``, or :class:`InvalidEmailAddress`; ``raw`` is never trimmed."""
    local, at, domain = raw.rpartition("@")
    if not at or not local or not domain:
        raise InvalidEmailAddress("an address is local-part@domain")
    if _DOT_ATOM.fullmatch(local) is None:
        raise InvalidEmailAddress(
            "the part before @ must be ASCII letters, digits and !#$%&'*+-/=?^_`{|}~ in runs "
            "separated by single dots (no quotes, spaces or control characters)"
        )
    if _ENCODED_WORD_START in local:
        raise InvalidEmailAddress("the part before @ must not contain an encoded word (=?)")
    if len(local) > MAX_LOCAL_LENGTH:
        raise InvalidEmailAddress(f"the part before @ is longer than {MAX_LOCAL_LENGTH} characters")
    parsed = EmailAddress(local=local, domain=_a_label_domain(domain))
    if len(parsed.address) > MAX_ADDRESS_LENGTH:
        raise InvalidEmailAddress(f"the address is longer than {MAX_ADDRESS_LENGTH} characters")
    return parsed


def _a_label_domain(domain: str) -> str:
    if not domain.isascii():
        # Canonically equal spellings (a precomposed or a combining umlaut) are one domain;
        # NFC maps no compatibility form, so full-width letters stay and are refused below.
        domain = unicodedata.normalize("NFC", domain)
    labels = domain.lower().split(".")
    if len(labels) < 2 or labels[-1].isdigit():
        raise InvalidEmailAddress("the part after @ must be a domain name such as example.com")
    try:
        encoded = idna.encode(".".join(labels), uts46=False, transitional=False)
    except idna.IDNAError:
        raise InvalidEmailAddress(
            "the part after @ is not a valid domain name (IDNA 2008)"
        ) from None
    a_label: str = encoded.decode("ascii")
    if a_label.endswith("."):
        raise InvalidEmailAddress("the part after @ must not end with a dot")
    return a_label
