"""PII and secret masking before anything reaches long-term storage (or a log line).

A detector finds spans; `mask` replaces them with typed placeholders like `[EMAIL]`. The
detectors are settings.TRACE_PII_DETECTORS, dotted paths to classes (or factories) built once
without arguments. A detector is anything with `find(text) -> Iterable[Span]`, so a model-based
one (an NER model kept warm in the process) plugs in beside the rules without touching callers:

    class NerDetector:
        def __init__(self) -> None:
            self.model = load_once()  # built on first use, then reused by every call
        def find(self, text: str) -> Iterable[Span]:
            for entity in self.model(text):
                yield Span(entity.start, entity.end, entity.label)  # e.g. "PERSON"

Rules favour masking a little too much over leaking: every number shape is validated (Luhn for
cards, mod-97 for IBANs, digit counts and grouping for phones) so that dates, prices, order
numbers, UUIDs, versions and timestamps stay readable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

DEFAULT_DETECTORS = ("apps.traces.masking.RuleDetector",)


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    label: str


class Detector(Protocol):
    """Finds the PII in one string. Must be thread-safe and must not raise on any input."""

    def find(self, text: str) -> Iterable[Span]: ...


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _iban_ok(compact: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters → 10..35, mod 97 == 1."""
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


# Secrets: each pattern's `secret` group is what is masked (a "Bearer " prefix stays readable).
_SECRETS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-api03-), and the same shape from other vendors.
    ("API_KEY", re.compile(r"(?<![\w-])(?P<secret>(?:sk|pk|rk)-[A-Za-z0-9_-]{16,})")),
    ("API_KEY", re.compile(r"(?<![\w-])(?P<secret>(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,})")),
    (
        "API_KEY",
        re.compile(r"(?<![A-Za-z0-9])(?P<secret>(?:AKIA|ASIA)[A-Z0-9]{16})(?![A-Za-z0-9])"),
    ),
    ("API_KEY", re.compile(r"(?<![\w-])(?P<secret>gh[pousr]_[A-Za-z0-9]{30,})")),
    ("API_KEY", re.compile(r"(?<![\w-])(?P<secret>github_pat_[A-Za-z0-9_]{40,})")),
    ("API_KEY", re.compile(r"(?<![\w-])(?P<secret>xox[abeoprs]-[A-Za-z0-9-]{10,})")),
    ("API_KEY", re.compile(r"(?<![\w-])(?P<secret>AIza[A-Za-z0-9_-]{35})")),
    (
        "JWT",
        re.compile(
            r"(?<![\w-])(?P<secret>eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+)"
        ),
    ),
    (
        "TOKEN",
        re.compile(r"(?i:\b(?:bearer|token)\s+)(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)"),
    ),
)
# A long random-looking string (mixed case and digits): a secret quoted without its prefix or
# header, as models do when they repeat one back. Hex digests and UUIDs are single-case.
_OPAQUE = re.compile(r"(?<![\w-])[A-Za-z0-9_-]{32,}(?![\w-])")
_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}\b"
)
# Uppercase country code, check digits, then 11–30 alphanumerics, grouped by 4 or not at all.
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
# A run of digits with the separators people write numbers with; validated by digit count.
_CARD = re.compile(r"(?<![\w.,-])\d(?:[ -]?\d){12,18}(?![\w]|[.,-]\d)")
_PHONE = re.compile(
    r"(?<![\w+.,:/-])(?:\+|\b00)?\(?\d{1,4}\)?(?:[ .-]?\(?\d{1,5}\)?){1,6}(?![\w:/]|[.,-]\d)"
)
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_THOUSANDS = re.compile(r"\d{1,3}(?:[ .]\d{3})+")
_DATE_LED = re.compile(r"(?:19|20)\d\d[.-]\d\d?[.-]")


def _opaque(candidate: str) -> bool:
    return (
        any(ch.isupper() for ch in candidate)
        and any(ch.islower() for ch in candidate)
        and sum(ch.isdigit() for ch in candidate) >= 2
    )


