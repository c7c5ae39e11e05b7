"""A streamed call: the same stages as a plain one, with the provider's events passed on as they
come. The route is chosen before the first event reaches the caller; after it, a failure can no
longer fall back and ends the stream as truncated."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Sequence

from ..call import Call, ProviderClock, StreamState
from ..context import CallScope
from ..errors import GatewayError, ProviderError
from ..types import (
    ChatRequest,
    DoneEvent,
    ErrorEvent,
    ProviderEvent,
    ProviderUsageEvent,
    StreamEvent,
    TokenEvent,
    ToolUseEvent,
)
from .attempts import Attempts
from .stages import Stage, run_before


async def stream_events(
    scope: CallScope,
    request: ChatRequest,
    *,
    clock: ProviderClock | None,
    before_call: Sequence[Stage],
    attempts: Attempts,
    after: Stage,
) -> AsyncGenerator[StreamEvent, None]:
    """Run `before_call`, then pass on the events of the stream `attempts` opens. `after` is
    awaited on every way out and must act only once per call. The contract is `Gateway.stream`'s."""
    call = Call(
        scope=scope,
        request=request,
        streaming=True,
        request_id=scope.request_id or uuid.uuid4().hex,
        clock=clock or ProviderClock(),
    )
    events: AsyncGenerator[ProviderEvent, None] | None = None
    state = StreamState()
    try:
        await run_before(before_call, call)
        if call.response is not None:  # cache hit: replay the stored answer
            call.status = "ok"
            if call.response.text:
                yield TokenEvent(call.response.text)
            for tool_call in call.response.tool_calls:
                yield ToolUseEvent(tool_call)
            await asyncio.shield(after(call))
            yield DoneEvent(
                usage=call.usage,
                reason=call.response.finish_reason,
                response=call.chat_response(),
            )
            return
        events, state, event = await attempts.open_stream(call)
        # Committed to this route: from the first event on there is no fallback.
        while event is not None:
            if isinstance(event, ProviderUsageEvent):
                state.absorb(event)
            else:
                state.keep(event, call)
                yield event
            event = await anext(events, None)
        call.usage = state.usage(call, finished=True)
        call.response = state.response(call, finish=None)
        call.status = "ok"
        await asyncio.shield(after(call))
        yield DoneEvent(
            usage=call.usage, reason=call.response.finish_reason, response=call.chat_response()
        )
    except ProviderError as exc:
        if events is None:
            call.error = exc
            raise
        # Mid-stream failure: say so, never end cleanly.
        assert call.route is not None
        call.attempts.append(f"{call.route.provider}/{call.route.model}: {exc.kind} mid-stream")
        call.status, call.error = "truncated", exc
        call.usage = state.usage(call, finished=False)
        call.response = state.response(call, finish="truncated")
        await asyncio.shield(after(call))
        yield ErrorEvent(
            message="The answer was cut off by a provider error.", code=exc.kind, retryable=True
        )
        yield DoneEvent(usage=call.usage, reason="truncated")
    except GatewayError as exc:
        call.error = exc
        raise
    except (GeneratorExit, asyncio.CancelledError):
        call.status = "cancelled"
        raise
    finally:
        if events is not None:
            await events.aclose()  # closes the provider's HTTP stream
            if call.status == "cancelled":
                call.usage = state.usage(call, finished=False)
                call.response = state.response(call, finish="cancelled")
        await asyncio.shield(after(call))
