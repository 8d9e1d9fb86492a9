"""The translation catalogs are complete, consistent with their sources, and compiled."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

from service.i18n import DEFAULT_LOCALE, LOCALE_DIR, LOCALES
from service.i18n.catalogs import shipped_locales

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = LOCALE_DIR / "messages.pot"
PYBABEL = str(Path(sys.executable).with_name("pybabel"))
TRANSLATIONS = [locale for locale in LOCALES if locale != DEFAULT_LOCALE]
# Python's named placeholders, the only style the service formats; "{name}" would show raw.
PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]")
UNNAMED_OR_BRACED = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]|\{\w*\}")


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as file:
        return read_po(file)


def po_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"


def key(message: Message) -> tuple[str | None, str | tuple[str, ...]]:
    """Context and msgid (with its plural); a read .mo gives lists where a .po gives tuples."""
    msgid = message.id if isinstance(message.id, str) else tuple(message.id)
    return message.context, msgid


def keys(catalog: Catalog) -> set[tuple[str | None, str | tuple[str, ...]]]:
    return {key(message) for message in catalog if message.id}


def forms(message: Message) -> list[str]:
    return [message.string] if isinstance(message.string, str) else list(message.string)


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def source_placeholders(message: Message) -> set[str]:
    ids = message.id if isinstance(message.id, tuple) else (message.id,)
    return set().union(*(placeholders(text) for text in ids))


def test_every_catalog_in_the_directory_is_shipped() -> None:
    assert LOCALES[0] == DEFAULT_LOCALE
    assert TRANSLATIONS, "at least one translation ships"
    with_sources = sorted(path.parents[1].name for path in LOCALE_DIR.glob("*/LC_MESSAGES/*.po"))
    assert sorted(TRANSLATIONS) == with_sources


def test_a_new_language_is_shipped_by_adding_its_compiled_catalog(tmp_path: Path) -> None:
    catalog = Catalog(locale="de")
    catalog.add("Give consent", "Einwilligen")
    target = tmp_path / "de" / "LC_MESSAGES"
    target.mkdir(parents=True)
    (tmp_path / "fr" / "LC_MESSAGES").mkdir(parents=True)  # sources only: not compiled yet
    with (target / "messages.mo").open("wb") as file:
        write_mo(file, catalog)
    assert shipped_locales(tmp_path) == ("en", "de")


def test_the_template_lists_exactly_what_the_sources_mark(tmp_path: Path) -> None:
    """`make translations` was run after the last change to a message in code or templates."""
    extracted = tmp_path / "messages.pot"
    extract = [PYBABEL, "--quiet", "extract", "-F", "babel.cfg", "-c", "TRANSLATORS:"]
    subprocess.run(
        [*extract, "-o", extracted, "."],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    fresh, committed = read_catalog(extracted), read_catalog(TEMPLATE)
    assert keys(fresh) - keys(committed) == set(), "messages missing from messages.pot"
    assert keys(committed) - keys(fresh) == set(), "messages.pot lists messages no longer used"
    for message in fresh:
        if message.id:
            listed = committed.get(message.id, message.context)
            assert listed is not None
            assert listed.auto_comments == message.auto_comments, message.id


@pytest.mark.parametrize("locale", TRANSLATIONS)
def test_every_message_is_translated(locale: str) -> None:
    catalog = read_catalog(po_path(locale))
    assert keys(catalog) == keys(read_catalog(TEMPLATE)), "run `make translations`"
    plural_forms = Locale.parse(locale).plural_form
    assert catalog.num_plurals == len(plural_forms.tags | {"other"})
    for message in catalog:
        if not message.id:
            continue
        assert not message.fuzzy, f"{locale}: fuzzy: {message.id!r}"
        translated = forms(message)
        expected = catalog.num_plurals if isinstance(message.id, tuple) else 1
        assert len(translated) == expected, message.id
        assert all(text.strip() for text in translated), f"{locale}: untranslated: {message.id!r}"


@pytest.mark.parametrize("locale", TRANSLATIONS)
def test_translations_keep_the_placeholders_of_their_source(locale: str) -> None:
    catalog = read_catalog(po_path(locale))
    for message, errors in catalog.check():  # Babel's own format and plural checks
        assert not errors, (message.id, errors)
    for message in catalog:
        if not message.id:
            continue
        source = source_placeholders(message)
        for text in forms(message):
            assert placeholders(text) == source, f"{locale}: {message.id!r} -> {text!r}"
            assert not UNNAMED_OR_BRACED.findall(PLACEHOLDER.sub("", text)), text


def test_source_messages_use_named_placeholders_only() -> None:
    for message in read_catalog(TEMPLATE):
        if message.id:
            for text in message.id if isinstance(message.id, tuple) else (message.id,):
                assert not UNNAMED_OR_BRACED.findall(PLACEHOLDER.sub("", text)), text
                assert ("python-format" in message.flags) == bool(placeholders(text)), text


@pytest.mark.parametrize("locale", TRANSLATIONS)
def test_compiled_catalogs_match_their_sources(locale: str, tmp_path: Path) -> None:
    """The committed .mo is what `make translations` compiles from the committed .po."""
    source = read_catalog(po_path(locale))
    with (po_path(locale).with_suffix(".mo")).open("rb") as file:
        compiled = read_mo(file)
    expected = {key(m): tuple(forms(m)) for m in source if m.id and not m.fuzzy}
    actual = {key(m): tuple(forms(m)) for m in compiled if m.id}
    assert actual == expected, "run `make translations`"
    assert compiled.plural_forms == source.plural_forms
    # the sources themselves are in the canonical form `make translations` writes
    rewritten = tmp_path / "messages.po"
    with rewritten.open("wb") as file:
        write_po(file, source, width=76, include_previous=True)
    assert rewritten.read_text("utf-8") == po_path(locale).read_text("utf-8")
