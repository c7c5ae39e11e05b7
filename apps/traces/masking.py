"""PII and secret masking before anything reaches long-term storage.

A detector finds spans; `mask` replaces them with typed placeholders like `[EMAIL]`. The rule
detector is the default; a model-based one can be added to DETECTORS without touching callers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    label: str


class Detector(Protocol):
    def find(self, text: str) -> Iterable[Span]: ...


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


class RuleDetector:
    """Regular expressions for the PII and secrets that leak most often into prompts."""

    PATTERNS = (
        ("API_KEY", re.compile(r"\b(?:sk|pk|rk)-(?:[A-Za-z0-9_-]{2,}-)?[A-Za-z0-9_-]{16,}")),
        ("API_KEY", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
        ("API_KEY", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b")),
        ("API_KEY", re.compile(r"\bxox[abpors]-[A-Za-z0-9-]{10,}\b")),
        ("JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
        ("EMAIL", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
        ("IBAN", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")),
    )
    PHONE = re.compile(r"(?<![\w+])\+?\d{1,3}[ .-]?\(?\d{2,4}\)?(?:[ .-]?\d{2,4}){2,4}(?!\w)")
    CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")

    def find(self, text: str) -> Iterable[Span]:
        for match in self.CARD.finditer(text):
            digits = re.sub(r"\D", "", match.group())
            if 13 <= len(digits) <= 19 and _luhn_ok(digits):
                yield Span(match.start(), match.end(), "CARD")
        for match in self.PHONE.finditer(text):
            # 9–15 digits: a phone number; fewer is a date, a price or an order number.
            if 9 <= sum(ch.isdigit() for ch in match.group()) <= 15:
                yield Span(match.start(), match.end(), "PHONE")
        for label, pattern in self.PATTERNS:
            for match in pattern.finditer(text):
                yield Span(match.start(), match.end(), label)


DETECTORS: list[Detector] = [RuleDetector()]


def mask(text: str, detectors: Iterable[Detector] | None = None) -> str:
    """`text` with every detected span replaced by `[LABEL]` (earlier, longer spans win)."""
    if not text:
        return text
    spans = sorted(
        (s for d in (detectors or DETECTORS) for s in d.find(text)),
        key=lambda s: (s.start, -(s.end - s.start)),
    )
    out: list[str] = []
    cursor = 0
    for span in spans:
        if span.start < cursor:
            continue
        out += [text[cursor : span.start], f"[{span.label}]"]
        cursor = span.end
    out.append(text[cursor:])
    return "".join(out)


def mask_value(value: Any) -> Any:
    """Mask every string inside a JSON-like value."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    return value
