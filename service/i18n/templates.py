"""Jinja's i18n extension for the email and page templates.

The gettext callables are installed once per environment and translate into the language of
the ``locale`` variable of each render, so one environment serves every language and request.
Translations are text, never markup: in an autoescaped template they are escaped like any
other value (Jinja would otherwise trust them), and so are the values put into them.
"""

from __future__ import annotations

import gettext
from typing import Any, cast

import jinja2
import markupsafe
from jinja2.runtime import Context

from service.i18n.catalogs import negotiate_locale, translations
from service.i18n.translator import translator


def install_translations(environment: jinja2.Environment) -> None:
    """``_()``, ``gettext``, ``ngettext``, ``pgettext`` and ``{% trans %}`` in templates, and
    ``data_category(code)`` and the ``colon`` filter. Every render needs a ``locale`` variable."""
    environment.add_extension("jinja2.ext.i18n")
    cast(Any, environment).install_gettext_callables(
        gettext=_gettext,
        ngettext=_ngettext,
        pgettext=_pgettext,
        npgettext=_npgettext,
        newstyle=True,
    )
    environment.globals["data_category"] = _data_category
    environment.filters["colon"] = _with_colon


def _locale(context: Context) -> str:
    locale = context.resolve_or_missing("locale")
    if not isinstance(locale, str):
        raise RuntimeError(f"{context.name}: a translated template needs a `locale` variable")
    return locale


def _catalog(context: Context) -> gettext.NullTranslations:
    return translations(negotiate_locale(_locale(context)))


def _as_text(context: Context, translated: str) -> str:
    """Escaped in an autoescaped template; Jinja then escapes the placeholders' values too."""
    return markupsafe.escape(translated) if context.eval_ctx.autoescape else translated


@jinja2.pass_context
def _gettext(context: Context, message: str) -> str:
    return _as_text(context, _catalog(context).gettext(message))


@jinja2.pass_context
def _ngettext(context: Context, singular: str, plural: str, num: int) -> str:
    return _as_text(context, _catalog(context).ngettext(singular, plural, num))


@jinja2.pass_context
def _pgettext(context: Context, message_context: str, message: str) -> str:
    return _as_text(context, _catalog(context).pgettext(message_context, message))


@jinja2.pass_context
def _npgettext(context: Context, message_context: str, singular: str, plural: str, num: int) -> str:
    return _as_text(context, _catalog(context).npgettext(message_context, singular, plural, num))


@jinja2.pass_context
def _data_category(context: Context, code: str) -> str:
    return translator(_locale(context)).data_category(code)


# French sets a colon apart from its label with a no-break space ("Données utilisées :");
# the other shipped languages write it right after the word.
_BEFORE_COLON = {"fr": "\u00a0"}


@jinja2.pass_context
def _with_colon(context: Context, label: str) -> str:
    """``{{ _("Data used")|colon }}``: the label followed by a colon, as its language writes it."""
    return label + _BEFORE_COLON.get(negotiate_locale(_locale(context)), "") + ":"
