"""Grounded answers of the offline model: when the system prompt carries a `<sources>` block
(prompts/chat.grounded), the model answers extractively — the source sentences that share the
most words with the question, each followed by its citation — or says it found nothing.

This keeps `make run` without provider keys honest about RAG: what the answer says comes from
the workspace's documents, and the citations point at the passages that said it. Sentences that
address the reader as a model ("ignore previous instructions…") are never quoted: a document's
text is data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ...types import Message
from .words import STOPWORDS

_SOURCES = re.compile(r"<sources>\n(.*?)\n</sources>", re.DOTALL)
_SOURCE = re.compile(r'<source id="(\d+)"([^>]*)>\n(.*?)\n</source>', re.DOTALL)
_TITLE = re.compile(r'title="([^"]*)"')
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[^\W_][\w'’-]*")
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget)\b.{0,40}\b(instructions?|prompt|rules)\b|\byou are now\b",
    re.IGNORECASE,
)
NOT_FOUND = (
    "I could not find that in this workspace's documents. Try other words, or add a document "
    "that covers it on the Documents page."
)
MAX_SENTENCES = 2


@dataclass(frozen=True, slots=True)
class Source:
    n: int
    title: str
    text: str


def sources_in(messages: Sequence[Message]) -> list[Source] | None:
    """The sources of the system prompt; None when it has no `<sources>` block."""
    system = "\n".join(m.content for m in messages if m.role == "system")
    block = _SOURCES.search(system)
    if block is None:
        return None
    found = []
    for match in _SOURCE.finditer(block.group(1)):
        title = _TITLE.search(match.group(2))
        found.append(Source(int(match.group(1)), title.group(1) if title else "", match.group(3)))
    return found


def grounded_answer(sources: Sequence[Source], question: str) -> str:
    """The best-matching source sentences with their citations, or NOT_FOUND."""
    wanted = _terms(question)
    scored: list[tuple[int, int, int, str]] = []  # (-overlap, source n, position, sentence)
    for source in sources:
        for position, sentence in enumerate(_SENTENCE.split(source.text)):
            sentence = " ".join(sentence.split()).lstrip("#-*> ").strip()
            if len(sentence) < 12 or _INSTRUCTION.search(sentence):
                continue
            overlap = len(wanted & _terms(sentence))
            if overlap:
                scored.append((-overlap, source.n, position, sentence))
    if not scored:
        return NOT_FOUND
    scored.sort()
    best = scored[:MAX_SENTENCES]
    best_overlap = -best[0][0]
    lines = [
        f"{_ended(sentence)} [{n}]"
        for overlap, n, _, sentence in best
        if -overlap * 2 >= best_overlap  # a second sentence only if it is nearly as good
    ]
    title = next((s.title for s in sources if s.n == best[0][1] and s.title), "")
    opener = f"According to *{title}*: " if title else "According to the documents: "
    return opener + " ".join(lines)


def _terms(text: str) -> set[str]:
    words = (w.casefold().strip("'’-") for w in _WORD.findall(text))
    return {_stem(w) for w in words if len(w) > 2 and w not in STOPWORDS}


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "s", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _ended(sentence: str) -> str:
    return sentence if sentence[-1] in ".!?…" else sentence + "."
