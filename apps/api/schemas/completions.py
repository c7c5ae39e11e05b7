"""`POST /v1/completions`, OpenAI's legacy text completions (llama-index's OpenAILike,
`litellm.text_completion`, `client.completions.create`): the prompt is sent to the alias as
one user turn, through the chat-completions path."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from .openai import CompletionUsage, Gateway, StreamOptions, Strict


class CompletionRequest(BaseModel):
    """POST /v1/completions. `prompt` is one text (or one token array, cl100k_base)."""

    model_config = Strict
    model: Annotated[str, Field(min_length=1, max_length=100, examples=["fast"])]
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    # Refused unless they ask for what the gateway does anyway.
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    best_of: Annotated[int, Field(ge=0, le=20)] | None = None
    echo: bool | None = None
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None
    suffix: str | None = None
    # Accepted and not forwarded.
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    logit_bias: dict[str, int] | None = None


class TextChoice(BaseModel):
    text: str
    index: int
    logprobs: None = None
    finish_reason: Literal["stop", "length", "content_filter"] | None


class TextCompletion(BaseModel):
    """The answer; with `stream: true`, `data:` events of this shape (each choice's `text` a
    piece, `finish_reason` on the last), a usage event when asked, then `data: [DONE]`."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[TextChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: None = None
    aisaas: Gateway | None = None
