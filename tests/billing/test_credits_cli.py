"""`manage.py credits`: balance (text and JSON) and operator grants, with bad input refused and
nothing written."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.billing.ledger import balance_get
from apps.billing.models import LedgerEntry
from apps.workspaces.models import Workspace


def _run(*args: str) -> str:
    out = StringIO()
    call_command("credits", *args, stdout=out)
    return out.getvalue()


def test_balance_as_json(workspace: Workspace) -> None:
    data = json.loads(_run("balance", "--workspace", workspace.slug, "--json"))
    assert data["balance_micros"] == 1_000_000
    assert data["credits"] == 1000
    assert data["available_micros"] == 1_000_000
    assert "1,000 credits" in _run("balance", "--workspace", workspace.slug)


def test_grant_adds_credit_and_a_key_makes_it_idempotent(workspace: Workspace) -> None:
    entries = LedgerEntry.objects.filter(workspace=workspace).count()
    first = json.loads(
        _run(
            "grant",
            "--workspace",
            workspace.slug,
            "--usd",
            "5",
            "--reason",
            "adjustment",
            "--idempotency-key",
            "ops-1",
            "--json",
        )
    )
    second = _run(
        "grant",
        "--workspace",
        workspace.slug,
        "--usd",
        "5",
        "--reason",
        "adjustment",
        "--idempotency-key",
        "ops-1",
    )
    unkeyed = [
        _run("grant", "--workspace", workspace.slug, "--usd", "0.5", "--reason", "refund")
        for _ in range(2)
    ]

    assert first["created"] is True
    assert first["balance_micros"] == 6_000_000
    assert "nothing changed" in second
    assert all("Granted 500 credits" in line for line in unkeyed)
    assert LedgerEntry.objects.filter(workspace=workspace).count() == entries + 3


@pytest.mark.parametrize(
    ("usd", "message"),
    [
        ("0", "positive"),
        ("-5", "positive"),
        ("five", "not an amount"),
        ("1e400000", "limited to"),
        ("0.0000001", "six decimal places"),
    ],
)
def test_bad_amounts_are_refused_and_nothing_is_written(
    workspace: Workspace, usd: str, message: str
) -> None:
    entries = LedgerEntry.objects.filter(workspace=workspace).count()
    with pytest.raises(CommandError, match=message):
        _run("grant", "--workspace", workspace.slug, "--usd", usd, "--reason", "adjustment")
    assert LedgerEntry.objects.filter(workspace=workspace).count() == entries


def test_unknown_workspaces_and_reasons_are_refused(workspace: Workspace) -> None:
    entries = LedgerEntry.objects.filter(workspace=workspace).count()
    with pytest.raises(CommandError, match="No workspace"):
        _run("balance", "--workspace", "no-such-place")
    with pytest.raises(CommandError, match="No workspace"):
        _run("grant", "--workspace", "public", "--usd", "5", "--reason", "adjustment")
    with pytest.raises(CommandError):
        _run("grant", "--workspace", workspace.slug, "--usd", "5", "--reason", "gift")
    assert LedgerEntry.objects.filter(workspace=workspace).count() == entries


def test_take_removes_credit_but_never_below_zero(workspace: Workspace) -> None:
    entries = LedgerEntry.objects.filter(workspace=workspace).count()
    start = balance_get(workspace_id=workspace.pk).balance_micros

    out = _run("take", "--workspace", workspace.slug, "--usd", "0.25", "--note", "demo")

    assert "Took back 250 credits" in out
    entry = LedgerEntry.objects.filter(workspace=workspace).first()
    assert entry is not None
    assert (entry.delta_micros, entry.reason) == (-250_000, "adjustment")
    assert entry.balance_after_micros == start - 250_000
    assert entry.metadata == {"by": "operator", "note": "demo"}
    for usd, message in (("0", "positive"), ("-1", "positive"), ("999999", "Not enough credit")):
        with pytest.raises(CommandError, match=message):
            _run("take", "--workspace", workspace.slug, "--usd", usd)
    assert LedgerEntry.objects.filter(workspace=workspace).count() == entries + 1
