"""`/v1/completions` (legacy text completions) ↔ the chat-completions path: the body becomes a
chat body with the prompt as one user turn, the reply a `text_completion`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.llm.services import ChatResponse, Usage

from ..schemas import ChatCompletionRequest, ChatMessage
from ..schemas.completions import CompletionRequest
from .errors import ApiError
from .requests import decoded_tokens
from .responses import extension, finish_reason, usage


def _refuse(param: str, message: str) -> ApiError:
    return ApiError(400, message, code="unsupported_parameter", param=param)


def prompt_text(body: CompletionRequest) -> str:
    """The one prompt: a text, a list of one text, or one token array (cl100k_base)."""
    prompt = body.prompt
    if isinstance(prompt, str):
        return prompt
    if prompt and all(isinstance(t, int) for t in prompt):
        return decoded_tokens(prompt, "prompt")  # type: ignore[arg-type]
    if len(prompt) != 1:
        raise _refuse("prompt", "Send one prompt per request: this gateway answers one at a time.")
    (only,) = prompt
    if isinstance(only, str):
        return only
    if isinstance(only, list):
        return decoded_tokens(only, "prompt[0]")
    raise ApiError(400, "prompt must be a text or token ids.", code="invalid_value", param="prompt")


def completion_as_chat(body: CompletionRequest) -> ChatCompletionRequest:
    """The chat body that answers `body` (its checks and refusals are the chat path's)."""
    if body.echo:
        raise _refuse("echo", "echo is not supported: the answer never repeats the prompt.")
    if body.suffix:
        raise _refuse("suffix", "suffix (insertion) is not supported by this gateway.")
    if body.logprobs:
        raise _refuse("logprobs", "logprobs are not supported by this gateway.")
    if body.best_of not in (None, 0, 1):
        raise _refuse("best_of", "best_of must be 1: this gateway returns one choice.")
    text = prompt_text(body)
    if not text:
        raise ApiError(400, "prompt must not be empty.", code="invalid_value", param="prompt")
    return ChatCompletionRequest(
        model=body.model,
        messages=[ChatMessage(role="user", content=text)],
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        stop=body.stop,
        stream=body.stream,
        stream_options=body.stream_options,
        n=body.n,
    )


def text_completion(reply: ChatResponse, *, created: int) -> dict[str, Any]:
    return {
        "id": f"cmpl-{reply.request_id}",
        "object": "text_completion",
        "created": created,
        "model": reply.alias,
        "choices": [
            {
                "text": reply.text,
                "index": 0,
                "logprobs": None,
                "finish_reason": finish_reason(reply.finish_reason),
            }
        ],
        "usage": usage(reply.usage),
        "system_fingerprint": None,
        "aisaas": extension(reply),
    }


@dataclass
class TextChunks:
    """Builds one stream's `text_completion` events."""

    request_id: str
    model: str
    created: int

    def _chunk(self, text: str, finish: str | None) -> dict[str, Any]:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        return {
            "id": f"cmpl-{self.request_id}",
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }

    def token(self, text: str) -> dict[str, Any]:
        return self._chunk(text, None)

    def finish(self, reason: str) -> dict[str, Any]:
        return self._chunk("", finish_reason(reason))

    def usage(self, reply: ChatResponse | None, u: Usage) -> dict[str, Any]:
        chunk = self._chunk("", None)
        chunk["choices"] = []
        chunk["usage"] = usage(u)
        if reply is not None:
            chunk["aisaas"] = extension(reply)
        return chunk
