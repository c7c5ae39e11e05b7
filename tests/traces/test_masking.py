"""PII masking rules: every kind is caught whole, ordinary text is left alone, detectors plug in
from settings, log lines leave masked."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Iterator

import pytest
import structlog
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from apps.traces.masking import Span, mask, mask_value
from tests.traces.pii_samples import PiiFactory, grouped, iban, luhn_complete

PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("jane.doe+billing@mail.example.co.uk", "EMAIL"),
        ("+1 415 555 0123", "PHONE"),
        ("(415) 555-0123", "PHONE"),
        ("415.555.0123", "PHONE"),
        ("+44 20 7946 0958", "PHONE"),
        ("+33 1 23 45 67 89", "PHONE"),
        ("+91 98765 43210", "PHONE"),
        ("0044 20 7946 0958", "PHONE"),
        ("+14155550123", "PHONE"),
        ("4242 4242 4242 4242", "CARD"),
        ("4242-4242-4242-4242", "CARD"),
        ("378282246310005", "CARD"),
        ("DE89 3704 0044 0532 0130 00", "IBAN"),
        ("GB82WEST12345698765432", "IBAN"),
        ("sk-proj-AbCdEf1234567890XyZabc", "API_KEY"),
        ("sk-ant-api03-AbCdEf1234567890XyZ_abc-def", "API_KEY"),
        ("AKIAIOSFODNN7EXAMPLE", "API_KEY"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "API_KEY"),
        ("xoxb-12345678901-abcdefghijklmnop", "API_KEY"),
        ("sk_live_51HqAbCdEf1234567890", "API_KEY"),
        (
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "JWT",
        ),
        ("Vn0w2bRJ5fwPaASQTkP2ccBXMeoY3uvIuMPhXe7n", "SECRET"),  # a token quoted bare
    ],
)
def test_each_kind_is_replaced_whole_by_its_label(text: str, label: str) -> None:
    assert mask(f"Here: {text}. Thanks") == f"Here: [{label}]. Thanks"


def test_a_bearer_token_is_masked_and_the_scheme_kept() -> None:
    assert mask("Authorization: Bearer abcDEF123456ghiJKL789xyz") == "Authorization: Bearer [TOKEN]"


def test_invalid_checksums_are_not_cards_or_ibans() -> None:
    # one digit off: Luhn and mod-97 both fail, so these are just numbers and codes
    assert mask("ref 4242 4242 4242 4241") == "ref 4242 4242 4242 4241"
    assert mask("code DE88 3704 0044 0532 0130 00") == "code DE88 3704 0044 0532 0130 00"


def test_an_iban_followed_by_a_currency_keeps_the_currency() -> None:
    assert mask("Pay to DE89 3704 0044 0532 0130 00 EUR 20") == "Pay to [IBAN] EUR 20"


@pytest.mark.parametrize(
    "text",
    [
        "On 2024-05-17 at 10:30:00 the order ORD-2024-000123 cost $1,299.00 (EUR 1.299,00).",
        "Timestamps 2024-05-17T10:30:00Z and 2024-05-17T10:30:00.123456+02:00, epoch 1715941800.",
        "Dates 17.05.2024, 05/17/2024, 2024.05.17 12.30 and 10:30-11:45.",
        "UUID 123e4567-e89b-12d3-a456-426614174000 and 550e8400e29b41d4a716446655440000.",
        "Versions 1.2.3, v10.15.7, Python 3.11.9, Django 5.2.1, gpt-4.1-2025-04-14.",
        "Order #123456789, invoice 2024/05/17-0042, ticket JIRA-12345, build 20240517.1.",
        "Tracking 1Z999AA10123456784; host 192.168.100.200; ISBN 978-3-16-148410-0.",
        "8 000 000 000 people, 1.000.000.000 units, 100 000 tokens, 19.99 EUR, page 12 of 345.",
        "Coordinates 48.8566, 2.3522; sha 3f786850e387550fdab836ed7e6dc881de23001b.",
        "We use sk-learn and a risk-assessment-framework; token authentication is on.",
        "Reach me at the office or by email; the @mention and user@localhost stay.",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert mask(text) == text


def test_a_thousand_synthetic_values_of_every_kind_leave_no_residue() -> None:
    pii = PiiFactory(seed=20250517)
    for _ in range(1000):
        for kind, value in pii.one_of_each().items():
            text = f"Authorization: Bearer {value}" if kind == "bearer" else f"My {kind}: {value}."
            masked = mask(text)
            assert value not in masked, (kind, value, masked)
            leftover = PLACEHOLDER.sub("", masked)
            assert leftover in ("Authorization: Bearer ", f"My {kind}: ."), (kind, value, masked)


def test_sample_generators_make_valid_numbers() -> None:
    # the residue test is only as good as its samples
    assert luhn_complete("424242424242424") == "4242424242424242"
    assert iban("DE", "370400440532013000") == "DE89370400440532013000"
    assert grouped("DE89370400440532013000") == "DE89 3704 0044 0532 0130 00"


def test_mask_value_masks_nested_strings_and_keys() -> None:
    value = {"to": ["a@example.com", {"jane.doe@example.com": 3}], "n": 4, "ok": True}
    assert mask_value(value) == {"to": ["[EMAIL]", {"[EMAIL]": 3}], "n": 4, "ok": True}


class NameDetector:
    """What a model-based detector looks like to the masking: spans for one string."""

    def find(self, text: str) -> Iterable[Span]:
        for match in re.finditer(r"\bJane Doe\b", text):
            yield Span(match.start(), match.end(), "PERSON")


class NotADetector:
    pass


def test_detectors_plug_in_from_settings() -> None:
    detectors = [*settings.TRACE_PII_DETECTORS, f"{__name__}.NameDetector"]
    with override_settings(TRACE_PII_DETECTORS=detectors):
        assert mask("Jane Doe, jane@example.com") == "[PERSON], [EMAIL]"
    assert mask("Jane Doe, jane@example.com") == "Jane Doe, [EMAIL]"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "apps.traces.masking.NoSuchDetector",
            "cannot import “apps.traces.masking.NoSuchDetector”",
        ),
        (f"{__name__}.NotADetector", "has no find(text) method"),
    ],
)
def test_a_misconfigured_detector_is_named_in_the_error(path: str, message: str) -> None:
    with override_settings(TRACE_PII_DETECTORS=[path]), pytest.raises(ImproperlyConfigured) as exc:
        mask("anything")
    assert message in str(exc.value)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """What the project's console handler writes, captured: its formatter on a buffer."""
    config = dict(settings.LOGGING["formatters"]["structured"])
    formatter = config.pop("()")(**config)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def test_log_lines_ours_and_libraries_leave_masked(log_output: io.StringIO) -> None:
    structlog.get_logger("apps.llm").error(
        "provider.failed",
        error="bad request for jane.doe@example.com",
        extra={"card": "4242424242424242"},
    )
    logging.getLogger("httpx").error("retrying for %s", "+44 20 7946 0958")
    try:
        raise ValueError("key sk-proj-AbCdEf1234567890XyZabc rejected")
    except ValueError:
        logging.getLogger("celery").exception("task failed")

    written = log_output.getvalue()
    for secret in ("jane.doe@example.com", "4242424242424242", "7946 0958", "AbCdEf1234567890"):
        assert secret not in written
    for label in ("[EMAIL]", "[CARD]", "[PHONE]", "[API_KEY]"):
        assert label in written
    assert "provider.failed" in written
    assert "ValueError" in written
