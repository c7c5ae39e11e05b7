"""Async streams that a person can stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

T = TypeVar("T")

_STOP = object()
_END = object()


async def until_stopped(stop: asyncio.Event, events: AsyncIterator[T]) -> AsyncIterator[T | None]:
    """`events` until `stop` is set, then one None. The events are read in a task of their own,
    so a stop lands even while the source is silent (a provider thinking); that task is
    cancelled on the way out, which closes the source (a gateway stream then settles what it
    produced)."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in events:
                queue.put_nowait(event)
        except Exception as exc:  # raised again by the reader
            queue.put_nowait(exc)
        else:
            queue.put_nowait(_END)

    async def stopper() -> None:
        await stop.wait()
        queue.put_nowait(_STOP)

    tasks = (asyncio.ensure_future(pump()), asyncio.ensure_future(stopper()))
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if item is _STOP:
                yield None
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
