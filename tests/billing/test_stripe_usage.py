"""The nightly usage push: a day's consumed credits → one Stripe meter event per workspace,
never counted twice however often the push runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from django.conf import settings
from django.utils import timezone

from aisaas.devstack.stripe_fake import StripeFakeServer
from apps.billing.checkout import billing_customer_get_or_create
from apps.billing.models import BillingCustomer, UsageReport
from apps.billing.tasks import push_usage_to_stripe
from apps.billing.usage import usage_identifier, usage_push
from apps.workspaces.models import Workspace
from tests.factories import LedgerEntryFactory

pytestmark = pytest.mark.django_db

MakeWorkspace = Callable[..., Workspace]


def spend(workspace: Workspace, *entries: tuple[str, int]) -> None:
    for number, (reason, delta) in enumerate(entries):
        LedgerEntryFactory.create(
            workspace=workspace,
            delta_micros=delta,
            reason=reason,
            idempotency_key=f"usage-test:{workspace.pk}:{number}",
        )


def meter_events(fake: StripeFakeServer, identifier: str) -> list[dict]:
    return [e for e in fake.state.meter_events.values() if e["identifier"] == identifier]


@pytest.fixture
def customer_today(
    stripe_fake: StripeFakeServer, make_workspace: MakeWorkspace
) -> tuple[Workspace, date]:
    """A workspace with a Stripe customer that consumed 3,000 credits today: 2,400 in chat and
    600 in an agent run. A top-up and an outcome that day are not usage."""
    workspace = make_workspace()
    billing_customer_get_or_create(workspace=workspace)
    spend(
        workspace,
        ("feature.chat", -2_000_000),
        ("feature.chat", -400_000),
        ("agent.run", -600_000),
        ("outcome", -1_000_000),
        ("topup", 5_000_000),
    )
    return workspace, timezone.now().date()


def test_two_pushes_of_the_same_day_send_one_meter_event(
    stripe_fake: StripeFakeServer, customer_today: tuple[Workspace, date]
) -> None:
    # given a workspace's day of usage
    workspace, day = customer_today
    identifier = usage_identifier(workspace_id=workspace.pk, day=day)

    # when the push runs, then runs again (a retry, or beat firing twice)
    first = usage_push(day=day)
    second = usage_push(day=day)

    # then Stripe received one meter event with the day's credits, and our row says when
    (event,) = meter_events(stripe_fake, identifier)
    customer = BillingCustomer.objects.get(workspace=workspace)
    assert event["event_name"] == settings.STRIPE_METER_EVENT_NAME
    assert event["payload"] == {"stripe_customer_id": customer.stripe_customer_id, "value": "3000"}
    report = UsageReport.objects.get(workspace=workspace, day=day)
    assert (report.identifier, report.value, report.error) == (identifier, 3000, "")
    assert report.sent_at is not None
    assert first.sent >= 1
    assert first.failed == 0
    assert second.sent == 0
    assert second.already >= 1


def test_a_push_lost_after_stripe_accepted_it_is_not_counted_again(
    stripe_fake: StripeFakeServer, customer_today: tuple[Workspace, date]
) -> None:
    # given Stripe already holding the day's event (our run crashed before recording it)
    workspace, day = customer_today
    identifier = usage_identifier(workspace_id=workspace.pk, day=day)
    customer = BillingCustomer.objects.get(workspace=workspace)
    stripe_fake.fake.meter_event_create(
        {
            "event_name": settings.STRIPE_METER_EVENT_NAME,
            "payload": {"stripe_customer_id": customer.stripe_customer_id, "value": "3000"},
            "identifier": identifier,
        }
    )

    # when the push runs again
    report = usage_push(day=day)

    # then Stripe refuses the repeated identifier, we record the day as sent, nothing doubles
    assert len(meter_events(stripe_fake, identifier)) == 1
    assert UsageReport.objects.get(identifier=identifier).sent_at is not None
    assert report.already >= 1


def test_a_refused_push_keeps_the_error_and_is_sent_by_the_retry(
    stripe_fake: StripeFakeServer, customer_today: tuple[Workspace, date]
) -> None:
    # given a customer id Stripe does not know (deleted on Stripe's side, say)
    workspace, day = customer_today
    customer = BillingCustomer.objects.get(workspace=workspace)
    real_id = customer.stripe_customer_id
    BillingCustomer.objects.filter(pk=customer.pk).update(stripe_customer_id="cus_gone")

    # when the push runs, the customer is fixed, and the task runs for that day
    failed = usage_push(day=day)
    report = UsageReport.objects.get(workspace=workspace, day=day)
    BillingCustomer.objects.filter(pk=customer.pk).update(stripe_customer_id=real_id)
    result = push_usage_to_stripe(day=day.isoformat())

    # then the first run recorded why and sent nothing; the task's run sent the day once
    assert failed.failed >= 1
    assert report.sent_at is None
    assert "No such customer" in report.error
    identifier = usage_identifier(workspace_id=workspace.pk, day=day)
    assert len(meter_events(stripe_fake, identifier)) == 1
    assert "0 failed" in result
    assert UsageReport.objects.get(identifier=identifier).sent_at is not None


def test_a_day_without_usage_sends_nothing(
    stripe_fake: StripeFakeServer, make_workspace: MakeWorkspace
) -> None:
    workspace = make_workspace()
    billing_customer_get_or_create(workspace=workspace)
    day = timezone.now().date()

    usage_push(day=day)

    identifier = usage_identifier(workspace_id=workspace.pk, day=day)
    assert meter_events(stripe_fake, identifier) == []
    assert not UsageReport.objects.filter(workspace=workspace).exists()
