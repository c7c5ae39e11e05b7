"""A short string that matches a regular expression, for schemas with a `pattern`."""

from __future__ import annotations

import re

# The stdlib's own regex parser (private, present in 3.11-3.13): walking its tree beats
# guessing strings, and an unexpected node only means no string is offered.
from re import _parser  # type: ignore[attr-defined,unused-ignore]
from typing import Any


def matching_text(pattern: str) -> str | None:
    """The shortest plausible match of a regular expression, or None when it is too clever."""
    try:
        text = _emit(list(_parser.parse(pattern)))
    except (re.error, ValueError, TypeError):
        return None
    return text if re.search(pattern, text) else None


def _emit(items: list[tuple[Any, Any]]) -> str:
    parts = []
    for op, argument in items:
        name = str(op)
        if name == "LITERAL":
            parts.append(chr(argument))
        elif name == "ANY":
            parts.append("a")
        elif name == "IN":
            parts.append(_one_of(argument))
        elif name in {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}:
            low, high, body = argument
            parts.append(_emit(list(body)) * (low or min(1, high)))
        elif name in {"SUBPATTERN", "ATOMIC_GROUP"}:
            parts.append(_emit(list(argument[-1] if isinstance(argument, tuple) else argument)))
        elif name == "BRANCH":
            parts.append(_emit(list(argument[1][0])))
        elif name not in {"AT", "ASSERT", "ASSERT_NOT"}:
            raise ValueError(name)
    return "".join(parts)


_CATEGORY_CHAR = {
    "CATEGORY_DIGIT": "7",
    "CATEGORY_NOT_DIGIT": "a",
    "CATEGORY_WORD": "a",
    "CATEGORY_NOT_WORD": "-",
    "CATEGORY_SPACE": " ",
    "CATEGORY_NOT_SPACE": "a",
}


def _one_of(members: list[tuple[Any, Any]]) -> str:
    """A character of a `[...]` class; for a negated class, a common one outside it."""
    if members and str(members[0][0]) == "NEGATE":
        excluded = re.compile(f"[{_class_source(members[1:])}]")
        return next((c for c in "aZ0_- x.!" if not excluded.match(c)), "~")
    op, argument = members[0]
    name = str(op)
    if name == "LITERAL":
        return chr(argument)
    if name == "RANGE":
        return chr(argument[0])
    if name == "CATEGORY":
        return _CATEGORY_CHAR.get(str(argument), "a")
    raise ValueError(name)


def _class_source(members: list[tuple[Any, Any]]) -> str:
    escapes = {"CATEGORY_DIGIT": r"\d", "CATEGORY_WORD": r"\w", "CATEGORY_SPACE": r"\s"}
    source = []
    for op, argument in members:
        name = str(op)
        if name == "LITERAL":
            source.append(re.escape(chr(argument)))
        elif name == "RANGE":
            source.append(f"{re.escape(chr(argument[0]))}-{re.escape(chr(argument[1]))}")
        elif name == "CATEGORY" and str(argument) in escapes:
            source.append(escapes[str(argument)])
        else:
            raise ValueError(name)
    return "".join(source)
