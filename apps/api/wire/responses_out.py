"""`/v1/responses` answers out: the gateway's reply as a `response` object, or, when
streaming, OpenAI's typed events (with the output they add up to)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from apps.llm.services import ChatResponse, ToolCall, Usage

from ..schemas.responses import ResponseCreate
from .responses import argument_pieces, extension

Item = dict[str, Any]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def usage(u: Usage) -> dict[str, Any]:
    prompt = u.input_tokens + u.cache_read_tokens + u.cache_write_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": u.cache_read_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + u.output_tokens,
    }


def message_item(text: str, *, item_id: str, status: str = "completed") -> Item:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [part],
    }


def call_item(call: ToolCall, *, item_id: str, arguments: str | None = None) -> Item:
    return {
        "id": item_id,
        "type": "function_call",
        "status": "completed" if arguments is None else "in_progress",
        "call_id": call.id,
        "name": call.name,
        "arguments": json.dumps(call.arguments) if arguments is None else arguments,
    }


def output_items(text: str, calls: tuple[ToolCall, ...], *, incomplete: bool = False) -> list[Item]:
    """A reply's output: its text as one message (when it has text, or nothing else), then
    one function_call item per call."""
    out = []
    if text or not calls:
        out.append(
            message_item(
                text, item_id=new_id("msg"), status="incomplete" if incomplete else "completed"
            )
        )
    out += [call_item(c, item_id=new_id("fc")) for c in calls]
    return out


def conversation_items(output: list[Item]) -> list[Item]:
    """Output items as input items of the next turn (what a stored response keeps)."""
    items: list[Item] = []
    for item in output:
        if item["type"] == "message":
            text = "".join(part["text"] for part in item["content"])
            items.append({"type": "message", "role": "assistant", "content": text})
        else:
            items.append({k: item[k] for k in ("type", "call_id", "name", "arguments")})
    return items


@dataclass
class Skeleton:
    """What every response object of one request repeats: its id, model and parameters."""

    response_id: str
    body: ResponseCreate
    created_at: int
    tools: list[dict[str, Any]] = field(default_factory=list)

    def response(
        self,
        *,
        status: str,
        output: list[Item],
        u: Usage | None = None,
        reply: ChatResponse | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = self.body
        fmt = body.text.format if body.text is not None and body.text.format else None
        choice = body.tool_choice
        out: dict[str, Any] = {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": (
                {"reason": "max_output_tokens"} if status == "incomplete" else None
            ),
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "model": body.model,
            "output": output,
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": body.previous_response_id,
            "store": body.store is not False,
            "temperature": body.temperature,
            "text": {
                "format": fmt.model_dump(by_alias=True, exclude_none=True)
                if fmt
                else {"type": "text"}
            },
            "tool_choice": (
                choice.model_dump(exclude_none=True)
                if choice is not None and not isinstance(choice, str)
                else choice or "auto"
            ),
            "tools": [t.model_dump(exclude_none=True) for t in body.tools or ()],
            "top_p": body.top_p,
            "truncation": body.truncation or "disabled",
            "usage": usage(u) if u is not None else None,
            "metadata": body.metadata or {},
        }
        if reply is not None:
            out["aisaas"] = extension(reply)
        return out


def status_of(finish: str) -> str:
    return "incomplete" if finish in ("length", "truncated") else "completed"


@dataclass
class ResponseEvents:
    """Builds one stream's typed events (`event:` name, `data` with `type` and a running
    `sequence_number`) and the output they add up to."""

    skeleton: Skeleton
    sequence: int = 0
    output: list[Item] = field(default_factory=list)
    _text: list[str] = field(default_factory=list)
    _message: Item | None = None

    def _event(self, kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return kind, event

    def created(self) -> list[tuple[str, dict[str, Any]]]:
        snapshot = self.skeleton.response(status="in_progress", output=[])
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def text(self, delta: str) -> list[tuple[str, dict[str, Any]]]:
        events = []
        if self._message is None:
            self._message = message_item("", item_id=new_id("msg"), status="in_progress")
            self._message["content"] = []
            self.output.append(self._message)
            index = len(self.output) - 1
            events.append(
                self._event(
                    "response.output_item.added", output_index=index, item=dict(self._message)
                )
            )
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=self._message["id"],
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
        self._text.append(delta)
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=self._message["id"],
                output_index=self.output.index(self._message),
                content_index=0,
                delta=delta,
                logprobs=[],
            )
        )
        return events

    def _close_text(self, status: str = "completed") -> list[tuple[str, dict[str, Any]]]:
        message = self._message
        if message is None:
            return []
        self._message = None
        text = "".join(self._text)
        index = self.output.index(message)
        done = message_item(text, item_id=message["id"], status=status)
        self.output[index] = done
        part = done["content"][0]
        common = {"item_id": done["id"], "output_index": index, "content_index": 0}
        return [
            self._event("response.output_text.done", **common, text=text, logprobs=[]),
            self._event("response.content_part.done", **common, part=part),
            self._event("response.output_item.done", output_index=index, item=done),
        ]

    def tool_call(self, call: ToolCall) -> list[tuple[str, dict[str, Any]]]:
        """A call as providers stream it: the item added with empty arguments, the
        arguments in pieces, then done."""
        events = self._close_text()
        item = call_item(call, item_id=new_id("fc"), arguments="")
        self.output.append(item)
        index = len(self.output) - 1
        events.append(
            self._event("response.output_item.added", output_index=index, item=dict(item))
        )
        for piece in argument_pieces(call):
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=piece,
                )
            )
        done = call_item(call, item_id=item["id"])
        self.output[index] = done
        events.append(
            self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=call.name,
                arguments=done["arguments"],
            )
        )
        events.append(self._event("response.output_item.done", output_index=index, item=done))
        return events

    def finished(
        self, finish: str, u: Usage, reply: ChatResponse | None
    ) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
        """The closing events (`response.completed`, or `response.incomplete` when cut at
        max_output_tokens) and the final response object."""
        status = status_of(finish)
        events = self._close_text("incomplete" if status == "incomplete" else "completed")
        if not self.output:
            events += self.text("") + self._close_text()
        final = self.skeleton.response(status=status, output=self.output, u=u, reply=reply)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        events.append(self._event(kind, response=final))
        return events, final

    def failed(self, message: str, code: str) -> list[tuple[str, dict[str, Any]]]:
        error = {"code": code, "message": message}
        events = self._close_text("incomplete")
        events.append(self._event("error", code=code, message=message, param=None))
        snapshot = self.skeleton.response(status="failed", output=self.output, error=error)
        events.append(self._event("response.failed", response=snapshot))
        return events
