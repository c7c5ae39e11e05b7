"""The provider port: one small class per vendor implements it (healthchecks' Transport idea)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..types import ChatRequest, ProviderEvent, ProviderResponse, Usage


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One attempt against one provider: the request with its resolved model and limits."""

    request: ChatRequest
    model: str
    max_tokens: int
    timeout: float


@dataclass(frozen=True, slots=True)
class Embeddings:
    vectors: tuple[tuple[float, ...], ...]
    model: str
    usage: Usage


class Provider(Protocol):
    """A model vendor. Implementations raise only `ProviderError` (retryable or not).

    `stream` is an async generator: closing it (`aclose()`, or cancelling the task iterating
    it) must close the upstream HTTP stream, so an abandoned answer stops costing money.
    """

    name: str
    offline: bool

    async def complete(self, call: ProviderCall) -> ProviderResponse: ...

    def stream(self, call: ProviderCall) -> AsyncGenerator[ProviderEvent, None]: ...

    async def embed(self, texts: Sequence[str], *, model: str, timeout: float) -> Embeddings: ...
