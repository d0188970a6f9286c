"""A campaign document's validation errors in plain words, for people.

marshmallow reports nested errors by field path (`variants.0.amounts.usd.value.one_off.1`);
editors read "Variant 1, amounts in USD, one-off, amount 2: Must be greater than or equal to
1." `donations campaigns load` prints these lines, and the campaign editor's script walks
paths with the same words (`EDITOR_WORDS`, given to it in the page's config), so both speak
alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# Top-level fields, as the editor labels them.
TOP = {
    "id": "Campaign id",
    "name": "Name",
    "status": "Status",
    "placements": "Placements",
    "priority": "Priority",
    "starts_at": "Starts at",
    "ends_at": "Ends at",
    "targeting": "Targeting",
    "frequency": "Frequency cap",
    "goal": "Goal",
    "holdback": "Holdback",
    "variants": "Variants",
}
# Fields inside them (and a variant's), in lower case after a comma.
INNER = {
    "sections": "sections",
    "tags": "tags",
    "countries": "countries",
    "languages": "languages",
    "articles_read": "articles read",
    "include": "include",
    "exclude": "exclude",
    "min": "at least",
    "max": "at most",
    "max_impressions": "show at most (times)",
    "per_days": "per (days)",
    "after_dismiss_days": "hide after a close (days)",
    "amount": "amount",
    "currency": "currency",
    "id": "variant id",
    "weight": "weight",
    "heading": "heading",
    "body_html": "body",
    "cta_label": "button label",
    "default_frequency": "default frequency",
    "amounts": "amounts",
    "translations": "translations",
}
FREQUENCY_WORDS = {"one_off": "one-off", "monthly": "monthly", "annual": "annual"}
# Field names that messages quote in backticks.
QUOTED = {"`min`": "“at least”", "`max`": "“at most”", "`starts_at`": "“Starts at”"}

# marshmallow's "String does not match expected pattern." says nothing of what is expected.
PATTERN = "String does not match expected pattern."
CURRENCY_CODE = "Use a currency's three-letter code in lower case, such as usd."
LANGUAGE_CODE = "Use a language code such as en, ru or pt-br."

# A list's length errors say what to give: "Give 1 to 20 variants."
LIST_NOUNS = {
    "variants": "variants",
    "placements": "placements",
    "one_off": "amounts",
    "monthly": "amounts",
    "annual": "amounts",
    "languages": "languages",
    "include": "entries",
    "exclude": "entries",
}
BETWEEN = re.compile(r"^Length must be between (\d+) and (\d+)\.$")
AT_MOST = re.compile(r"^Longer than maximum length (\d+)\.$")
# marshmallow's whole messages that say how rather than what: said the way an editor writes.
WHEN = "Use a date and time with its time zone, such as 2026-12-01T00:00:00Z."
REWORDED = {
    "Not a valid aware datetime.": WHEN,
    "Not a valid datetime.": WHEN,
    "Invalid input type.": "Not the right kind of value here (a list, an object or text).",
}

# What the editor's script needs to say the same (static/admin/campaign-editor.js).
EDITOR_WORDS = {
    "reworded": REWORDED,
    "lists": LIST_NOUNS,
    "top": TOP,
    "inner": INNER,
    "frequencies": FREQUENCY_WORDS,
    "quoted": QUOTED,
    "pattern": PATTERN,
    "currency_code": CURRENCY_CODE,
    "language_code": LANGUAGE_CODE,
}


def describe(path: Sequence[str | int]) -> str:
    """Where a field is, in words: ("variants", 0, "amounts", "usd", "value", "one_off", 1)
    → "Variant 1, amounts in USD, one-off, amount 2"; () → ""."""
    words: list[str] = []
    parts = [str(p) for p in path if str(p) != "_schema"]
    i = 0
    while i < len(parts):
        part, parent = parts[i], parts[i - 1] if i else None
        if parent == "variants" and part.isdigit():
            words[-1:] = [f"Variant {int(part) + 1}"]
        elif parent in ("amounts", "translations"):
            # a dict's entry: marshmallow says next whether its key or its value is wrong
            kind = parts[i + 1] if i + 1 < len(parts) else None
            if kind == "key":
                noun = "currency" if parent == "amounts" else "language"
                words.append(f"{noun} “{part}”")
            elif parent == "amounts":
                words[-1:] = [f"amounts in {part.upper()}"]
            else:
                words[-1:] = [f"translation “{part}”"]
            i += 2 if kind in ("key", "value") else 1
            continue
        elif part.isdigit():
            noun = "amount" if parent in FREQUENCY_WORDS else "item"
            words.append(f"{noun} {int(part) + 1}")
        elif i == 0:
            words.append(TOP.get(part, f"“{part}”"))
        elif parent == "value" and part in FREQUENCY_WORDS:
            words.append(FREQUENCY_WORDS[part])
        else:
            words.append(INNER.get(part, f"“{part}”"))
        i += 1
    return ", ".join(words)


def plain_message(message: str, path: Sequence[str | int] = ()) -> str:
    """The message with quoted field names in words, and a pattern named by what it wants."""
    parts = [str(p) for p in path]
    if message == "Invalid input type." and parts in ([], ["_schema"]):
        return "A campaign is a JSON object, with an id, a name, variants and the rest."
    if message in REWORDED:
        return REWORDED[message]
    if message == PATTERN:
        if parts[-1:] == ["key"] and "translations" in parts:
            return LANGUAGE_CODE
        if parts[-1:] in (["key"], ["currency"]):
            return CURRENCY_CODE
    noun = LIST_NOUNS.get(parts[-1]) if parts else None
    if noun is not None:
        if between := BETWEEN.match(message):
            return f"Give {between[1]} to {between[2]} {noun}."
        if at_most := AT_MOST.match(message):
            return f"Give at most {at_most[1]} {noun}."
    for quoted, said in QUOTED.items():
        message = message.replace(quoted, said)
    return message.replace("`", "")


def plain_errors(messages: Any, path: tuple[str | int, ...] = ()) -> list[str]:
    """Every message of a (nested) marshmallow error as "Where: what." lines."""
    if isinstance(messages, Mapping):
        return [
            line for key, inner in messages.items() for line in plain_errors(inner, (*path, key))
        ]
    if isinstance(messages, list | tuple) and not all(isinstance(m, str) for m in messages):
        return [line for i, inner in enumerate(messages) for line in plain_errors(inner, path)]
    texts = [messages] if isinstance(messages, str) else list(messages)
    where = describe(path)
    said = [plain_message(t, path) for t in texts]
    return [f"{where}: {t}" if where else t for t in said]
