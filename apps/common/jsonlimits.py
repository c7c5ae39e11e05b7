"""How deeply input JSON may nest. Parsers, JSON Schema checks, `copy.deepcopy` and our own
walkers recurse once per level or more: a body or a socket frame nested thousands deep overflowed
Python's stack (a 500, or the chat socket closed with 1011). Input deeper than MAX_JSON_DEPTH is
refused before it is parsed; the gateway caps the schemas it is given itself (checks.py).
"""

from __future__ import annotations

import re
from itertools import accumulate

# Real requests nest a handful of levels (a chat body with tool schemas: about ten).
MAX_JSON_DEPTH = 64

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JsonTooDeepError(ValueError):
    def __init__(self, depth: int):
        super().__init__(f"JSON nested {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted.")
        self.depth = depth


def json_text_depth(text: str | bytes) -> int:
    """How deeply the arrays and objects of JSON `text` nest (brackets inside strings don't
    count), read without parsing it. Malformed text gets a number too; its parser refuses it."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    brackets = _BRACKET.findall(_STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def json_depth_check(text: str | bytes) -> None:
    """Raise JsonTooDeepError when `text` nests deeper than MAX_JSON_DEPTH."""
    depth = json_text_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise JsonTooDeepError(depth)
