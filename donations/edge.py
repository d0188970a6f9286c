"""Input at the edge: one rule for every text a client sends, before any view sees it.

- JSON (request bodies, and signed Stripe events through `loads_bounded`): UTF-8 only, nested
  at most `MAX_DEPTH` deep, no NaN/Infinity; checked before it is parsed, so a body nested
  5,000 deep is a 400, never a RecursionError.
- Text (every JSON string and key, query-string parameter and form field): no C0 or C1
  control characters, DEL or lone surrogates, and at most `MAX_LINE` characters; only the
  multi-line fields (`MULTILINE_FIELDS`, e.g. an appeal's `body_html`) may hold tab, line
  feed and carriage return, up to `MAX_TEXT` characters. PostgreSQL cannot store NUL in text
  and no driver can encode a lone surrogate: refusing them here is what keeps them from
  turning into 500s, stuck counters or Stripe errors further in.
- Bodies: over MAX_CONTENT_LENGTH is a 413, also when sent chunked (no Content-Length).

`install(app)` puts the rule in front of every route (a JSON provider and a request hook);
marshmallow schemas keep their own, tighter, per-field bounds. Refusals: a JSON body → 422
naming each bad field as marshmallow would (`{"attribution": {"article": [...]}}`); a query
string → 422 on the JSON API (its parameters are documented), 400 elsewhere, as for a form.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import accumulate
from typing import Any

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

MAX_DEPTH = 32
MAX_LINE = 4_096
MAX_TEXT = 20_000
MAX_KEY = 200
MULTILINE_FIELDS = frozenset({"body_html"})

# C0 and C1 controls, DEL, and lone surrogates (JSON's "\ud800" decodes to one; a valid pair
# decodes to a single astral character, so it never matches).
NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
NOT_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
NOT_TEXT_MESSAGE = "Must not contain control characters or unpaired surrogates."
NOT_LINE_MESSAGE = "Must be one line without control characters or unpaired surrogates."

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
FORMS = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
JSON_API = "/api/"
# Verified against its signature first; its owner calls loads_bounded + check_signed_event.
SIGNED = ("/webhooks/",)

# A string literal, its closing quote optional: an unterminated one then runs to the end
# instead of being retried from every later quote (quadratic on a run of `"\`).
_STRING_LITERAL = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_STRIPE_EVENT_ID = re.compile(r"evt_[\x21-\x7e]{1,251}")
_STRIPE_TYPE = re.compile(r"[\x21-\x7e]{1,100}")
_STRIPE_OBJECT_ID = re.compile(r"[\x21-\x7e]{1,255}")


# --- JSON -----------------------------------------------------------------------------------
def json_depth(text: str) -> int:
    """How deep a JSON text nests, counted without parsing it (no recursion)."""
    brackets = _BRACKET.findall(_STRING_LITERAL.sub("", text))
    return max(accumulate(1 if b in "[{" else -1 for b in brackets), default=0)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_bounded(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON (UTF-8) nested at most `max_depth` deep; ValueError for anything else."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 (byte {exc.start})") from None
    else:
        text = raw
    if json_depth(text) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:  # cannot happen after the depth check; never a 500 if it did
        raise ValueError(f"nested deeper than {max_depth} levels") from None


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, with `request.get_json()` parsing through `loads_bounded`."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads_bounded(s)


# --- text -----------------------------------------------------------------------------------
def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why `value` may not be accepted as a client's text, or None when it may."""
    if (NOT_TEXT if multiline else NOT_LINE).search(value):
        return NOT_TEXT_MESSAGE if multiline else NOT_LINE_MESSAGE
    limit = MAX_TEXT if multiline else MAX_LINE
    if len(value) > limit:
        return f"Longer than {limit} characters."
    return None


def one_line(value: str) -> None:
    """A marshmallow validator: one line of text (for schemas also loaded outside a request,
    e.g. `donations campaigns load`)."""
    if NOT_LINE.search(value):
        raise ValidationError(NOT_LINE_MESSAGE)


