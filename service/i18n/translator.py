"""Looking messages up: ``translator(locale).gettext("Give consent")``.

Placeholders are Python's named ``%(name)s`` (the style Jinja's i18n extension and Babel's
format check use); ``ngettext`` passes the count as ``num``. A message is always formatted,
as Jinja does, so a literal percent sign is written ``%%``.
"""

from __future__ import annotations

from service.i18n.catalogs import negotiate_locale, translations


def N_(message: str) -> str:
    """Marks a message for extraction where it is only looked up later (by a code, say)."""
    return message


# The data categories a purpose names in the catalogue, as the guardian reads them; an unknown
# category shows its code.
DATA_CATEGORIES = {
    "account": N_("Account details (username and sign-in data)"),
    "lessons": N_("Lessons (times, tutor and topics covered)"),
    "progress": N_("Learning progress (exercise results and tutor feedback)"),
    "guardian_contact": N_("Your email address"),
}


class Translator:
    """The messages of one shipped language (``locale`` is negotiated: unknown means English)."""

    def __init__(self, locale: str | None) -> None:
        self.locale = negotiate_locale(locale)
        self._catalog = translations(self.locale)

    def gettext(self, message: str, /, **params: object) -> str:
        return self._catalog.gettext(message) % params

    __call__ = gettext

    def ngettext(self, singular: str, plural: str, num: int, /, **params: object) -> str:
        """The plural form of the language for ``num``, which fills ``%(num)d``."""
        return self._catalog.ngettext(singular, plural, num) % {"num": num, **params}

    def pgettext(self, context: str, message: str, /, **params: object) -> str:
        """``message`` where the same English words need another translation (``context``)."""
        return self._catalog.pgettext(context, message) % params

    def retention(self, days: int) -> str:
        """How long a purpose keeps data, in the largest whole unit: years, months or days."""
        if days and days % 365 == 0:
            return self.ngettext(
                "Kept for at most %(num)d year", "Kept for at most %(num)d years", days // 365
            )
        if days and days % 30 == 0:
            return self.ngettext(
                "Kept for at most %(num)d month", "Kept for at most %(num)d months", days // 30
            )
        return self.ngettext("Kept for at most %(num)d day", "Kept for at most %(num)d days", days)

    def data_category(self, code: str) -> str:
        message = DATA_CATEGORIES.get(code)
        return self.gettext(message) if message is not None else code


def translator(locale: str | None) -> Translator:
    return Translator(locale)
