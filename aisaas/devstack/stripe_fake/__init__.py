"""A loopback Stripe fake for development and tests (no Stripe account, no network).

`StripeFakeServer` runs it in a thread (tests); `StripeFakeService` runs it as a background
process the dev stack starts and stops like Postgres and Redis (`make run` with no
STRIPE_SECRET_KEY). localstripe was considered: it has neither Checkout Sessions nor billing
meter events, the two things aisaas needs most.
"""

from .account import StripeFake, StripeFakeState
from .server import StripeFakeServer
from .service import StripeFakeService
from .wire import StripeFakeError, sign

__all__ = [
    "StripeFake",
    "StripeFakeError",
    "StripeFakeServer",
    "StripeFakeService",
    "StripeFakeState",
    "sign",
]
