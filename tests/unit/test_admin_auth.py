"""Pure rules of admin access: where a login may return to, when cookies are Secure, roles."""

import pytest

from donations.admin.auth import (
    PasswordTooShort,
    Principal,
    cookies_secure,
    hash_password,
    hasher,
    local_path,
)
from donations.settings import Settings


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/admin/campaigns?status=live", "/admin/campaigns?status=live"),
        ("/admin/", "/admin/"),
        ("https://evil.example/admin/", None),
        ("//evil.example/", None),
        ("/\\evil.example", None),
        ("javascript:alert(1)", None),
        ("admin", None),
        ("", None),
        (None, None),
    ],
)
def test_a_login_returns_only_to_a_path_on_this_site(target, expected):
    assert local_path(target) == expected


def test_cookies_are_secure_in_production_and_over_https():
    assert cookies_secure(Settings(env="production", public_base_url="http://internal:8000"))
    assert cookies_secure(Settings(env="development", public_base_url="https://news.example"))
    assert not cookies_secure(Settings(env="development", public_base_url="http://127.0.0.1:8000"))


def test_an_editor_may_do_what_a_viewer_may_but_not_the_reverse():
    editor, viewer = Principal("user", "e", "editor"), Principal("token", "v (#1)", "viewer")
    assert editor.may("viewer") and editor.may("editor")
    assert viewer.may("viewer") and not viewer.may("editor")
    assert viewer.actor == "token:v (#1)"


def test_passwords_are_argon2id_and_short_ones_are_refused():
    digest = hash_password("a long enough passphrase")
    assert digest.startswith("$argon2id$")
    assert hasher.verify(digest, "a long enough passphrase")
    with pytest.raises(PasswordTooShort):
        hash_password("too short")
