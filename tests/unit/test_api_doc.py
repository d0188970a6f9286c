"""docs/api.md is the HTTP contract kept in the repository: the contract's own text, unchanged,
and every API endpoint the service answers named in it (the contract's or the additions')."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"
# Where the workplace keeps the contract; a clone elsewhere has only the copy.
SHARED = ROOT.parent / "shared" / "design" / "API.md"


def test_the_copy_holds_the_contract_unchanged():
    if not SHARED.exists():
        pytest.skip("the shared contract is not next to this checkout")
    contract = SHARED.read_text(encoding="utf-8").rstrip("\n")
    assert contract in DOC.read_text(encoding="utf-8")


def test_every_api_endpoint_of_the_service_is_named_in_the_copy(app):
    text = DOC.read_text(encoding="utf-8")
    # `/api/v1/admin/campaigns/{id}` in the doc stands for any `<converter:name>` in the route.
    named = {
        re.sub(r"\{[^}]*\}", "{}", path)
        for path in re.findall(r"/(?:api/v1|webhooks)/[^\s`?)&|,]*", text)
    }
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/", "/webhooks/")):
            continue
        shape = re.sub(r"<[^>]*>", "{}", rule.rule)
        if shape not in named:
            missing.append(rule.rule)
    assert missing == []
