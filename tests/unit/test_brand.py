"""The newsroom's brand from settings: validated, derived colours readable, return links safe."""

from __future__ import annotations

import struct

import pytest

from donations.brand import (
    brand,
    contrast,
    favicon_ico,
    from_settings,
    logo_svg,
    palette,
    return_url,
    stylesheet,
)
from donations.security import content_security_policy
from donations.settings import ConfigurationError, Settings

NEWSROOM = {
    "NEWSROOM_NAME": "The Moscow Times",
    "NEWSROOM_LOGO_URL": "https://static.themoscowtimes.example/logo.svg",
    "NEWSROOM_ACCENT_COLOR": "#C8102E",
    "NEWSROOM_SUPPORT_EMAIL": "help@themoscowtimes.example",
    "NEWSROOM_URL": "https://www.themoscowtimes.example/",
    "PUBLIC_BASE_URL": "https://donate.themoscowtimes.example",
    "ALLOWED_ORIGINS": "https://partner.example",
}


def test_the_brand_comes_from_settings_as_plain_data_for_the_widget():
    assert brand(Settings.from_env(NEWSROOM)) == {
        "name": "The Moscow Times",
        "logo_url": "https://static.themoscowtimes.example/logo.svg",
        "accent": "#c8102e",
        "support_email": "help@themoscowtimes.example",
        "url": "https://www.themoscowtimes.example/",
    }


def test_development_defaults_need_no_brand_settings():
    b = brand(Settings.from_env({"MAIL_FROM": "Donations <donate@news.example>"}))
    assert b["name"] == "Independent Newsroom"
    assert b["logo_url"].startswith("http://127.0.0.1:8000/brand/logo.svg")
    assert b["accent"] == "#0b4a8b"
    assert b["support_email"] == "donate@news.example"  # MAIL_FROM's address
    assert b["url"] == "http://127.0.0.1:8000/demo/article"
    replies = Settings.from_env({"MAIL_REPLY_TO": "help@news.example"})
    assert brand(replies)["support_email"] == "help@news.example"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NEWSROOM_ACCENT_COLOR", "red"),
        ("NEWSROOM_ACCENT_COLOR", "#12345"),
        ("NEWSROOM_ACCENT_COLOR", "#0b4a8b; background: url(x)"),
        ("NEWSROOM_SUPPORT_EMAIL", "not an address"),
        ("NEWSROOM_SUPPORT_EMAIL", 'a"b@news.example'),
        ("NEWSROOM_LOGO_URL", "javascript:alert(1)"),
        ("NEWSROOM_LOGO_URL", "//evil.example/logo.svg"),
        ("NEWSROOM_LOGO_URL", "logo.svg"),
        ("NEWSROOM_URL", "javascript:alert(1)"),
        ("NEWSROOM_URL", "/home"),
    ],
)
def test_brand_settings_are_refused_unless_well_formed(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})


def test_a_short_hex_colour_and_a_local_logo_path_are_accepted():
    settings = Settings.from_env({"NEWSROOM_ACCENT_COLOR": "#c12", "NEWSROOM_LOGO_URL": "/s/l.png"})
    b = from_settings(settings)
    assert b.accent == "#cc1122"
    assert b.logo_url == "http://127.0.0.1:8000/s/l.png"


def test_production_has_no_home_link_unless_it_is_configured():
    production = {
        "DONATIONS_ENV": "production",
        "SECRET_KEY": "s" * 40,
        "STRIPE_SECRET_KEY": "sk_test_real",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_real",
        "STRIPE_WEBHOOK_SECRET": "whsec_a",
        "SMTP_HOST": "smtp.example",
    }
    assert from_settings(Settings.from_env(production)).home_url is None


@pytest.mark.parametrize("accent", ["#0b4a8b", "#c8102e", "#f2b705", "#ffffff", "#000000", "#7fd"])
def test_derived_colours_are_readable_whatever_the_accent(accent):
    p = palette(accent)
    assert contrast(p["on_accent"], p["accent"]) >= 3  # button text (large, bold)
    assert contrast(p["accent_text"], "#ffffff") >= 4.5  # links and labels on white
    assert contrast(p["accent_strong"], "#ffffff") >= 4.5


def test_the_stylesheet_sets_the_accent_as_custom_properties():
    css = stylesheet(from_settings(Settings.from_env(NEWSROOM)))
    assert "--accent: #c8102e;" in css
    assert "--on-accent: #ffffff;" in css
    assert "<" not in css and "url(" not in css


def test_the_default_logo_is_the_initial_on_the_accent_escaped():
    svg = logo_svg(from_settings(Settings.from_env({"NEWSROOM_NAME": '<Eve & "Co">'})))
    assert 'aria-label="&lt;Eve &amp; &quot;Co&quot;&gt;"' in svg
    assert ">&lt;</text>" in svg
    assert 'fill="#0b4a8b"' in svg


def test_the_favicon_is_an_ico_holding_a_png():
    ico = favicon_ico("#c8102e")
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind, count) == (0, 1, 1)
    width, height, _, _, _, _, size, offset = struct.unpack("<BBBBHHII", ico[6:22])
    assert (width, height, offset) == (32, 32, 22)
    assert ico[offset : offset + 8] == b"\x89PNG\r\n\x1a\n" and len(ico) == offset + size


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://www.themoscowtimes.example/news/2026/12/01/a-story", True),
        ("http://www.themoscowtimes.example/a", False),  # another origin: the scheme differs
        ("https://partner.example/story?x=1#top", True),  # ALLOWED_ORIGINS
        ("https://donate.themoscowtimes.example/demo/article", True),  # this service
        ("javascript:alert(1)", False),
        ("JavaScript://www.themoscowtimes.example/%0aalert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("https://evil.example/phish", False),
        ("https://www.themoscowtimes.example@evil.example/", False),
        ("https://user:pw@www.themoscowtimes.example/", False),
        ("//www.themoscowtimes.example/a", False),
        ("/news/a", False),
        ("https://www.themoscowtimes.example/a b", False),
        ("https://www.themoscowtimes.example/" + "a" * 2000, False),
        ("http://[::1", False),  # not a URL: urlsplit raises
        ("https://www.themoscowtimes.example:99999/a", False),  # a port out of range
        ("", False),
        (None, False),
    ],
)
def test_only_the_newsrooms_own_http_pages_are_links_back(url, kept):
    settings = Settings.from_env(NEWSROOM)
    assert return_url(url, settings) == (url if kept else None)


def test_an_outside_logo_is_allowed_by_the_pages_policy():
    policy = content_security_policy(Settings.from_env(NEWSROOM))
    assert "img-src 'self' data: https://static.themoscowtimes.example;" in policy
    assert "img-src 'self' data:;" in content_security_policy(Settings.from_env({}))