def _card(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    # Issuer prefixes 2–6 (Mastercard 2-series, Amex, Visa, Mastercard, Discover/UnionPay): a
    # Luhn-valid order number starting with 0, 1, 7, 8 or 9 is not a card.
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn_ok(digits)


def _phone(candidate: str) -> bool:
    digits = sum(ch.isdigit() for ch in candidate)
    international = candidate.startswith(("+", "00"))
    if not (8 if international else 9) <= digits <= 15:
        return False
    if international:
        return True
    groups = re.findall(r"\d+", candidate)
    if len(groups) < 2:
        # An unbroken run of 9+ digits is an id, an amount or a timestamp far more often than
        # a phone number written without "+"; card-length runs are checked as cards.
        return False
    if any(len(group) == 1 for group in groups[1:]) or _DATE_LED.match(candidate):
        return False  # ISBNs, build numbers ("20240517.1"), dates followed by a time
    return not (_IPV4.fullmatch(candidate) or _THOUSANDS.fullmatch(candidate))


class RuleDetector:
    """Regular expressions, each validated, for the PII and secrets that leak into prompts."""

    def find(self, text: str) -> Iterator[Span]:
        for label, pattern in _SECRETS:
            for match in pattern.finditer(text):
                secret = match.group("secret")
                if label == "TOKEN" and not any(ch.isdigit() for ch in secret):
                    continue  # "token authentication_requires_manual" is prose, not a token
                yield Span(match.start("secret"), match.end("secret"), label)
        for match in _OPAQUE.finditer(text):
            if _opaque(match.group()):
                yield Span(match.start(), match.end(), "SECRET")
        for match in _EMAIL.finditer(text):
            yield Span(match.start(), match.end(), "EMAIL")
        for match in _IBAN.finditer(text):
            if span := self._iban(match):
                yield span
        for match in _CARD.finditer(text):
            if _card(match.group()):
                yield Span(match.start(), match.end(), "CARD")
        for match in _PHONE.finditer(text):
            if _phone(match.group()):
                yield Span(match.start(), match.end(), "PHONE")

    @staticmethod
    def _iban(match: re.Match[str]) -> Span | None:
        # The pattern may have taken a following word of 1–4 capitals ("… 00 EUR"): drop
        # trailing groups until the checksum holds.
        text = match.group()
        while text:
            if _iban_ok(text.replace(" ", "")):
                return Span(match.start(), match.start() + len(text), "IBAN")
            cut = text.rfind(" ")
            if cut < 0:
                return None
            text = text[:cut]
        return None


@cache
def _built(paths: tuple[str, ...]) -> tuple[Detector, ...]:
    detectors: list[Detector] = []
    for path in paths:
        try:
            factory: Callable[[], Detector] = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"TRACE_PII_DETECTORS: cannot import “{path}”: {exc}"
            ) from exc
        detector = factory()
        if not callable(getattr(detector, "find", None)):
            raise ImproperlyConfigured(
                f"TRACE_PII_DETECTORS: “{path}” built {type(detector).__name__}, "
                "which has no find(text) method."
            )
        detectors.append(detector)
    return tuple(detectors)


def configured_detectors() -> tuple[Detector, ...]:
    """The detectors settings.TRACE_PII_DETECTORS names, built once per distinct list."""
    paths = DEFAULT_DETECTORS
    if settings.configured:
        paths = tuple(getattr(settings, "TRACE_PII_DETECTORS", DEFAULT_DETECTORS))
    return _built(paths)


def mask(text: str, detectors: Iterable[Detector] | None = None) -> str:
    """`text` with every detected span replaced by `[LABEL]` (earlier, longer spans win)."""
    if not text:
        return text
    found = configured_detectors() if detectors is None else detectors
    spans = sorted(
        (s for d in found for s in d.find(text)),
        key=lambda s: (s.start, -(s.end - s.start)),
    )
    out: list[str] = []
    cursor = 0
    for span in spans:
        if span.start < cursor:
            if span.end > cursor:  # overlaps the previous span: extend it, leak nothing
                cursor = span.end
            continue
        out += [text[cursor : span.start], f"[{span.label}]"]
        cursor = span.end
    out.append(text[cursor:])
    return "".join(out)


def mask_value(value: Any) -> Any:
    """Mask every string inside a JSON-like value, dictionary keys included."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    if isinstance(value, dict):
        return {mask_value(k) if isinstance(k, str) else k: mask_value(v) for k, v in value.items()}
    return value


def mask_log_event(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: log lines carry no PII either (an error message may quote a prompt)."""
    return {
        key: mask_value(value) if isinstance(value, str | list | dict) else value
        for key, value in event_dict.items()
    }
