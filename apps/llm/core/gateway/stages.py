"""What a pipeline stage is, and how stages that don't depend on each other run together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from redis.exceptions import RedisError

from ..call import Call
from ..errors import ServiceUnavailableError

Stage = Callable[[Call], Awaitable[None]]
# What the before-call stages use Redis for: named in the 503 a stalled or lost Redis gives.
REDIS_PART = "Redis (budgets and cache)"


async def run_before(stages: Sequence[Stage], call: Call) -> None:
    """Run the before-call stages in order. Redis failing or timing out there is a 503 naming
    it (ServiceUnavailableError), not an unexpected error: no provider was called."""
    try:
        for stage in stages:
            await stage(call)
    except RedisError as exc:
        raise ServiceUnavailableError(REDIS_PART) from exc


class Together:
    """Stages that don't depend on each other, run concurrently. Each runs to its end even when
    another fails (a write must not be skipped because its neighbour failed); the first failure
    is raised afterwards."""

    def __init__(self, *stages: Stage):
        self.stages = stages
        self.__name__ = " + ".join(getattr(s, "__name__", "stage") for s in stages)

    async def __call__(self, call: Call) -> None:
        results = await asyncio.gather(
            *(stage(call) for stage in self.stages), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
