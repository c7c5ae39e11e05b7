"""Safety pre-check: advisory heuristics for prompt injection.

Findings are recorded on the trace so support can see them; they never block a call here.
Blocking policies and abuse detection arrive with the safety issue.
"""

from __future__ import annotations

import re

from .types import Message

_INJECTION = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"ignore (all |any )?(the )?(previous|prior|above) (instructions|prompts?)",
        r"disregard (the |your )?(system prompt|instructions)",
        r"you are now (in )?(developer|dan|jailbreak) mode",
        r"reveal (your|the) (system prompt|hidden instructions)",
        r"</?(system|assistant)>",
    )
]


def injection_signals(messages: tuple[Message, ...]) -> list[str]:
    """Patterns found in user and tool messages (tool output is data, never instructions)."""
    found: list[str] = []
    for message in messages:
        if message.role not in ("user", "tool"):
            continue
        found += [p.pattern for p in _INJECTION if p.search(message.content)]
    return found
