"""The gateway calls of an eval: the product's call with a prompt version, and the scorers'
embeddings and judge."""

from __future__ import annotations

from dataclasses import dataclass

from apps.llm.prompts import PromptLibrary, RenderedPrompt
from apps.llm.services import (
    CallScope,
    ChatRequest,
    EmbedRequest,
    GatewayError,
    Message,
    allm_chat,
    allm_embed,
)

from ..scorers import Judgement, Vectors, parse_judgement

JUDGE_PROMPT = "evals.judge"


def chat_request(
    prompt: RenderedPrompt, user_input: str | None, *, alias: str | None, cache: bool = True
) -> ChatRequest:
    """The call the product makes with this prompt: the text as the system message (and the
    example's input as the user's), or as the one user message."""
    messages: tuple[Message, ...]
    if prompt.role == "system":
        messages = (Message("system", prompt.text), Message("user", user_input or ""))
    else:
        messages = (Message("user", prompt.text),)
    return ChatRequest(
        alias=alias or prompt.alias,
        messages=messages,
        max_tokens=prompt.max_tokens,
        response_format=prompt.response_format(),
        cache=cache,
        **prompt.request_fields(),
    )


@dataclass
class GatewayPorts:
    """The scorers' model calls, through the gateway: embeddings and the versioned judge."""

    library: PromptLibrary
    embed_scope: CallScope
    judge_scope: CallScope
    judge_alias: str | None = None

    async def embed(self, texts: tuple[str, ...]) -> Vectors:
        reply = await allm_embed(
            scope=self.embed_scope, request=EmbedRequest(alias="embed", inputs=texts)
        )
        return Vectors(reply.vectors, reply.cost_micros)

    async def judge(self, *, criteria: str, input: str, output: str) -> Judgement:
        prompt = self.library.render(
            JUDGE_PROMPT, {"criteria": criteria, "input": input, "output": output}
        )
        try:
            # The exact cache may answer: the same output under the same criteria gets the
            # same verdict, and re-judging unchanged outputs costs nothing.
            reply = await allm_chat(
                scope=self.judge_scope, request=chat_request(prompt, None, alias=self.judge_alias)
            )
        except GatewayError as exc:  # incl. a reply that is not the JSON asked for
            return Judgement(False, 0.0, f"the judge failed: {exc.message}", valid=False)
        verdict = parse_judgement(reply.text)
        return Judgement(
            verdict.passed,
            verdict.score,
            verdict.reason,
            verdict.valid,
            offline=reply.offline,
            cost_micros=reply.cost_micros,
        )
