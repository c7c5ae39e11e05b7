"""A deterministic JSON value that validates against a JSON Schema, worded from the prompt.

The offline model answers structured-output requests and fills tool arguments with it. It
covers what chat schemas use: objects, arrays, enums, const, formats, numeric bounds,
patterns, `$ref`/`$defs`, `allOf`, and `anyOf`/`oneOf` (first usable branch).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeGuard

from .pattern import matching_text
from .words import first_sentence, keywords, proper_nouns, seed

Schema = Mapping[str, Any]

# Optional properties are filled near the top only, so recursive schemas stay finite.
_OPTIONAL_DEPTH = 3
_MAX_DEPTH = 12


@dataclass(frozen=True, slots=True)
class _Hint:
    words: list[str]
    nouns: list[str]
    sentence: str
    root: Schema
    numbers: list[int]  # whole numbers in the prompt: ids the user names ("delete task 12")


def sample(schema: Schema | bool, *, hint: str = "") -> Any:
    """A value valid against `schema`, derived from `hint` (the prompt): same input, same value."""
    root: Schema = schema if isinstance(schema, Mapping) else {}
    numbers = [int(n) for n in re.findall(r"(?<![\w.])\d{1,9}(?![\w.])", hint)]
    context = _Hint(keywords(hint, 8), proper_nouns(hint), first_sentence(hint, 20), root, numbers)
    return _value(schema, context, seed(hint), key="", ordinal=0, depth=0)


def _value(
    schema: Schema | bool, hint: _Hint, base: int, *, key: str, ordinal: int, depth: int
) -> Any:
    if schema is False or depth > _MAX_DEPTH:
        return None
    schema = _resolve(schema if isinstance(schema, Mapping) else {}, hint.root)
    if "const" in schema:
        return schema["const"]
    number = seed(str(base), key)
    if schema.get("enum"):
        options = schema["enum"]
        return options[(number + ordinal) % len(options)]
    kind = _type(schema)
    if kind == "object":
        return _object(schema, hint, number + ordinal, ordinal=ordinal, depth=depth)
    if kind == "array":
        return _array(schema, hint, number, key, depth)
    if kind == "integer":
        named = _named_id(schema, hint, key)
        return named if named is not None else _integer(schema, number + ordinal)
    if kind == "number":
        return _number(schema, number + ordinal)
    if kind == "boolean":
        return (number + ordinal) % 2 == 0
    if kind == "null":
        return None
    return _string(schema, hint, number, key, ordinal)


def _resolve(schema: Schema, root: Schema) -> Schema:
    """Inline `$ref`, `allOf` and the first usable `anyOf`/`oneOf` branch into one schema."""
    for _ in range(_MAX_DEPTH):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = _merge(_pointer(root, ref), siblings)
            continue
        if "allOf" in schema:
            merged: Schema = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged = _merge(merged, _resolve(part if isinstance(part, Mapping) else {}, root))
            schema = merged
            continue
        for combinator in ("anyOf", "oneOf"):
            if combinator in schema:
                branches = schema[combinator]
                usable = [
                    b for b in branches if not (isinstance(b, Mapping) and _type(b) == "null")
                ]
                branch = (usable or branches)[0]
                rest = {k: v for k, v in schema.items() if k != combinator}
                schema = _merge(rest, branch if isinstance(branch, Mapping) else {})
                break
        else:
            return schema
    return schema


def _pointer(root: Schema, ref: str) -> Schema:
    if not ref.startswith("#"):
        return {}  # remote references are not fetched: any value will do
    node: Any = root
    for part in ref.lstrip("#").strip("/").split("/") if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return {}
        node = node[part]
    return node if isinstance(node, Mapping) else {}


def _merge(base: Schema, extra: Schema) -> Schema:
    merged = dict(base)
    for name, value in extra.items():
        if name == "properties":
            merged["properties"] = {**base.get("properties", {}), **value}
        elif name == "required":
            merged["required"] = list(dict.fromkeys([*base.get("required", []), *value]))
        else:
            merged[name] = value
    return merged


def _type(schema: Schema) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema or "minItems" in schema:
        return "array"
    if "minimum" in schema or "maximum" in schema or "multipleOf" in schema:
        return "number"
    return "string"


def _object(
    schema: Schema, hint: _Hint, number: int, *, ordinal: int, depth: int
) -> dict[str, Any]:
    properties: Mapping[str, Any] = schema.get("properties", {})
    required = [name for name in schema.get("required", []) if isinstance(name, str)]
    names = list(properties) if depth < _OPTIONAL_DEPTH else []
    names += [name for name in required if name not in names]
    result = {
        name: _value(
            properties.get(name, {}), hint, number, key=name, ordinal=ordinal, depth=depth + 1
        )
        for name in names
    }
    extra = schema.get("additionalProperties", True)
    while len(result) < schema.get("minProperties", 0) and extra is not False:
        name = f"field_{len(result) + 1}"
        result[name] = _value(extra, hint, number, key=name, ordinal=ordinal, depth=depth + 1)
    return result


def _array(schema: Schema, hint: _Hint, number: int, key: str, depth: int) -> list[Any]:
    prefix = schema.get("prefixItems", [])
    items = schema.get("items", {})
    low = schema.get("minItems", 0)
    high = schema.get("maxItems")
    count = max(low, len(prefix), min(2, high) if high is not None else 2)
    if items is False:
        count = len(prefix)
    elif depth >= _OPTIONAL_DEPTH:
        count = max(low, len(prefix))
    if high is not None:
        count = min(count, high)
    values = []
    for index in range(count):
        item = prefix[index] if index < len(prefix) else items
        values.append(_value(item, hint, number, key=key, ordinal=index, depth=depth + 1))
    return values


def _bounds(schema: Schema) -> tuple[float, float, bool, bool]:
    """Lower and upper bound, and whether each is exclusive (draft 4 booleans included)."""
    low, high = schema.get("minimum"), schema.get("maximum")
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    open_low = ex_low is True
    open_high = ex_high is True
    if _is_number(ex_low) and (low is None or ex_low >= low):
        low, open_low = ex_low, True
    if _is_number(ex_high) and (high is None or ex_high <= high):
        high, open_high = ex_high, True
    # Unbounded sides get small, positive-leaning numbers: plausible counts and amounts.
    if low is None:
        low = 1 if high is None else min(0, high - 1)
    if high is None:
        high = low + 100
    return float(low), float(high), open_low, open_high


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _named_id(schema: Schema, hint: _Hint, key: str) -> int | None:
    """An id field takes the first number the prompt names that fits its bounds."""
    if key != "id" and not key.endswith("_id"):
        return None
    low, high = schema.get("minimum"), schema.get("maximum")  # ids: only stated bounds
    for value in hint.numbers:
        if (low is None or value >= low) and (high is None or value <= high):
            return value
    return None


def _integer(schema: Schema, number: int) -> int:
    low, high, open_low, open_high = _bounds(schema)
    lowest = math.floor(low) + 1 if open_low else math.ceil(low)
    highest = math.ceil(high) - 1 if open_high else math.floor(high)
    value = lowest + number % max(1, highest - lowest + 1)
    step = schema.get("multipleOf")
    if isinstance(step, int) and step > 0:
        value = math.ceil(value / step) * step
        if value > highest:
            value = math.ceil(lowest / step) * step
    return value


def _number(schema: Schema, number: int) -> float | int:
    step = schema.get("multipleOf")
    if _is_number(step) and step > 0:
        return _multiple(schema, step, number)
    low, high, open_low, open_high = _bounds(schema)
    value = round(low + (0.1 + 0.8 * (number % 1000) / 1000) * (high - low), 2)
    if value < low or value > high or (open_low and value == low) or (open_high and value == high):
        value = (low + high) / 2
    return value


def _multiple(schema: Schema, step: float, number: int) -> float | int:
    low, high, open_low, open_high = _bounds(schema)
    first = math.floor(low / step) + 1 if open_low else math.ceil(low / step)
    last = math.ceil(high / step) - 1 if open_high else math.floor(high / step)
    span = max(1, last - first + 1)
    for offset in range(span):
        multiplier = first + (number + offset) % span
        value = round(multiplier * step, 10)
        # jsonschema checks `value / step` for an exact integer; float steps need a value
        # whose division comes out exact.
        if (value / step).is_integer() and low <= value <= high:
            return int(value) if value.is_integer() else value
    return first * step


def _string(schema: Schema, hint: _Hint, number: int, key: str, ordinal: int) -> str:
    text = _formatted(schema.get("format"), number + ordinal, hint, ordinal)
    if text is None and isinstance(schema.get("pattern"), str):
        text = matching_text(schema["pattern"])
    if text is None:
        text = _worded(key, hint, number, ordinal)
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    filler = " ".join(hint.words or ["detail"])
    while len(text) < low:
        text = f"{text} {filler}"
    if low:
        text = text[: max(low, len(text.rstrip()))]
    if high is not None and len(text) > high:
        text = text[:high]
    return text


def _formatted(kind: Any, number: int, hint: _Hint, ordinal: int) -> str | None:
    day = date(2024, 1, 1) + timedelta(days=number % 730)
    name = (hint.nouns[ordinal % len(hint.nouns)] if hint.nouns else "alex").lower()
    by_format = {
        "email": f"{_slug(name, '.')}@example.com",
        "idn-email": f"{_slug(name, '.')}@example.com",
        "date": day.isoformat(),
        "date-time": f"{day.isoformat()}T{9 + number % 8:02d}:{number % 60:02d}:00Z",
        "time": f"{9 + number % 8:02d}:{number % 60:02d}:00Z",
        "duration": f"P{1 + number % 30}D",
        "uri": f"https://example.com/{_slug(name, '-')}",
        "url": f"https://example.com/{_slug(name, '-')}",
        "iri": f"https://example.com/{_slug(name, '-')}",
        "uri-reference": f"/{_slug(name, '-')}",
        "hostname": "example.com",
        "ipv4": f"192.0.2.{1 + number % 254}",
        "ipv6": f"2001:db8::{1 + number % 65535:x}",
        "uuid": _uuid(number),
    }
    return by_format.get(kind) if isinstance(kind, str) else None


def _worded(key: str, hint: _Hint, number: int, ordinal: int) -> str:
    """A string that fits the property's name, built from the prompt's words."""
    is_id = key.endswith("Id") or re.search(r"(^|[_-])id$", key.lower()) is not None
    key = key.lower()
    words = hint.words or ["example"]
    word = words[ordinal % len(words)]
    if key in {"email", "e-mail", "mail"}:
        return _formatted("email", number, hint, ordinal) or ""
    if is_id:
        return f"{key.removesuffix('id').strip('_-') or 'id'}_{number % 10**8:08d}"
    if key.endswith(("url", "link", "website", "uri")):
        return _formatted("uri", number, hint, ordinal) or ""
    if key.endswith(("date", "day")):
        return _formatted("date", number, hint, ordinal) or ""
    if key in {"city", "location", "place", "country", "name", "person", "author", "company"}:
        return hint.nouns[ordinal % len(hint.nouns)] if hint.nouns else word.capitalize()
    if key in {"title", "subject", "headline", "heading"}:
        return " ".join(w.capitalize() for w in words[:4])
    if key in {"language", "lang", "locale"}:
        return "en"
    if key in {"currency"}:
        return "USD"
    if key in {"phone", "phone_number", "telephone"}:
        return f"+1 555 01{number % 100:02d}"
    long_keys = ("summary", "description", "answer", "text", "content", "reason", "message")
    if key.endswith(long_keys) or key in {"body", "explanation", "response", "notes"}:
        return hint.sentence or f"A short note about {word}."
    if key in {"query", "search", "q", "topic", "keywords", "prompt"}:
        return " ".join(words[:3])
    return word


def _slug(text: str, separator: str) -> str:
    return separator.join(re.findall(r"[a-z0-9]+", text.lower())) or "alex"


def _uuid(number: int) -> str:
    digits = f"{seed(str(number)):016x}{number % 2**64:016x}"
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-8{digits[17:20]}-{digits[20:32]}"
