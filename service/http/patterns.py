"""Patterns for input validation that match a whole value, in Python and in OpenAPI alike.

msgspec (``Meta(pattern=...)``) and Litestar's parameters test a pattern with ``re.search``,
where ``$`` also matches just before a final newline: ``^[a-z]+$`` accepts ``"kid\\n"``.
Python's ``\\Z`` would close that, but the same pattern is published in the OpenAPI document,
whose dialect is ECMA-262: there ``\\Z`` is an error (``u`` flag) or a literal ``Z``, so clients
and the interactive docs would refuse every valid value. ``$(?!\\n)`` means "the very end" in
both dialects: ``$`` is the end or just before a final newline, and the lookahead rules out the
newline.
"""

from __future__ import annotations


def whole(term: str) -> str:
    """``term`` (one regular-expression term, no anchors) anchored to the whole value."""
    return f"^{term}$(?!\\n)"


SUBJECT_ID_PATTERN = whole("[A-Za-z0-9._:@-]+")
PURPOSE_ID_PATTERN = whole("[a-z0-9_]+")
PRINTABLE_ASCII_PATTERN = whole("[\\x20-\\x7e]+")
# No control characters except tab and line breaks: text a person wrote, kept and shown.
TEXT_PATTERN = whole("[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]+")
EMAIL_LOOKUP_PATTERN = whole("[^\\s@]+@[^\\s@]+")
# A language tag ("sl", "sl-SI", "pt_BR"); which languages are shipped is decided after it.
LANGUAGE_TAG_PATTERN = whole("[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*")
# One line of text shown to a guardian: no control characters (C0, C1), no bidirectional
# overrides, isolates or marks, no zero-width or invisible formatting characters, no line or
# paragraph separators, so what the guardian reads is what was sent.
SHOWN_TEXT_PATTERN = whole(
    "[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff]+"
)
