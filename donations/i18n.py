"""The reader's language: which one a page speaks, how it sticks, and the catalogs behind it.

Words live in gettext catalogs (donations/translations/<lang>/LC_MESSAGES/messages.po, English
being the source language; docs/translations.md). Pages get them through Flask-Babel, emails
and the widget's words through `translations(lang)`, which needs no request.

A page's language is, in order: the `lang` query parameter (the appeal's CTA link carries the
appeal's language; the language switcher sets it too), the `donations_lang` cookie that a
query's choice leaves for the rest of the visit, the browser's Accept-Language, English.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

from babel import Locale
from babel.support import NullTranslations, Translations
from flask import Flask, Response, g, has_request_context, request
from flask_babel import Babel, get_locale

from donations.paths import PACKAGE
from donations.settings import Settings

# The languages readers can have: English (the source) and one catalog per other language.
# Adding one is its catalog (docs/translations.md) and its code here.
LANGUAGES: tuple[str, ...] = ("en", "ru")
DEFAULT_LANGUAGE = "en"
TRANSLATIONS = PACKAGE / "translations"
DOMAIN = "messages"
COOKIE = "donations_lang"
QUERY = "lang"
# Answers that never speak to a reader in a language of theirs (nor leave a cookie).
NOT_PAGES = ("/api/", "/webhooks/", "/embed/", "/admin", "/docs", "/openapi.json", "/widget.js")


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where shown."""
    return message


def supported(code: str | None) -> str | None:
    """The language of ours a BCP 47-ish code asks for ("ru-RU" → "ru"), else None."""
    value = (code or "").strip().lower().replace("_", "-")
    if value in LANGUAGES:
        return value
    base = value.split("-")[0]
    return base if base in LANGUAGES else None


def translations(lang: str | None) -> NullTranslations:
    """The compiled catalog of one language (English, or unknown: the source words)."""
    return _catalog(supported(lang) or DEFAULT_LANGUAGE)


@cache
def _catalog(language: str) -> NullTranslations:
    if language == DEFAULT_LANGUAGE:
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS), [language], DOMAIN)


@cache
def display_name(lang: str) -> str:
    """A language as its own speakers write it: "English", "Русский"."""
    name = Locale.parse(lang).get_display_name(lang) or lang
    return name[:1].upper() + name[1:]


# --- a request's language -------------------------------------------------------------------
def _choose() -> tuple[str, str]:
    """(language, where it came from) for this request."""
    asked = supported(request.args.get(QUERY))
    if asked:
        return asked, "query"
    kept = supported(request.cookies.get(COOKIE))
    if kept:
        return kept, "cookie"
    accepted = request.accept_languages.best_match(LANGUAGES)
    if accepted:
        return accepted, "browser"
    return DEFAULT_LANGUAGE, "default"


def select_locale() -> str:
    """Flask-Babel's locale selector (outside a request: the default language)."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    if "page_language" not in g:
        g.page_language, g.page_language_source = _choose()
    return str(g.page_language)


def chosen_language() -> str | None:
    """The request's language when something asked for it (a link, the visit's choice, the
    browser), None when it is only the default."""
    if not has_request_context():
        return None
    language = select_locale()
    return language if g.page_language_source != "default" else None


def current_language() -> str:
    """The language this request speaks (or the default outside one)."""
    locale = get_locale() if has_request_context() else None
    return str(locale) if locale else DEFAULT_LANGUAGE


def switch_url(lang: str) -> str:
    """This page in another language, its query kept (a page answering a form post: the
    page that form is on is not addressable, so the account's or the checkout's start)."""
    if request.method in ("GET", "HEAD"):
        path = request.script_root + quote(request.path)
        args: list[tuple[str, str]] = [
            (key, value) for key, value in request.args.items(multi=True) if key != QUERY
        ]
    else:
        path = request.script_root + (
            "/account" if request.path.startswith("/account") else "/contribute"
        )
        args = []
    return f"{path}?{urlencode([*args, (QUERY, lang)])}"


def language_links() -> list[dict[str, Any]]:
    """The language switcher's links: every language, this page's marked."""
    here = current_language()
    return [
        {"code": code, "name": display_name(code), "url": switch_url(code), "current": code == here}
        for code in LANGUAGES
    ]


def money(minor: int | None, currency: str | None, locale: str | None = None) -> str:
    """The `money` filter: reader pages write money as their language does, the admin as its
    reader's browser does (donations.admin.formatting)."""
    from donations.admin.formatting import money as formatted

    if locale is None and has_request_context() and not request.path.startswith(NOT_PAGES):
        locale = current_language()
    return formatted(minor, currency, locale)


def install(app: Flask, settings: Settings) -> None:
    """Flask-Babel with our catalogs and selector; the language kept for the visit."""
    Babel(
        app,
        locale_selector=select_locale,
        default_locale=DEFAULT_LANGUAGE,
        default_translation_directories=str(TRANSLATIONS),
    )
    app.add_template_filter(money, "money")
    secure = settings.env == "production" or settings.public_base_url.startswith("https://")

    @app.context_processor
    def _languages() -> dict[str, Any]:
        return {"language_links": language_links, "page_language": current_language}

    @app.after_request
    def _keep_language(response: Response) -> Response:
        if "page_language" not in g or request.path.startswith(NOT_PAGES):
            return response  # nothing was said in a language here
        if response.mimetype == "text/html":
            # The same URL speaks another language to another browser or visit.
            response.vary.update(("Accept-Language", "Cookie"))
        if g.page_language_source == "query" and request.cookies.get(COOKIE) != g.page_language:
            # For the visit (a session cookie): thank-you, account and sign-in pages follow.
            response.set_cookie(
                COOKIE, g.page_language, path="/", secure=secure, httponly=True, samesite="Lax"
            )
        return response
