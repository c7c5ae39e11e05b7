"""The offline provider: the default when no key is configured, so everything works without one.

Answers are deterministic and built from the prompt (see `reply`), streamed at a realistic
pace, and metered like a vendor's: usage counts the input estimate and the tokens actually
sent, so budgets, credits and the paywall behave offline as they do online.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from ... import embeddings
from ...errors import ProviderError
from ...tokens import count_message_tokens, count_tokens, token_pieces
from ...types import (
    FinishReason,
    ProviderEvent,
    ProviderResponse,
    ProviderUsageEvent,
    ThinkingEvent,
    TokenEvent,
    ToolCall,
    ToolUseEvent,
    Usage,
)
from ..base import Embeddings, ProviderCall
from .reply import plan_reply


@dataclass(frozen=True, slots=True)
class _Output:
    """The reply cut to the call's limits: what is sent, and what it costs."""

    thinking: tuple[str, ...]
    text: tuple[str, ...]
    tool_calls: tuple[ToolCall, ...]
    tool_tokens: tuple[int, ...]
    finish_reason: FinishReason
    usage: Usage


class LocalProvider:
    """Deterministic offline model ("local-fast", "local-smart", "local-reasoning", any name).

    `tokens_per_second` paces streaming (and the wait before `complete` returns) after
    `first_token_latency` seconds; 0 tokens per second means no waiting at all, for tests.
    """

    name = "local"
    offline = True

    def __init__(self, *, tokens_per_second: float = 60.0, first_token_latency: float = 0.25):
        if tokens_per_second < 0 or first_token_latency < 0:
            raise ValueError("tokens_per_second and first_token_latency must not be negative")
        self.tokens_per_second = tokens_per_second
        self.first_token_latency = first_token_latency

    async def complete(self, call: ProviderCall) -> ProviderResponse:
        """The whole answer, returned after the time streaming it would take."""
        output = _render(call)
        if self.tokens_per_second:
            produced = output.usage.output_tokens
            await asyncio.sleep(self.first_token_latency + produced / self.tokens_per_second)
        return ProviderResponse(
            text="".join(output.text),
            usage=output.usage,
            model=call.model,
            finish_reason=output.finish_reason,
            tool_calls=output.tool_calls,
            thinking="".join(output.thinking),
        )

    async def stream(self, call: ProviderCall) -> AsyncGenerator[ProviderEvent, None]:
        """Thinking, then one event per token, then tool calls, then the usage.

        A character spread over several tokens goes out whole, with its last token.

        Closing the generator stops it where it is; nothing is left running.
        """
        output = _render(call)
        pace = _Pace(self.tokens_per_second, self.first_token_latency)
        for piece in output.thinking:
            await pace.after(1)
            yield ThinkingEvent(piece)
        for piece in output.text:
            await pace.after(1)
            yield TokenEvent(piece)
        for tool_call, tokens in zip(output.tool_calls, output.tool_tokens, strict=True):
            await pace.after(tokens)
            yield ToolUseEvent(tool_call)
        yield ProviderUsageEvent(output.usage, model=call.model, finish_reason=output.finish_reason)

    async def embed(self, texts: Sequence[str], *, model: str, timeout: float) -> Embeddings:
        """Vectors from the bundled all-MiniLM-L6-v2; any other model name is refused."""
        if model not in embeddings.MODEL_NAMES:
            raise ProviderError(
                f"The local provider embeds with {embeddings.MODEL} only, not {model!r}.",
                retryable=False,
                provider=self.name,
                kind="bad_request",
            )
        try:
            async with asyncio.timeout(timeout if timeout > 0 else None):
                return await embeddings.embed(texts)
        except TimeoutError as exc:
            raise ProviderError(
                f"Local embeddings took longer than {timeout:g} s.",
                retryable=True,
                provider=self.name,
                kind="timeout",
            ) from exc
        except (ImportError, OSError, RuntimeError) as exc:
            raise ProviderError(
                f"The local embedding model could not run ({type(exc).__name__}).",
                retryable=False,
                provider=self.name,
            ) from exc


class _Pace:
    """Sleeps until each token is due, against a clock, so slow consumers do not drift it."""

    def __init__(self, tokens_per_second: float, first_token_latency: float):
        self._rate = tokens_per_second
        self._latency = first_token_latency
        self._start: float | None = None
        self._sent = 0

    async def after(self, tokens: int) -> None:
        if not self._rate:
            return
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self._latency + (self._sent + tokens - 1) / self._rate
        self._sent += tokens
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


def _render(call: ProviderCall) -> _Output:
    """Plan the reply, then apply stop sequences and `max_tokens` (finish "length")."""
    reply = plan_reply(call.request, call.model)
    text = reply.text
    for stop in call.request.stop:
        if stop and stop in text:
            text = text[: text.index(stop)]
    budget = call.max_tokens
    thinking = _pieces(reply.thinking, budget)
    thinking_tokens = count_tokens("".join(thinking))
    answer = _pieces(text, budget - thinking_tokens)
    produced = thinking_tokens + count_tokens("".join(answer))
    truncated = "".join(thinking) != reply.thinking or "".join(answer) != text

    tool_calls: tuple[ToolCall, ...] = ()
    tool_tokens: tuple[int, ...] = ()
    if reply.tool_calls and not truncated:
        costs = tuple(
            count_tokens(c.name) + count_tokens(json.dumps(c.arguments, ensure_ascii=False))
            for c in reply.tool_calls
        )
        if produced + sum(costs) <= budget:
            tool_calls, tool_tokens = reply.tool_calls, costs
            produced += sum(costs)
        else:
            # A tool call cut short is unusable, so none is sent; the tokens were spent.
            truncated, produced = True, budget

    reason: FinishReason = "length" if truncated else "tool_calls" if tool_calls else "stop"
    usage = Usage(
        input_tokens=count_message_tokens(call.request.messages, call.request.tools),
        output_tokens=produced,
    )
    return _Output(tuple(thinking), tuple(answer), tool_calls, tool_tokens, reason, usage)


def _pieces(text: str, limit: int) -> list[str]:
    """Token-sized pieces of `text`, no more than `limit` tokens when counted together."""
    if limit <= 0 or not text:
        return []
    pieces = token_pieces(text, limit)
    while pieces and count_tokens("".join(pieces)) > limit:
        pieces.pop()
    return pieces
