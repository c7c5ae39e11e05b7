"""What the offline model says, planned whole before a token is sent.

The answer is built from the prompt: a tool call when one is asked for, a JSON value for
structured outputs, a summary of a tool's result, an extractive answer with citations when the
system prompt carries sources (grounded.py), or a few sentences of prose that restate the
request. A hash of the model and the messages picks the wording, so the same request
always gets the same answer and a different one gets a different answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...types import ChatRequest, Message, Tool, ToolCall
from .grounded import grounded_answer, sources_in
from .schema_value import sample
from .words import first_sentence, join_words, salient, seed

_ROLE = re.compile(r"\b(?:you are|act as)\s+((?:an?|the)\s+[^.!?\n,;:]{2,60})", re.IGNORECASE)
_QUESTION_WORDS = frozenset(
    {"what", "how", "why", "when", "where", "which", "who", "whose", "can", "could", "should"}
    | {"would", "is", "are", "do", "does", "did"}
)

_QUESTION_OPENERS = ("You asked: *{s}*", "Good question: *{s}*", "Here is a short answer to *{s}*")
_STATEMENT_OPENERS = ("You wrote: *{s}*", "Noted: *{s}*", "Here is my take on *{s}*")
_ROLE_LINES = (
    "As {role}, I'll keep this focused.",
    "Speaking as {role}, here is the gist.",
    "In my role as {role}, this is how I see it.",
)
_KEY_LINES = (
    "It mostly comes down to {keys}.",
    "The parts that matter most here are {keys}.",
    "I'd focus on {keys}.",
)
_CLOSERS = (
    "If you share more detail about {first}, I can go deeper.",
    "Let me know if you want a step-by-step breakdown.",
    "Happy to expand on any of these.",
    "Tell me which part of {first} matters most to you and I'll go from there.",
)
_BULLETS = (
    "Start with **{key}**: it shapes everything else.",
    "Check how **{key}** affects the outcome.",
    "Keep **{key}** in mind for the next steps.",
    "Compare the options for **{key}** before deciding.",
)


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


def plan_reply(request: ChatRequest, model: str) -> Reply:
    """The whole answer to `request`: tool calls, a JSON value, a tool-result summary or prose."""
    messages = request.messages
    last = messages[-1] if messages else None
    question = _last_content(messages, "user")
    number = seed(model, *(f"{m.role}\x1e{m.content}" for m in messages))
    answering_tool = last is not None and last.role == "tool"

    tools = _repeated_tools(request, question) if answering_tool else ()
    tools = tools or (() if answering_tool else _chosen_tools(request, question))
    if tools:
        calls = tuple(
            ToolCall(
                id=f"call_{seed(str(number), tool.name):016x}",
                name=tool.name,
                arguments=_object(sample(tool.parameters, hint=question)),
            )
            for tool in tools
        )
        return Reply(text="", tool_calls=calls)

    hint = f"{question}\n{last.content}" if answering_tool and last is not None else question
    response_format = request.response_format
    if response_format is not None and response_format.json_schema is not None:
        return Reply(text=_json(sample(response_format.json_schema, hint=hint)))
    if response_format is not None and response_format.type != "text":
        return Reply(text=_json(_small_object(hint)))
    if answering_tool and last is not None:
        return Reply(text=_from_tool_result(messages, last, question))
    sources = sources_in(messages)
    if sources is not None:
        return Reply(text=grounded_answer(sources, question))
    thinking = _thinking(question, _system_role(messages)) if "reason" in model else ""
    return Reply(text=_prose(messages, question, model, number), thinking=thinking)


def _last_content(messages: Sequence[Message], role: str) -> str:
    return next((m.content for m in reversed(messages) if m.role == role), "")


def _chosen_tools(request: ChatRequest, question: str) -> tuple[Tool, ...]:
    """The tool named by `tool_choice`, else those the user mentions, else the first if required."""
    if not request.tools or request.tool_choice == "none":
        return ()
    named = [tool for tool in request.tools if tool.name == request.tool_choice]
    if named:
        return (named[0],)
    folded = question.casefold()
    mentioned = tuple(
        tool
        for tool in request.tools
        if any(
            re.search(rf"(?<!\w){re.escape(name)}(?!\w)", folded)
            for name in {tool.name.casefold(), tool.name.casefold().replace("_", " ")}
        )
    )
    if mentioned:
        return mentioned
    return request.tools[:1] if request.tool_choice == "required" else ()


_COUNT_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
}  # fmt: skip
_MAX_REPEATS = 50


def _repeated_tools(request: ChatRequest, question: str) -> tuple[Tool, ...]:
    """A tool the user asked to use a number of times ("create_task … ten tasks", "3 tasks"),
    called again while it has run fewer times than that — one call per step, like a model
    working through a list."""
    folded = question.casefold()
    done = _calls_made(request.messages)
    for tool in _chosen_tools(request, question):
        noun = tool.name.casefold().split("_")[-1]
        match = re.search(
            rf"(?<!\w)(\d{{1,2}}|{'|'.join(_COUNT_WORDS)})\s+{re.escape(noun)}s\b", folded
        )
        if match is None:
            continue
        word = match.group(1)
        count = min(int(word) if word.isdigit() else _COUNT_WORDS[word], _MAX_REPEATS)
        if done.get(tool.name, 0) < count:
            return (tool,)
    return ()


def _calls_made(messages: Sequence[Message]) -> dict[str, int]:
    made: dict[str, int] = {}
    for message in messages:
        for call in message.tool_calls:
            made[call.name] = made.get(call.name, 0) + 1
    return made


def _object(value: Any) -> dict[str, Any]:
    # Tool arguments are an object on every vendor's wire, even for a non-object schema.
    return value if isinstance(value, dict) else {"value": value}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _small_object(hint: str) -> dict[str, Any]:
    words = salient(hint, 5)
    topic = join_words(words[:3]) or "your message"
    return {"answer": f"A short answer about {topic}.", "keywords": words}


def _system_role(messages: Sequence[Message]) -> str | None:
    """The persona the system prompt gives ("You are a tax adviser." → "a tax adviser").

    "" when the system prompt names none; None when there is no system prompt.
    """
    system = " ".join(m.content for m in messages if m.role == "system")
    if not system.strip():
        return None
    match = _ROLE.search(system)
    return " ".join(match.group(1).split()[:8]) if match else ""


def _is_question(text: str) -> bool:
    words = text.strip().split()
    return text.rstrip().endswith("?") or (bool(words) and words[0].lower() in _QUESTION_WORDS)


def _pick(options: tuple[str, ...], number: int, shift: int) -> str:
    return options[(number >> shift) % len(options)]


def _prose(messages: Sequence[Message], question: str, model: str, number: int) -> str:
    """A few sentences: restate the request, name its key points, offer a next step."""
    words = salient(question, 5)
    if not words:
        return "Hello! I'm the offline local model. Ask me something and I'll answer from it."
    sentence = first_sentence(question)
    if sentence[-1] not in ".!?…":
        sentence += "."
    openers = _QUESTION_OPENERS if _is_question(question) else _STATEMENT_OPENERS
    parts = [_pick(openers, number, 0).format(s=sentence)]
    if any(m.role == "assistant" for m in messages):
        parts.append("Building on what we discussed so far:")
    role = _system_role(messages)
    if role:
        parts.append(_pick(_ROLE_LINES, number, 8).format(role=role))
    elif role == "":
        parts.append("Following the instructions I was given, I'll keep this short.")
    if words:
        keys = join_words([f"**{word}**" for word in words[:3]])
        parts.append(_pick(_KEY_LINES, number, 16).format(keys=keys))
    parts.append(_pick(_CLOSERS, number, 24).format(first=words[0] if words else "this"))
    paragraph = " ".join(parts)
    if "fast" in model:
        return paragraph
    start = (number >> 32) % len(_BULLETS)
    bullets = [
        "- " + _BULLETS[(start + index) % len(_BULLETS)].format(key=word)
        for index, word in enumerate(words[:3])
    ]
    return paragraph + "\n\n" + "\n".join(bullets)


def _thinking(question: str, role: str | None) -> str:
    words = salient(question, 4)
    topic = join_words(words) if words else "a greeting"
    persona = f", staying in the role of {role}" if role else ""
    return (
        f"The user is asking about {topic}. I should restate the request, pick out the key "
        f"points and answer in a few sentences{persona}."
    )


def _from_tool_result(messages: Sequence[Message], result: Message, question: str) -> str:
    """An answer that reports what the tool returned and ties it back to the question."""
    name = result.name or _tool_name(messages, result.tool_call_id) or "the tool"
    text = f"I called `{name}` and it returned {_summary(result.content)}."
    words = salient(question, 3)
    if words:
        text += f" That should answer your question about {join_words(words)}."
    return text


def _tool_name(messages: Sequence[Message], call_id: str | None) -> str | None:
    for message in reversed(messages):
        for call in message.tool_calls:
            if call.id == call_id:
                return call.name
    return None


def _summary(content: str) -> str:
    try:
        value = json.loads(content)
    except ValueError:
        value = content
    if isinstance(value, dict):
        pairs = [f"`{k}` = {v}" for k, v in value.items() if not isinstance(v, dict | list)]
        return join_words(pairs[:4]) if pairs else f"an object with {len(value)} fields"
    if isinstance(value, list):
        first = f", starting with {_summary(_json(value[0]))}" if value else ""
        return f"{len(value)} results{first}"
    if isinstance(value, str):
        return f"“{first_sentence(value, 30)}”" if value.strip() else "nothing"
    return _json(value)
