"""Stripe's form encoding (`a[b][0][c]=v`, `expand[]=x`) decoded into nested dicts and lists."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
# Dicts under these keys are free-form maps: digit keys stay keys (metadata[0]=x is a key "0").
_MAPS = {"metadata"}


class FormError(ValueError):
    """A malformed parameter name."""


def decode(query: str) -> dict[str, Any]:
    """`items[0][plan]=p&expand[]=x&metadata[k]=v` → {"items": [{"plan": "p"}], ...}."""
    root: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        match = _KEY.match(name)
        if not match:
            raise FormError(name)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for i, part in enumerate(parts):
            if part == "":  # `a[]`: the next free index
                part = str(len(node))
            if i == len(parts) - 1:
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise FormError(name)
                node = child
    return _listify(root, None)


def _listify(node: Any, key: str | None) -> Any:
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v, k) for k, v in node.items()}
    if key not in _MAPS and out and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out
