"""The widget's own words (buttons, labels, the gate's line, accessibility labels), in the
reader's language, from the same gettext catalogs as the pages (docs/translations.md).

`widget_strings(lang)` answers a flat {key: text} a browser can use as is: placeholders are
`{name}` (filled in by the widget), money is formatted by the widget with
`Intl.NumberFormat(lang, …)`. The one plural, "You've read N articles…", comes as one key per
CLDR plural category of the language (`read.one`, `read.few`, `read.many`, `read.other`; English
has one and other): the widget picks `read.` + `new Intl.PluralRules(lang).select(n)`, falling
back to `read.other`, and replaces `{n}`. Needs no request: the appeal's fast path may call it.
"""

from __future__ import annotations

from functools import cache

from babel import Locale

from donations.i18n import DEFAULT_LANGUAGE, N_, supported, translations

# key → English source (the msgid); the keys are the widget's contract, stable across releases.
WIDGET_WORDS = {
    "close": N_("Close"),
    "label": N_("Support our journalism"),
    "raised": N_("{raised} raised"),
    "goal": N_("Goal {goal}"),
    "first": N_("Be among the first to give"),
    "secure": N_("Secure payment by card."),
    "cancel_any_time": N_("Cancel at any time."),
    "per.monthly": N_("{amount} a month"),
    "per.annual": N_("{amount} a year"),
    "amount": N_("Amount"),
    "progress": N_("Appeal progress"),
    "progress_text": N_("{raised} raised of our {goal} goal"),
    "gate_label": N_("Support our journalism to keep reading"),
}
# CLDR's plural categories, in the order browsers' Intl.PluralRules names them.
CATEGORIES = ("zero", "one", "two", "few", "many", "other")


def widget_strings(lang: str) -> dict[str, str]:
    """The widget's words in `lang` (its base language, else English)."""
    return dict(_strings(supported(lang) or DEFAULT_LANGUAGE))


@cache
def _strings(language: str) -> tuple[tuple[str, str], ...]:
    catalog = translations(language)
    words = {key: catalog.gettext(source) for key, source in WIDGET_WORDS.items()}
    for category, n in plural_samples(language).items():
        words[f"read.{category}"] = catalog.ngettext(
            "You\u2019ve read {n} article in the last 30 days",
            "You\u2019ve read {n} articles in the last 30 days",
            n,
        )
    return tuple(words.items())


def plural_samples(language: str) -> dict[str, int]:
    """A whole number of each plural category the language has ("other" always), by CLDR's
    rules, the same as Intl.PluralRules: ru → {one: 1, few: 2, many: 5, other: …}."""
    rule = Locale.parse(language).plural_form
    samples: dict[str, int] = {}
    for n in range(0, 200):
        samples.setdefault(rule(n), n)
    ordered = {c: samples[c] for c in CATEGORIES if c in samples}
    # Russian's "other" is for fractions only: whole numbers get "many"'s words then.
    ordered.setdefault("other", samples.get("many", 2))
    return ordered
