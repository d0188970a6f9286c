"""The gettext catalogs: complete, current, compiled, with Russian's three plural forms.

A message without a Russian translation, a catalog that misses a message the code now says
(extraction finds it), or a .mo that is older than its .po fails here.
"""

from __future__ import annotations

import re
from gettext import c2py
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from donations import i18n
from donations.appeals.ui import widget_strings

ROOT = Path(__file__).resolve().parents[2]
CATALOGS = ROOT / "donations" / "translations"
TRANSLATED = [lang for lang in i18n.LANGUAGES if lang != i18n.DEFAULT_LANGUAGE]
PLACEHOLDERS = re.compile(r"%\((\w+)\)[sd]|\{(\w+)\}")


def po(lang: str) -> Catalog:
    with open(CATALOGS / lang / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=lang)


def key(message) -> tuple[str | None, str]:
    msgid = message.id[0] if isinstance(message.id, (tuple, list)) else message.id
    return message.context, msgid


def text(message) -> tuple[str, ...]:
    return tuple(message.string) if isinstance(message.string, (tuple, list)) else (message.string,)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """What `pybabel extract -F babel.cfg` finds in the code today (into a temp file)."""
    out = tmp_path_factory.mktemp("extract") / "messages.pot"
    CommandLineInterface().run(
        ["pybabel", "-q", "extract", "-F", str(ROOT / "babel.cfg"), "-o", str(out), str(ROOT)]
    )
    with open(out, "rb") as f:
        return read_po(f)


def test_every_language_offered_has_a_compiled_catalog_and_every_catalog_is_offered():
    on_disk = sorted(p.name for p in CATALOGS.iterdir() if p.is_dir())
    assert on_disk == sorted(TRANSLATED)
    for lang in TRANSLATED:
        assert (CATALOGS / lang / "LC_MESSAGES" / "messages.mo").is_file()


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_message_has_a_translation_that_is_not_fuzzy(lang):
    catalog = po(lang)
    assert len(catalog) > 250
    untranslated = [
        key(m)
        for m in catalog
        if m.id
        and (
            "fuzzy" in m.flags
            or not m.string
            or (isinstance(m.string, tuple) and not all(m.string))
            or (isinstance(m.string, tuple) and len(m.string) != catalog.num_plurals)
        )
    ]
    assert untranslated == []


@pytest.mark.parametrize("lang", TRANSLATED)
def test_no_message_the_code_says_is_missing_from_the_catalogs(extracted, lang):
    catalog = po(lang)
    known = {key(m) for m in catalog if m.id}
    missing = sorted(key(m) for m in extracted if m.id and key(m) not in known)
    assert missing == [], "run pybabel extract and update (docs/translations.md)"
    with open(CATALOGS / "messages.pot", "rb") as f:
        template = {key(m) for m in read_po(f) if m.id}
    assert {key(m) for m in extracted if m.id} == template


@pytest.mark.parametrize("lang", TRANSLATED)
def test_translations_keep_the_placeholders_of_their_message(lang):
    for message in po(lang):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(PLACEHOLDERS.findall(ids[-1]))
        for text in strings:
            # A singular may drop the number ("одну минуту"), never add or rename one.
            assert set(PLACEHOLDERS.findall(text)) <= wanted | set(PLACEHOLDERS.findall(ids[0]))
            if len(ids) == 1:
                assert set(PLACEHOLDERS.findall(text)) == wanted, message.id


@pytest.mark.parametrize("lang", TRANSLATED)
def test_the_compiled_catalog_is_the_po_file_compiled(lang):
    source = po(lang)
    with open(CATALOGS / lang / "LC_MESSAGES" / "messages.mo", "rb") as f:
        compiled = read_mo(f)
    expected = {key(m): text(m) for m in source if m.id}
    actual = {key(m): text(m) for m in compiled if m.id}
    assert actual == expected, "run pybabel compile -d donations/translations"
    assert compiled.plural_forms == source.plural_forms


def test_russian_has_three_plural_forms_chosen_as_russian_does():
    catalog = po("ru")
    assert catalog.num_plurals == 3
    # The header's expression (what gettext runs): one, few, many.
    plural = c2py(catalog.plural_expr)
    assert [plural(n) for n in (1, 3, 5, 11, 21, 22, 25, 111, 0)] == [0, 1, 2, 2, 0, 1, 2, 2, 2]
    t = i18n.translations("ru")
    minutes = (
        "Several links were asked for recently. Please use the latest one, or ask again in "
        "about %(num)d minute.",
        "Several links were asked for recently. Please use the latest one, or ask again in "
        "about %(num)d minutes.",
    )
    said = {n: t.ngettext(*minutes, n) % {"num": n} for n in (1, 3, 5, 11, 21, 22, 25)}
    assert said[1].endswith("через 1 минуту.")
    assert said[3].endswith("через 3 минуты.")
    assert said[5].endswith("через 5 минут.")
    assert said[11].endswith("через 11 минут.")
    assert said[21].endswith("через 21 минуту.")
    assert said[22].endswith("через 22 минуты.")
    assert said[25].endswith("через 25 минут.")


def test_english_is_the_source_and_an_unknown_language_reads_english():
    for lang in ("en", "en-GB", "pt-br", "xx", "", None):
        t = i18n.translations(lang)
        assert t.gettext("Contribute") == "Contribute"
    assert i18n.translations("ru-RU").gettext("Contribute") == "Поддержать"


@pytest.mark.parametrize(
    ("code", "language"),
    [("ru", "ru"), ("ru-RU", "ru"), ("RU_ru", "ru"), ("en-gb", "en"), ("pt-br", None), ("", None)],
)
def test_a_language_code_is_one_of_ours_or_none(code, language):
    assert i18n.supported(code) == language


# --- the widget's own words -------------------------------------------------------------------
def test_the_widget_gets_its_words_in_russian_with_every_plural_form():
    words = widget_strings("ru")
    assert words["close"] == "Закрыть"
    assert words["label"] == "Поддержите нашу журналистику"
    assert words["secure"] == "Безопасная оплата картой."
    assert words["cancel_any_time"] == "Отменить можно в любой момент."
    assert words["per.monthly"] == "{amount} в месяц"
    assert words["progress_text"] == "собрано {raised} из {goal}"
    # One key per CLDR plural category (what Intl.PluralRules('ru').select(n) answers).
    assert {k for k in words if k.startswith("read.")} == {
        "read.one",
        "read.few",
        "read.many",
        "read.other",
    }
    for n, category, noun in ((1, "one", "статью"), (3, "few", "статьи"), (5, "many", "статей")):
        assert words[f"read.{category}"].replace("{n}", str(n)) == (
            f"Вы прочитали {n} {noun} за последние 30 дней"
        )
    assert all(value and "%(" not in value for value in words.values())


def test_the_widget_gets_english_for_english_and_for_languages_we_lack():
    words = widget_strings("en")
    assert words["close"] == "Close"
    assert words["read.one"] == "You\u2019ve read {n} article in the last 30 days"
    assert words["read.other"] == "You\u2019ve read {n} articles in the last 30 days"
    assert {k for k in words if k.startswith("read.")} == {"read.one", "read.other"}
    assert widget_strings("pt-br") == words
    assert widget_strings("ru-RU") == widget_strings("ru")
    assert set(widget_strings("ru")) - set(words) == {"read.few", "read.many"}


def test_the_widget_words_are_a_fresh_dict_each_time():
    words = widget_strings("ru")
    words["close"] = "changed"
    assert widget_strings("ru")["close"] == "Закрыть"
