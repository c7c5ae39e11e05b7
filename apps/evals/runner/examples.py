"""One eval example rendered with a prompt version, answered through the gateway and scored;
a version's examples run concurrently."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from apps.llm.prompts import PromptLibrary, PromptVersion
from apps.llm.services import CallScope, ChatResponse, GatewayError, allm_chat

from ..dataset import EvalExample
from ..scorers import CheckResult, score_example, summarise
from .ports import GatewayPorts, chat_request


@dataclass
class ExampleOutcome:
    example: EvalExample
    output: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    error: str = ""
    response: ChatResponse | None = None
    latency_ms: float = 0.0

    @property
    def score(self) -> tuple[float, bool]:
        if self.error:
            return 0.0, False
        return summarise(self.checks)


async def evaluate_example(
    example: EvalExample,
    prompt: PromptVersion,
    library: PromptLibrary,
    scope: CallScope,
    ports: GatewayPorts,
    *,
    alias: str | None,
    cache: bool,
) -> ExampleOutcome:
    outcome = ExampleOutcome(example)
    try:
        rendered = library.render(prompt.name, example.vars, version=prompt.version)
    except Exception as exc:  # an example that does not fit this version is its failure
        outcome.error = f"render: {exc}"
        return outcome
    started = time.perf_counter()
    try:
        response = await allm_chat(
            scope=scope, request=chat_request(rendered, example.input, alias=alias, cache=cache)
        )
    except GatewayError as exc:
        outcome.error = f"{exc.code}: {exc.message}"
        return outcome
    outcome.latency_ms = (time.perf_counter() - started) * 1000
    outcome.response, outcome.output = response, response.text
    try:
        outcome.checks = await score_example(
            example,
            response.text,
            offline=response.offline,
            ports=ports,
            response_schema=prompt.response_schema,
        )
    except GatewayError as exc:  # an embedding call failed: the example cannot be scored
        outcome.error = f"scoring: {exc.code}: {exc.message}"
    return outcome


async def evaluate_all(
    examples: list[EvalExample],
    prompt: PromptVersion,
    library: PromptLibrary,
    scope: CallScope,
    ports: GatewayPorts,
    *,
    alias: str | None,
    cache: bool,
    concurrency: int,
) -> list[ExampleOutcome]:
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(example: EvalExample) -> ExampleOutcome:
        async with gate:
            return await evaluate_example(
                example, prompt, library, scope, ports, alias=alias, cache=cache
            )

    return list(await asyncio.gather(*(one(e) for e in examples)))
