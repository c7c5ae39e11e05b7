"""The Stripe fake as a dev-stack service: started by `make run` when no STRIPE_SECRET_KEY is
set, reused when already running, stopped with the stack; tests and production never get one."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe

from aisaas import devstack
from aisaas.devstack import DevstackError, StripeFakeService
from aisaas.devstack.base import port_accepts, read_pid
from tests.devstack.test_services import free_ports


@pytest.fixture
def service(tmp_path: Path) -> Iterator[StripeFakeService]:
    (port,) = free_ports(1)
    fake = devstack.stripe_fake_for(
        "dev",
        {
            "AISAAS_DATA_DIR": str(tmp_path),
            "AISAAS_STRIPE_PORT": str(port),
            "SITE_URL": "http://localhost:8123/",
        },
    )
    assert fake is not None
    try:
        yield fake
    finally:
        fake.stop()


def test_the_fake_starts_answers_the_sdk_is_reused_and_stops(service: StripeFakeService) -> None:
    # when the service starts, starts again, serves a request, then stops twice
    started = service.start()
    pid = read_pid(service.data_dir / "stripe.pid")
    started_again = service.start()
    customer = stripe.StripeClient(
        service.api_key, base_addresses={"api": service.url}
    ).v1.customers.create(params={"name": "Dev"})
    stopped = service.stop()
    port_closed = not port_accepts("127.0.0.1", service.port)
    stopped_again = service.stop()

    # then the first start started it, the second reused the same process, the SDK got a
    # customer from it, and the stop closed its port
    assert (started, started_again) == (True, False)
    assert pid is not None
    assert read_pid(service.data_dir / "stripe.pid") is None
    assert customer.id.startswith("cus_")
    assert (stopped, port_closed, stopped_again) == (True, True, False)
    assert service.webhook_url == "http://localhost:8123/billing/stripe/webhook"


def test_the_fake_refuses_a_taken_port(service: StripeFakeService) -> None:
    with socket.create_server(("127.0.0.1", service.port)), pytest.raises(DevstackError) as raised:
        service.start()

    assert "AISAAS_STRIPE_PORT" in str(raised.value)
    assert "STRIPE_SECRET_KEY" in str(raised.value)
    assert service.is_running() is False


@pytest.mark.parametrize(
    ("profile", "environ", "expected"),
    [
        ("dev", {}, ["postgres", "redis", "stripe"]),
        ("dev", {"STRIPE_SECRET_KEY": "sk_live_x"}, ["postgres", "redis"]),
        ("test", {}, ["postgres", "redis"]),
    ],
)
def test_only_development_without_a_stripe_key_runs_the_fake(
    profile: str, environ: dict[str, str], expected: list[str]
) -> None:
    services = devstack.with_stripe_fake(profile, {"AISAAS_DATA_DIR": "/nonexistent", **environ})

    assert [service.name for service in services] == expected
