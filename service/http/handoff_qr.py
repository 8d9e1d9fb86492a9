"""The handoff's QR code as an SVG image (segno: pure Python, no image libraries)."""

from __future__ import annotations

import io

import segno

from service.i18n import N_, translator

# the image's accessible name, which screen readers announce
QR_TITLE = N_("QR code")


def svg(url: str, locale: str) -> bytes:
    """A QR code of ``url``: medium error correction (a phone reads it off a scratched or
    dimmed screen), dark on light whatever the page's colours, with its quiet zone; its title
    in ``locale``."""
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(
        buffer,
        kind="svg",
        scale=6,
        border=4,
        dark="#000",
        light="#fff",
        xmldecl=False,
        svgns=True,
        title=translator(locale).gettext(QR_TITLE),
        nl=False,
    )
    return buffer.getvalue()
