"""What a pipeline stage is, and how stages that don't depend on each other run together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..call import Call

Stage = Callable[[Call], Awaitable[None]]


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
