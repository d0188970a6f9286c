"""The Stripe adapter: one dialect chosen by configuration, the pinned version, one door."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import stripe
from stripe._api_version import _ApiVersion

from donations.settings import Settings
from donations.stripe import API_VERSION, gateway_from_settings
from donations.stripe.client import make_client
from donations.stripe.facts import BalanceTxn, Subscription, parse_invoice
from donations.stripe.gateway import StripeGateway
from donations.stripe.localstripe import LocalstripeGateway

PACKAGE = Path(__file__).resolve().parents[2] / "donations"
EXAMPLES = json.loads(
    (Path(__file__).resolve().parents[1] / "standin" / "fixtures3-subset.json").read_text()
)["resources"]


def test_the_api_version_is_the_one_the_sdk_pins_and_the_client_sends_it():
    assert API_VERSION == _ApiVersion.CURRENT == "2026-10-28.endive"
    client = make_client(Settings(stripe_api_base=None))
    assert client._requestor._options.stripe_version == API_VERSION


def test_the_emulator_dialect_comes_from_stripe_emulator_never_from_the_address():
    base = "http://127.0.0.1:12111"
    assert type(gateway_from_settings(Settings(stripe_api_base=base))) is StripeGateway
    assert type(gateway_from_settings(Settings(stripe_api_base=None))) is StripeGateway
    emulated = Settings(stripe_api_base=base, stripe_emulator="localstripe")
    assert type(gateway_from_settings(emulated)) is LocalstripeGateway


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def modules(folder: str = "") -> dict[str, set[str]]:
    root = PACKAGE / folder
    return {str(p.relative_to(PACKAGE)): imports_of(p) for p in root.rglob("*.py")}


def test_only_the_adapter_package_talks_to_stripe():
    for module, names in modules().items():
        if module.startswith("stripe/"):
            continue
        assert not any(n == "stripe" or n.startswith("stripe.") for n in names), module


def test_dependencies_point_one_way():
    for module, names in modules("ledger").items():
        assert not any(n.startswith(("donations.reports", "donations.webhooks")) for n in names), (
            module,
            names,
        )
    for module, names in modules("stripe").items():
        assert not any(
            n.startswith("donations.") and not n.startswith("donations.stripe") for n in names
        ), module
    for module, names in modules("webhooks").items():
        assert "donations.ledger.journal" not in names and "donations.ledger.postings" not in names


def test_an_invoice_at_the_pinned_version_names_its_subscription_under_parent():
    raw = json.loads(json.dumps(EXAMPLES["invoice"]))
    for removed in ("subscription", "charge", "payment_intent", "paid"):
        raw.pop(removed, None)
    raw["parent"] = {
        "type": "subscription_details",
        "subscription_details": {"subscription": "sub_1", "metadata": {"contribution_id": "c"}},
    }
    invoice = parse_invoice(raw)
    assert invoice.subscription_id == "sub_1"
    assert invoice.metadata["contribution_id"] == "c"


def test_a_balance_transaction_keeps_its_settlement_currency_and_rate():
    raw = {
        **EXAMPLES["balance_transaction"],
        "amount": 9200,
        "fee": 297,
        "net": 8903,
        "currency": "eur",
        "exchange_rate": 0.92,
    }
    txn = BalanceTxn.parse(raw)
    assert (txn.amount, txn.fee, txn.net, txn.currency) == (9200, 297, 8903, "eur")
    assert str(txn.exchange_rate) == "0.92"


def test_a_subscription_s_period_comes_from_its_items():
    raw = json.loads(json.dumps(EXAMPLES["subscription"]))
    raw.pop("current_period_end", None)
    item = raw["items"]["data"][0]
    item["current_period_end"] = 1_900_000_000
    sub = Subscription.parse(raw)
    assert sub.current_period_end is not None and sub.current_period_end.year == 2030


def test_sdk_errors_become_the_projects_own():
    from donations.stripe.errors import NotFoundAtStripe, PaymentDeclined, translate

    declined = stripe.CardError("declined", "card", "card_declined", http_status=402)
    assert isinstance(translate(declined), PaymentDeclined)
    missing = stripe.InvalidRequestError("no such", "id", code="resource_missing", http_status=404)
    assert isinstance(translate(missing), NotFoundAtStripe)


def test_the_readme_lists_exactly_the_webhook_events_the_service_books():
    from donations.ledger.booking import HANDLED_TYPES

    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- webhook-events")
    block = readme[readme.index("-->", start) : readme.index("<!-- /webhook-events -->")]
    listed = {part.strip(" `\n,") for part in block.split("`") if "." in part}
    assert listed == set(HANDLED_TYPES)
