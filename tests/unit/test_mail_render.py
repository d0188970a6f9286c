"""Rendering receipts and notices: plain data in, words out (no database, no network)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from donations.mail.render import (
    Newsroom,
    Receipt,
    RenderError,
    compose,
    format_money,
    language_for,
    render,
)
from donations.mail.sender import backoff
from donations.mail.transport import mask_address

NEWSROOM = Newsroom(
    name="The Moscow Times",
    address="Amsterdam, Netherlands",
    account_url="https://donate.example/account",
)


def receipt(**changes) -> Receipt:
    values = dict(
        number="ctb_0123456789abcdef01234567",
        currency="usd",
        charged=2606,
        gift=2500,
        covered=106,
        frequency="one_off",
        paid_at=datetime(2026, 11, 28, 10, 0),
    )
    values.update(changes)
    return Receipt(**values)


def plain(text: str) -> str:
    return text.replace("\xa0", " ").replace("\u202f", " ")


def test_zero_decimal_currencies_have_no_minor_unit():
    assert format_money(5000, "jpy", "en") == "¥5,000"
    assert format_money(2606, "usd", "en_US") == "$26.06"
    assert plain(format_money(123456, "eur", "ru")) == "1 234,56 €"


def test_a_jpy_receipt_shows_whole_yen():
    out = render(
        "receipt",
        "en",
        NEWSROOM,
        receipt=receipt(currency="jpy", charged=5000, gift=5000, covered=0),
    )
    assert "Total charged: ¥5,000" in out.text
    assert "¥50.00" not in out.text and "¥5,000.00" not in out.text


def test_a_covered_fee_is_shown_apart_from_the_gift():
    out = render("receipt", "en", NEWSROOM, donor_name="Ann", receipt=receipt())
    assert "Your gift: $25.00" in out.text
    assert "Card fees you covered: $1.06" in out.text
    assert "Total charged: $26.06" in out.text
    assert "$1.06" in out.html and "$25.00" in out.html


def test_without_a_covered_fee_only_the_amount_charged_is_listed():
    out = render("receipt", "en", NEWSROOM, receipt=receipt(charged=2500, covered=0))
    assert "Your gift:" not in out.text and "Card fees" not in out.text
    assert "Total charged: $25.00" in out.text


def test_a_receipt_names_the_newsroom_the_account_page_and_is_not_tax_advice():
    out = render("receipt", "en", NEWSROOM, receipt=receipt())
    assert out.subject == "Your receipt from The Moscow Times"
    for part in (out.text, out.html):
        assert "ctb_0123456789abcdef01234567" in part
        assert "November 28, 2026" in part
        assert "https://donate.example/account" in part
        assert "Amsterdam, Netherlands" in part
        assert "not tax advice" in part


def test_a_configured_tax_note_replaces_the_not_tax_advice_line():
    newsroom = Newsroom(**{**NEWSROOM.__dict__, "tax_note": "Registered charity no. 123."})
    out = render("receipt", "en", newsroom, receipt=receipt())
    assert "Registered charity no. 123." in out.text
    assert "not tax advice" not in out.text


def test_a_renewal_receipt_says_so_and_gives_the_next_charge_date():
    out = render(
        "renewal_receipt",
        "en",
        NEWSROOM,
        receipt=receipt(frequency="monthly", renewal=True, next_charge=date(2026, 12, 28)),
    )
    assert out.subject == "Receipt for your recurring contribution to The Moscow Times"
    assert "Frequency: Monthly" in out.text
    assert "Next payment: December 28, 2026" in out.text
    assert "change or cancel your recurring contribution" in out.text


def test_russian_readers_get_russian_words_dates_and_money():
    out = render("receipt", "ru", NEWSROOM, donor_name="Анна", receipt=receipt())
    text = plain(out.text)
    assert out.subject == "Квитанция о пожертвовании — The Moscow Times"
    assert "Здравствуйте, Анна!" in text
    assert "Ваше пожертвование: 25,00 $" in text
    assert "Дата: 28 ноября 2026 г." in text
    assert 'lang="ru"' in out.html


@pytest.mark.parametrize(
    ("lang", "language", "locale"),
    [
        ("ru", "ru", "ru"),
        ("ru-RU", "ru", "ru_RU"),
        ("en-gb", "en", "en_GB"),
        ("pt-br", "en", "en"),  # no Portuguese words yet: all English, numbers too
        ("xx", "en", "en"),
        ("", "en", "en"),
        (None, "en", "en"),
    ],
)
def test_unknown_languages_fall_back_to_english(lang, language, locale):
    assert language_for(lang) == (language, locale)


def test_an_unknown_language_renders_in_english():
    out = render("receipt", "pt-br", NEWSROOM, receipt=receipt())
    assert out.subject == "Your receipt from The Moscow Times"
    assert "Total charged: $26.06" in out.text


def test_a_sign_in_link_says_it_works_once_for_so_many_minutes():
    payload = {"url": "https://donate.example/account/link?t=a&b=c", "expires_minutes": 15}
    out = render("sign_in_link", "en", NEWSROOM, payload=payload)
    # The link opens the pages in the email's language (i18n: a query's language sticks).
    assert "https://donate.example/account/link?t=a&b=c&lang=en" in out.text
    assert 'href="https://donate.example/account/link?t=a&amp;b=c&amp;lang=en"' in out.html
    assert "It works once, for 15 minutes." in out.text
    assert "If you did not ask" in out.text
    assert (
        "It works once, for 1 minute."
        in render("sign_in_link", "en", NEWSROOM, payload={**payload, "expires_minutes": 1}).text
    )
    ru = render("sign_in_link", "ru", NEWSROOM, payload=payload)
    assert "15 мин." in ru.text
    assert "https://donate.example/account/link?t=a&b=c&lang=ru" in ru.text


def test_an_email_of_unknown_language_links_to_the_pages_without_choosing_one():
    out = render("receipt", None, NEWSROOM, receipt=receipt())
    assert "https://donate.example/account\n" in out.text
    assert 'href="https://donate.example/account"' in out.html


def test_every_email_carries_the_newsrooms_brand():
    branded = Newsroom(
        **{
            **NEWSROOM.__dict__,
            "logo_url": "https://cdn.example/logo.png",
            "accent": "#c8102e",
            "support_email": "help@newsroom.example",
        }
    )
    for kind, extra in (
        ("receipt", {"receipt": receipt()}),
        ("sign_in_link", {"payload": {"url": "https://d.example/x", "expires_minutes": 30}}),
        ("subscription_changed", {"payload": {"change": "canceled"}}),
    ):
        out = render(kind, "en", branded, **extra)
        assert 'src="https://cdn.example/logo.png"' in out.html
        assert "border-bottom:3px solid #c8102e" in out.html
        assert "Questions? Write to help@newsroom.example." in out.text
        assert "help@newsroom.example" in out.html
        assert "The Moscow Times" in out.html and "The Moscow Times" in out.text
    button = render("receipt", "en", branded, receipt=receipt()).html
    assert "background:#c8102e;color:#ffffff" in button  # white reads on that red


def test_a_light_accent_gets_dark_text_on_its_buttons():
    light = Newsroom(**{**NEWSROOM.__dict__, "accent": "#f2b705"})
    html = render("receipt", "en", light, receipt=receipt()).html
    assert "background:#f2b705;color:#1b1b1b" in html


def test_russian_receipts_say_how_often_as_an_adjective_of_the_gift():
    out = render(
        "renewal_receipt", "ru", NEWSROOM, receipt=receipt(frequency="monthly", renewal=True)
    )
    assert "Периодичность: Ежемесячное" in out.text
    assert "Разовое" in render("receipt", "ru", NEWSROOM, receipt=receipt()).text


def test_a_sign_in_link_without_its_url_is_a_render_error():
    with pytest.raises(RenderError):
        render("sign_in_link", "en", NEWSROOM, payload={"expires_minutes": 15})


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"change": "canceled"}, "has been canceled"),
        ({"change": "cancel_at_period_end", "effective": "2027-01-28"}, "Effective: January 28"),
        (
            {"change": "amount", "amount": 1500, "currency": "eur", "interval": "month"},
            "Amount: €15.00 per month",
        ),
        (
            {"change": "interval", "amount": 12000, "currency": "usd", "interval": "year"},
            "per year",
        ),
        ({"change": "card_updated"}, "card for your recurring contribution has been updated"),
        ({"change": "something new"}, "has been updated"),
    ],
)
def test_subscription_changes_render_from_their_payload(payload, expected):
    out = render("subscription_changed", "en", NEWSROOM, payload=payload)
    assert expected in out.text
    assert out.subject == "Your recurring contribution to The Moscow Times has changed"


def test_user_text_is_escaped_in_html():
    out = render("receipt", "en", NEWSROOM, donor_name="<b>Eve</b>", receipt=receipt())
    assert "<b>Eve</b>" not in out.html and "&lt;b&gt;Eve&lt;/b&gt;" in out.html
    assert "Dear <b>Eve</b>," in out.text  # plain text is not HTML


def test_an_unknown_kind_is_a_render_error():
    with pytest.raises(RenderError):
        render("statement", "en", NEWSROOM)


def test_a_composed_message_has_text_and_html_alternatives_and_the_headers():
    out = render("receipt", "ru", NEWSROOM, receipt=receipt())
    message = compose(
        out,
        to="reader@example.org",
        to_name="Анна",
        mail_from="The Moscow Times <donate@themoscowtimes.example>",
        reply_to="help@themoscowtimes.example",
        lang="ru",
        kind="receipt",
    )
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Message-ID"].endswith("@themoscowtimes.example>")
    assert message["Date"] and message["Reply-To"] == "help@themoscowtimes.example"
    assert message["Content-Language"] == "ru"
    assert message["Subject"] == out.subject


def test_retries_back_off_exponentially_up_to_six_hours():
    assert [backoff(n).total_seconds() / 60 for n in (1, 2, 3, 8)] == [2, 4, 8, 256]
    assert backoff(9).total_seconds() == 6 * 3600
    assert backoff(50).total_seconds() == 6 * 3600


def test_logged_addresses_are_masked():
    assert mask_address("reader@example.org") == "r***@example.org"
    assert mask_address("Анна <anna@example.org>") == "a***@example.org"
    assert mask_address("nonsense") == "***"
