"""The newsroom's one brand: its name, logo, accent colour and support address, from settings.

Every reader page, email, error page and the admin header draw it from here: templates get
`brand` from one context processor, emails from `donations.mail.sender.newsroom_for`, and the
widget's gate from `brand(settings)`. The accent reaches pages as CSS custom properties in a
stylesheet of ours (/brand.css), so the pages' CSP needs no inline style.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from email.utils import parseaddr
from functools import cache
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from flask import Blueprint, Flask, Response, current_app, url_for

from donations.settings import Settings

bp = Blueprint("brand", __name__)
LOGO_PATH = "/brand/logo.svg"
CACHE = "public, max-age=86400"
INK = "#1b1b1b"
WHITE = "#ffffff"
MAX_RETURN_URL = 2000


@dataclass(frozen=True)
class Brand:
    name: str
    logo: str  # as configured: an absolute URL, or a path on this service
    accent: str  # "#rrggbb"
    support_email: str
    home_url: str | None  # the newsroom's own site
    public_base_url: str

    @property
    def logo_url(self) -> str:
        """The logo as an absolute URL (emails, the widget on the newsroom's pages)."""
        return self.logo if "://" in self.logo else self.public_base_url + self.logo

    @property
    def palette(self) -> dict[str, str]:
        return palette(self.accent)

    @property
    def version(self) -> str:
        """Changes whenever what /brand.css and the default logo draw changes."""
        seed = f"{self.name}\n{self.accent}\n{self.logo}".encode()
        return hashlib.sha256(seed).hexdigest()[:10]

    @property
    def initial(self) -> str:
        return (self.name.strip()[:1] or "·").upper()


def from_settings(settings: Settings) -> Brand:
    support = (
        settings.newsroom_support_email
        or parseaddr(settings.mail_reply_to or "")[1]
        or parseaddr(settings.mail_from)[1]
    )
    base = settings.public_base_url.rstrip("/")
    home = settings.newsroom_url
    if home is None and settings.env != "production":
        home = f"{base}/demo/article"  # the newsroom of development: the demo article
    return Brand(
        name=settings.newsroom_name,
        logo=settings.newsroom_logo_url or LOGO_PATH,
        accent=_six_digits(settings.newsroom_accent_color),
        support_email=support,
        home_url=home,
        public_base_url=base,
    )


def brand(settings: Settings) -> dict[str, Any]:
    """The brand as plain data (the widget's gate; anything serialising it)."""
    b = from_settings(settings)
    return {
        "name": b.name,
        "logo_url": b.logo_url,
        "accent": b.accent,
        "support_email": b.support_email,
        "url": b.home_url,
    }


def widget_brand(settings: Settings) -> dict[str, str]:
    """What the widget shows of the brand: the name and the accent with the text colour that
    reads on it (computed once per configuration)."""
    return dict(_widget_brand(settings.newsroom_name, settings.newsroom_accent_color))


@cache
def _widget_brand(name: str, accent: str) -> tuple[tuple[str, str], ...]:
    colours = palette(accent)
    return (("name", name), ("accent", colours["accent"]), ("on_accent", colours["on_accent"]))


# --- colours ----------------------------------------------------------------------------------
def _six_digits(color: str) -> str:
    value = color.strip().lower().lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    return "#" + value


def _rgb(color: str) -> tuple[int, int, int]:
    value = _six_digits(color)[1:]
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def _mix(color: str, other: str, share: float) -> str:
    """`share` of `other` mixed into `color`."""
    a, b = _rgb(color), _rgb(other)
    return _hex(tuple(x + (y - x) * share for x, y in zip(a, b, strict=True)))  # type: ignore[arg-type]


def _luminance(color: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in _rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@cache
def palette(accent: str) -> dict[str, str]:
    """What pages and emails derive from one accent: text on it, a readable text shade of it
    (4.5:1 on white, WCAG AA), a darker hover shade, a light tint and a focus ring."""
    accent = _six_digits(accent)
    text = accent
    for _ in range(20):
        if contrast(text, WHITE) >= 4.5:
            break
        text = _mix(text, "#000000", 0.15)
    r, g, b = _rgb(accent)
    return {
        "accent": accent,
        "on_accent": WHITE if contrast(WHITE, accent) >= contrast(INK, accent) else INK,
        "accent_text": text,
        "accent_strong": _mix(text, "#000000", 0.2),
        "accent_tint": _mix(accent, WHITE, 0.9),
        "accent_ring": f"rgb({r} {g} {b} / 0.25)",
    }


# --- where a reader goes back to --------------------------------------------------------------
def _origin(url: str | None) -> str | None:
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1": not a URL at all
        return None
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else None


def return_url(raw: str | None, settings: Settings) -> str | None:
    """The article a reader came from, if it is a page of the newsroom's: an http(s) URL on
    the newsroom's site (NEWSROOM_URL), one of ALLOWED_ORIGINS or this service; else None
    (never a javascript: or data: URL, never someone else's site)."""
    url = (raw or "").strip()
    if not url or len(url) > MAX_RETURN_URL or any(ord(c) < 33 for c in url):
        return None
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port  # both raise on a malformed address
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host or "@" in parts.netloc:
        return None
    trusted = {
        _origin(settings.newsroom_url),
        _origin(settings.public_base_url),
        *(_origin(o) for o in settings.allowed_origins),
    }
    return url if _origin(url) in trusted - {None} else None


# --- the pages' side: context, stylesheet, default logo, favicons ------------------------------
def current() -> Brand:
    found: Brand = current_app.extensions["donations.brand"]
    return found


def install(app: Flask, settings: Settings) -> None:
    """The brand in every template (`brand`) and its routes."""
    the_brand = from_settings(settings)
    app.extensions["donations.brand"] = the_brand
    app.register_blueprint(bp)

    @app.context_processor
    def _brand() -> dict[str, Any]:
        return {"brand": the_brand, "brand_logo_src": _logo_src}


def _logo_src() -> str:
    """The logo for our own pages: a path of ours stays relative (any host serving them)."""
    b = current()
    if "://" in b.logo:
        return b.logo
    if b.logo == LOGO_PATH:
        return url_for("brand.logo", v=b.version)
    return b.logo


def stylesheet(b: Brand) -> str:
    p = b.palette
    return (
        "/* The newsroom's colours (NEWSROOM_ACCENT_COLOR), derived by donations/brand.py. */\n"
        ":root {\n"
        f"  --accent: {p['accent']};\n"
        f"  --on-accent: {p['on_accent']};\n"
        f"  --accent-text: {p['accent_text']};\n"
        f"  --accent-strong: {p['accent_strong']};\n"
        f"  --accent-tint: {p['accent_tint']};\n"
        f"  --accent-ring: {p['accent_ring']};\n"
        "}\n"
        ".admin-brand { display: inline-flex; align-items: center; gap: 0.45rem; }\n"
        ".admin-brand__logo { border-radius: 4px; object-fit: contain; }\n"
    )


def logo_svg(b: Brand) -> str:
    """A neutral mark for a newsroom without a logo: its initial on its accent."""
    p = b.palette
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" role="img" '
        f'aria-label="{escape(b.name, {chr(34): "&quot;"})}">'
        f'<rect width="64" height="64" rx="14" fill="{p["accent"]}"/>'
        '<text x="32" y="45" text-anchor="middle" font-family="Georgia,\'Times New Roman\',serif" '
        f'font-size="38" font-weight="700" fill="{p["on_accent"]}">{escape(b.initial)}</text>'
        "</svg>"
    )


def _png(size: int, pixel: Any) -> bytes:
    """A small RGBA PNG; `pixel(x, y)` answers (r, g, b, a)."""
    rows = b"".join(
        b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(size)) for y in range(size)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


@cache
def favicon_ico(accent: str) -> bytes:
    """/favicon.ico for clients that ask for it by name: the accent as a rounded square with a
    light dot (browsers that take SVG icons get the initial, /favicon.svg)."""
    size, radius = 32, 7
    r, g, b = _rgb(accent)
    mark = _rgb(palette(accent)["on_accent"])

    def pixel(x: int, y: int) -> tuple[int, int, int, int]:
        cx = min(max(x, radius), size - 1 - radius)
        cy = min(max(y, radius), size - 1 - radius)
        if (x - cx) ** 2 + (y - cy) ** 2 > radius**2:
            return (0, 0, 0, 0)
        if (x - 15.5) ** 2 + (y - 15.5) ** 2 <= 36:
            return (*mark, 255)
        return (r, g, b, 255)

    png = _png(size, pixel)
    directory = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(png), 6 + 16)
    return directory + entry + png


def _cached(body: str | bytes, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = CACHE
    return response


@bp.get("/brand.css", endpoint="stylesheet")
def stylesheet_view() -> Response:
    return _cached(stylesheet(current()), "text/css")


@bp.get(LOGO_PATH, endpoint="logo")
def logo_view() -> Response:
    return _cached(logo_svg(current()), "image/svg+xml")


@bp.get("/favicon.svg", endpoint="favicon_svg")
def favicon_svg_view() -> Response:
    return _cached(logo_svg(current()), "image/svg+xml")


@bp.get("/favicon.ico", endpoint="favicon")
def favicon_view() -> Response:
    return _cached(favicon_ico(current().accent), "image/x-icon")
