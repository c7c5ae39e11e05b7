"""Grounding: the passages of a workspace's documents that an answer may cite.

Chat (and agents, through their `search_documents` tool) ask `passages_for` with the user's
question; the passages are numbered from 1 and given to the model inside a `<sources>` block
(`sources_block`), and the model cites them as [1], [2]… An answer's citations are the numbers
it used (`cited_numbers`); each links to its chunk on the document's page (`Passage.url`).

"Nothing relevant" is decided here, not left to the model: a passage is offered only when its
cosine similarity to the question reaches settings.RAG_CHAT_MIN_SIMILARITY (BM25 scores have no
absolute scale; cosine has). When the embedding call fails (e.g. out of credit) the lexical leg
alone decides: a passage is offered when it shares terms with the question.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.urls import reverse
from django_tenants.utils import schema_context

from apps.llm.services import Actor
from apps.workspaces.models import User, Workspace

from .models import Document
from .retrieval import Hit, search_chunks

# [1], [2] and [1, 3] as the model writes them.
_CITATION = re.compile(r"\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]")
PASSAGE_CHARS = 2_000  # a chunk is ≤ 256 tokens; this only guards odd data


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk as an answer cites it."""

    n: int
    document_id: int
    chunk_id: int
    ordinal: int
    title: str
    heading: str  # the heading path, " › "-joined
    page: int | None
    text: str
    score: float

    @property
    def url(self) -> str:
        return chunk_url(self.document_id, self.ordinal)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "url": self.url}


def chunk_url(document_id: int, ordinal: int) -> str:
    """The document's page, opened at the chunk (the view finds the chunk's page)."""
    path = reverse("rag_document", args=[document_id])
    return f"{path}?chunk={ordinal}#chunk-{ordinal}"


def has_documents(workspace: Workspace) -> bool:
    """Whether any document of `workspace` is ready to be searched."""
    with schema_context(workspace.schema_name):
        return Document.objects.filter(status=Document.Status.READY).exists()


def passages_for(
    *,
    workspace: Workspace,
    question: str,
    user: User | None = None,
    actor: Actor | None = None,
    k: int | None = None,
    collection_ids: Sequence[int] | None = None,
) -> list[Passage]:
    """The passages relevant to `question`, best first, numbered from 1; [] when none is."""
    hits = search_chunks(
        workspace=workspace,
        query=question,
        k=k or settings.RAG_CHAT_PASSAGES,
        collection_ids=collection_ids,
        actor=actor,
        user=user,
    )
    relevant = _relevant(hits)
    return [
        Passage(
            n=n,
            document_id=hit.document_id,
            chunk_id=hit.chunk_id,
            ordinal=hit.ordinal,
            title=hit.title,
            heading=" › ".join(hit.heading_path),
            page=hit.page,
            text=hit.text[:PASSAGE_CHARS],
            score=round(hit.score, 4),
        )
        for n, hit in enumerate(relevant, start=1)
    ]


def _relevant(hits: Sequence[Hit]) -> list[Hit]:
    if any(hit.dense_score is not None for hit in hits):
        floor = settings.RAG_CHAT_MIN_SIMILARITY
        return [h for h in hits if h.dense_score is not None and h.dense_score >= floor]
    # The dense leg was skipped (the embedding call failed): BM25 matched terms, keep those.
    return [h for h in hits if h.lexical_score]


def sources_block(passages: Sequence[Passage]) -> str:
    """The passages as the grounded prompt shows them; document text is data, so each passage
    is fenced and attribute values cannot close their tag."""
    if not passages:
        return (
            "<sources>\n(no passage of the workspace's documents matches this question)\n</sources>"
        )
    parts = ["<sources>"]
    for p in passages:
        attributes = [f'id="{p.n}"', f'title="{_attribute(p.title)}"']
        if p.heading:
            attributes.append(f'section="{_attribute(p.heading)}"')
        if p.page is not None:
            attributes.append(f'page="{p.page}"')
        body = p.text.replace("</source>", "</ source>").replace("</sources>", "</ sources>")
        parts.append(f"<source {' '.join(attributes)}>\n{body}\n</source>")
    parts.append("</sources>")
    return "\n".join(parts)


def _attribute(value: str) -> str:
    return " ".join(value.replace('"', "'").replace("<", "‹").replace(">", "›").split())


def cited_numbers(text: str, *, limit: int) -> list[int]:
    """The passage numbers `text` cites, in order of first use, within 1..limit."""
    seen: list[int] = []
    for match in _CITATION.finditer(text):
        for part in match.group(1).split(","):
            n = int(part)
            if 1 <= n <= limit and n not in seen:
                seen.append(n)
    return seen


def cited(passages: Iterable[Passage], text: str) -> list[Passage]:
    """The passages `text` cites, in order of first use."""
    by_n = {p.n: p for p in passages}
    return [by_n[n] for n in cited_numbers(text, limit=max(by_n, default=0))]