def free_text(value: str) -> None:
    """A marshmallow validator: text that may span lines (tab, line feed, carriage return)."""
    if NOT_TEXT.search(value):
        raise ValidationError(NOT_TEXT_MESSAGE)


Path = tuple[str | int, ...]


def json_text_errors(value: Any, *, max_depth: int = MAX_DEPTH) -> dict[Path, str]:
    """Every string and key in a decoded JSON value that breaks the rule, by its path.

    Iterative, so any depth is safe; deeper than `max_depth` is itself an error (at the root).
    A bad key is reported at its parent's path, since it cannot name itself.
    """
    found: dict[Path, str] = {}
    stack: list[tuple[Path, Any, bool]] = [((), value, False)]
    while stack:
        path, node, multiline = stack.pop()
        if len(path) > max_depth:
            found[()] = f"Nested deeper than {max_depth} levels."
            continue
        if isinstance(node, str):
            why = text_problem(node, multiline=multiline)
            if why:
                found[path] = why
        elif isinstance(node, dict):
            for key, child in node.items():
                if NOT_LINE.search(key) or len(key) > MAX_KEY:
                    found.setdefault(path, "A field name is too long or has control characters.")
                    continue
                stack.append(((*path, key), child, key in MULTILINE_FIELDS))
        elif isinstance(node, list):
            stack.extend(((*path, i), child, multiline) for i, child in enumerate(node))
    return found


def nest(found: Mapping[Path, str]) -> dict[str, Any]:
    """Errors by path as marshmallow nests them: {("a", 0, "b"): m} → {"a": {0: {"b": [m]}}}."""
    out: dict[Any, Any] = {}
    for path, message in sorted(found.items(), key=lambda item: [str(p) for p in item[0]]):
        if not path:
            out.setdefault("_schema", []).append(message)
            continue
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # a parent already refused: keep its message
                break
            node = child
        else:
            leaf = node.setdefault(path[-1], [])
            if isinstance(leaf, list):
                leaf.append(message)
            else:
                leaf.setdefault("_schema", []).append(message)
    return out


def field_errors(fields: MultiDict[str, str]) -> dict[str, list[str]]:
    """Query-string parameters or form fields (one line each) that break the rule."""
    errors: dict[str, list[str]] = {}
    for key, value in fields.items(multi=True):
        name = key if not NOT_LINE.search(key) and len(key) <= MAX_KEY else "_schema"
        why = text_problem(value) or (
            "A parameter name is too long or has control characters." if name != key else None
        )
        if why and why not in errors.get(name, []):
            errors.setdefault(name, []).append(why)
    return errors


# --- Stripe's signed events ---------------------------------------------------------------------
def check_signed_event(event: Any) -> None:
    """Refuse (ValueError) a verified Stripe event whose identity is not Stripe-shaped: an `id`
    other than `evt_` and printable ASCII (≤ 255), a `type` other than printable ASCII
    (≤ 100), a `data.object.id` other than printable ASCII (≤ 255), a lone surrogate anywhere
    (Stripe's JSON is UTF-8 and cannot hold one; no database driver can store one), or
    nesting deeper than `MAX_DEPTH`. The rest of the payload is the customers' own text (a
    name, metadata): control characters there are Stripe's to allow, and are not judged here.
    """
    if not isinstance(event, dict):
        raise ValueError("an event is a JSON object")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not _STRIPE_EVENT_ID.fullmatch(event_id):
        raise ValueError("`id` must be `evt_` and up to 251 printable ASCII characters")
    type_ = event.get("type")
    if not isinstance(type_, str) or not _STRIPE_TYPE.fullmatch(type_):
        raise ValueError("`type` must be 1 to 100 printable ASCII characters")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if isinstance(obj, dict) and "id" in obj:
        object_id = obj["id"]
        if not isinstance(object_id, str) or not _STRIPE_OBJECT_ID.fullmatch(object_id):
            raise ValueError("`data.object.id` must be 1 to 255 printable ASCII characters")
    _walk_signed(event)


