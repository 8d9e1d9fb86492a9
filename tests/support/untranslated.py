"""What would show that a rendering in a translated language still carries English."""

from __future__ import annotations

import html
import re

from babel.messages.pofile import read_po

from service.consent.purposes import Catalogue
from service.i18n import DEFAULT_LOCALE, LOCALE_DIR

# the words between a message's placeholders ("%(operator)s asks for your consent")
_PLACEHOLDER = re.compile(r"%\(\w+\)\w")


def english_only_texts(locale: str) -> set[str]:
    """The English sources (of three words or more) the catalog of ``locale`` translates into
    other words: any of them in a rendering in ``locale`` is a message left untranslated."""
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as file:
        catalog = read_po(file)
    sources = set()
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        translated = message.string if isinstance(message.string, tuple) else (message.string,)
        for source in ids:
            for part in _PLACEHOLDER.split(source):
                part = part.strip(" .,:")
                if len(part.split()) >= 3 and all(part not in text for text in translated):
                    sources.add(part)
    return sources


def english_purpose_texts(catalogue: Catalogue, locale: str) -> set[str]:
    """The English texts of the operator's purposes that have their own text in ``locale``."""
    assert locale != DEFAULT_LOCALE
    texts = set()
    for purpose in catalogue.purposes:
        fields = [purpose.title, purpose.description]
        fields += [f for r in purpose.recipients for f in (r.name, r.why)]
        for field in fields:
            english, own = field[DEFAULT_LOCALE], field.get(locale, "")
            if own and own != english and english not in own:
                texts.add(english)
    return texts


def readable(document: str, *, names: tuple[str, ...] = ()) -> str:
    """A rendering's text as one line, with entities decoded and whitespace collapsed, and the
    proper ``names`` in it (the operator's, which may hold an English word) left out."""
    text = " ".join(html.unescape(document).split())
    for name in names:
        text = text.replace(name, "")
    return text
