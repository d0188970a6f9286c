import pytest

from donations.appeals.documents import sanitize_html

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<p onclick="alert(1)">x</p>',
    "<svg onload=alert(1)>",
    '<iframe src="https://evil.example"></iframe>',
    "<style>body{display:none}</style>",
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<p style="background:url(javascript:alert(1))">x</p>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '"><script>alert(1)</script>',
    '<form action="https://evil.example"><input name=card></form>',
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_active_content_is_removed(payload):
    clean = sanitize_html(payload).lower()
    for bad in (
        "<script",
        "onerror",
        "onload",
        "onclick",
        "javascript:",
        "<iframe",
        "<style",
        "data:text",
        "<form",
        "<input",
        "<svg",
        "style=",
    ):
        assert bad not in clean


def test_editorial_formatting_and_links_survive():
    html = '<p>Read <strong>more</strong> <a href="https://example.org/about">about us</a></p>'
    assert sanitize_html(html) == (
        '<p>Read <strong>more</strong> <a href="https://example.org/about" '
        'rel="noopener noreferrer">about us</a></p>'
    )