def _walk_signed(event: dict[str, Any]) -> None:
    """Depth and lone surrogates, without recursion."""
    stack: list[tuple[int, Any]] = [(1, event)]
    while stack:
        depth, node = stack.pop()
        if isinstance(node, str):
            if LONE_SURROGATE.search(node):
                raise ValueError("a string holds an unpaired surrogate")
        elif isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            if isinstance(node, dict):
                stack.extend((depth, key) for key in node)
                stack.extend((depth + 1, child) for child in node.values())
            else:
                stack.extend((depth + 1, child) for child in node)


# --- Flask and WSGI -----------------------------------------------------------------------------
class RefusedInput(HTTPException):
    """Text the rule refuses: 422 (or 400) naming each bad field (errors.py answers it)."""

    def __init__(self, code: int, description: str, errors: dict[str, Any]) -> None:
        super().__init__(description)
        self.code = code
        self.errors = errors


def install(app: Flask) -> None:
    """Every route gets the rule: `request.get_json()` is bounded, and a hook checks the size,
    the query string, and JSON or form bodies before any view runs (after routing, so a wrong
    method is still a 405 and an unknown path a 404)."""
    app.json = BoundedJSONProvider(app)
    app.before_request(check_request)


def check_request() -> None:
    limit = request.max_content_length
    if limit is not None and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()
    if request.routing_exception is not None:
        return
    api = request.path.startswith(JSON_API)
    bad = field_errors(request.args)
    if bad:
        raise RefusedInput(
            422 if api else 400, "Some query parameters have characters that are not allowed.", bad
        )
    if request.method not in BODY_METHODS or request.path.startswith(SIGNED):
        return
    if request.is_json or (api and request.mimetype == "text/plain"):  # sendBeacon's JSON
        raw = request.get_data(cache=True)
        if not raw:
            return  # the view decides whether a body was needed
        try:
            value = loads_bounded(raw)
        except ValueError as exc:
            raise RefusedInput(400, f"The request body is not valid JSON: {exc}.", {}) from None
        found = json_text_errors(value)
        if found:
            raise RefusedInput(
                422,
                "Some fields have characters that are not allowed or are too long.",
                nest(found),
            )
    elif request.mimetype in FORMS:
        bad = field_errors(request.form)
        if bad:
            raise RefusedInput(400, "Some form fields have characters that are not allowed.", bad)


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BoundedBody:
    """A body without Content-Length (chunked) is read here, up to the limit and one byte more,
    and handed on with its Content-Length: over the limit it is then refused with 413 like any
    other (werkzeug alone would cut it at the limit and the view would see broken JSON)."""

    def __init__(self, app: WSGIApp, limit: int | None) -> None:
        self._app = app
        self._limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if (
            self._limit is not None
            and not environ.get("CONTENT_LENGTH")
            and environ.get("wsgi.input_terminated")
            and environ.get("REQUEST_METHOD") in BODY_METHODS
        ):
            data = b"".join(_read(environ["wsgi.input"], self._limit + 1))
            environ["wsgi.input"] = io.BytesIO(data)
            environ["CONTENT_LENGTH"] = str(len(data))
            # No longer chunked (werkzeug ignores Content-Length beside "chunked").
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self._app(environ, start_response)


def _read(stream: Any, size: int) -> Iterator[bytes]:
    while size > 0:
        chunk = stream.read(min(size, 64 * 1024))
        if not chunk:
            return
        size -= len(chunk)
        yield chunk


# A control character in a query string, raw or percent-encoded (C0, DEL, C1 in UTF-8).
CONTROL_IN_QUERY = re.compile(r"[\x00-\x1f\x7f]|%(?:[01][0-9A-Fa-f]|7[Ff]|[Cc]2%[89][0-9A-Fa-f])")


class ControlQueriesToFlask:
    """In front of a WSGI shortcut that bypasses Flask (the appeal fast path): a query string
    holding control characters goes to Flask instead, where `check_request` refuses it."""

    def __init__(self, shortcut: WSGIApp, flask_app: WSGIApp) -> None:
        self._shortcut = shortcut
        self._flask = flask_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if CONTROL_IN_QUERY.search(environ.get("QUERY_STRING", "")):
            return self._flask(environ, start_response)
        return self._shortcut(environ, start_response)
