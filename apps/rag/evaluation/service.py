"""`retrieval_eval`: a question file run through `search_chunks` against a workspace's
documents, scored at the document level (`manage.py rag eval`; README, "Retrieval evals").

Each question is one `search_chunks` call as the product makes it (the query embedded through
the gateway, metered as "rag.search"), asking for SEARCH_K chunks; its documents rank where
their best chunk does. recall@k and MRR@k read the first k documents, nDCG@10 the first ten.
Latency is that call end to end, after one unmeasured warm-up search per mode.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django_tenants.utils import schema_context

from apps.common.errors import ApplicationError
from apps.llm.services import Actor
from apps.workspaces.models import Membership, Role, User, Workspace
from apps.workspaces.services import system_workspace_get_or_create

from ..models import Chunk, Document
from ..retrieval import MAX_K, MODES, Mode, search_chunks
from ..services import document_add, document_index
from .metrics import documents, ndcg_at_10, recall_at, reciprocal_rank
from .qrels import EvalDataError, EvalQuery

EVAL_WORKSPACE = "rag-evals"  # the system workspace `--load` runs in unless told otherwise
EVAL_ACTOR = Actor("system", "rag.eval")
SEARCH_K = MAX_K  # chunks per search, the most a caller can ask for
# What `--load` reads from a folder: the formats the parser takes, by extension.
DOCUMENT_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}


@dataclass(frozen=True, slots=True)
class QueryResult:
    query: EvalQuery
    found: list[str]  # documents, best first: a relevant one by its name in the qrels
    recall: float  # recall@k
    reciprocal_rank: float  # within the first k
    ndcg: float  # nDCG@10
    ms: float
    missing: list[str]  # relevant documents not among the first k


@dataclass(frozen=True, slots=True)
class ModeReport:
    mode: Mode
    results: list[QueryResult]
    recall: float
    mrr: float
    ndcg: float
    p50_ms: float
    p95_ms: float

    @property
    def failures(self) -> list[QueryResult]:
        return [r for r in self.results if r.missing]


@dataclass(frozen=True, slots=True)
class EvalReport:
    workspace: str
    k: int
    documents: int  # ready documents searched
    chunks: int
    loaded: list[str] = field(default_factory=list)  # files added for this run only
    modes: list[ModeReport] = field(default_factory=list)

    def misses(
        self, *, min_ndcg: float | None = None, min_recall: float | None = None
    ) -> list[str]:
        """Each mode's figure below a threshold, said in a line; empty when all are met."""
        out = []
        for m in self.modes:
            if min_ndcg is not None and m.ndcg < min_ndcg:
                out.append(f"{m.mode}: nDCG@10 {m.ndcg:.3f} is below {min_ndcg:g}")
            if min_recall is not None and m.recall < min_recall:
                out.append(f"{m.mode}: recall@{self.k} {m.recall:.3f} is below {min_recall:g}")
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "k": self.k,
            "documents": self.documents,
            "chunks": self.chunks,
            "loaded": self.loaded,
            "modes": {
                m.mode: {
                    "queries": len(m.results),
                    f"recall@{self.k}": round(m.recall, 4),
                    f"mrr@{self.k}": round(m.mrr, 4),
                    "ndcg@10": round(m.ndcg, 4),
                    "p50_ms": round(m.p50_ms, 1),
                    "p95_ms": round(m.p95_ms, 1),
                    "failures": [
                        {
                            "line": r.query.line,
                            "id": r.query.id,
                            "query": r.query.query,
                            "expected": list(r.query.relevant),
                            "missing": r.missing,
                            "found": r.found[: self.k],
                        }
                        for r in m.failures
                    ],
                }
                for m in self.modes
            },
        }


def rag_eval_workspace() -> Workspace:
    """The system workspace evals load their documents into (created on first use)."""
    return system_workspace_get_or_create(slug=EVAL_WORKSPACE, name="RAG evals (system)")


def retrieval_eval(
    *,
    workspace: Workspace,
    queries: Sequence[EvalQuery],
    k: int = 10,
    modes: Sequence[Mode] = ("hybrid",),
    load: Path | None = None,
) -> EvalReport:
    """Score `queries` against the workspace's ready documents, per mode.

    With `load`, the folder's documents are first added and indexed in this process
    (`document_add`, then `document_index`: the pipeline without the Celery hop) inside a
    transaction that is rolled back at the end, so the workspace keeps nothing, no indexing
    task is queued and every run starts from the same state."""
    if not 1 <= k <= SEARCH_K:
        raise EvalDataError(f"k must be between 1 and {SEARCH_K}.", field="k")
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise EvalDataError(f"Modes are {', '.join(MODES)}.", field="mode")
    with schema_context(workspace.schema_name):
        if load is None:
            return _evaluate(workspace, queries, k=k, modes=modes, loaded=[])
        with transaction.atomic():
            loaded = eval_documents_load(workspace=workspace, directory=load)
            report = _evaluate(workspace, queries, k=k, modes=modes, loaded=loaded)
            transaction.set_rollback(True)
        return report


def eval_documents_load(*, workspace: Workspace, directory: Path) -> list[str]:
    """Add and index every document of `directory` (not its subfolders) in the current schema,
    by the workspace's owner; returns the file names. Call it in the workspace's schema."""
    if not directory.is_dir():
        raise EvalDataError(f"No such folder: {directory}.", field="load")
    files = sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in DOCUMENT_TYPES
    )
    if not files:
        kinds = ", ".join(DOCUMENT_TYPES)
        raise EvalDataError(f"{directory} holds no document ({kinds}).", field="load")
    user = _owner(workspace)
    for path in files:
        try:
            document = document_add(
                user=user,
                data=path.read_bytes(),
                filename=path.name,
                mime=DOCUMENT_TYPES[path.suffix.lower()],
            )
        except ApplicationError as exc:
            raise EvalDataError(f"{path.name}: {exc.message}", field="load") from exc
        result = document_index(workspace=workspace, document_id=document.pk)
        if result.status != Document.Status.READY:
            document.refresh_from_db()
            raise EvalDataError(f"{path.name} was not indexed ({result.status}): {document.error}")
    return [p.name for p in files]


def _owner(workspace: Workspace) -> User:
    if workspace.created_by is not None:
        return workspace.created_by
    membership = (
        Membership.objects.filter(workspace=workspace, role=Role.OWNER)
        .select_related("user")
        .order_by("pk")
        .first()
    )
    if membership is None:
        raise EvalDataError(f"Workspace {workspace.slug} has no owner to add documents as.")
    return membership.user


@dataclass(frozen=True, slots=True)
class _Corpus:
    """The workspace's ready documents by the names qrels use: title and file name."""

    titles: dict[int, str]
    names: dict[int, tuple[str, str]]  # casefolded title and file name
    by_name: frozenset[str]

    @classmethod
    def load(cls) -> _Corpus:
        rows = Document.objects.filter(status=Document.Status.READY).values_list(
            "pk", "title", "filename"
        )
        names = {pk: (_key(title), _key(filename)) for pk, title, filename in rows}
        return cls(
            titles={pk: title for pk, title, _ in rows},
            names=names,
            by_name=frozenset(n for pair in names.values() for n in pair if n),
        )

    def labels(self, query: EvalQuery, hits: dict[int, str]) -> dict[int, str]:
        """Document id → its name in this query's qrels when it is relevant, else its title."""
        wanted = {_key(name): name for name in query.relevant}
        out = {}
        for pk, title in hits.items():
            match = next((wanted[n] for n in self.names.get(pk, ()) if n in wanted), None)
            out[pk] = match or self.titles.get(pk, title)
        return out


def _key(name: str) -> str:
    return name.strip().casefold()


def _evaluate(
    workspace: Workspace,
    queries: Sequence[EvalQuery],
    *,
    k: int,
    modes: Sequence[Mode],
    loaded: list[str],
) -> EvalReport:
    corpus = _Corpus.load()
    _check_names(queries, corpus, workspace)
    reports = [_run_mode(workspace, queries, corpus, mode=mode, k=k) for mode in modes]
    return EvalReport(
        workspace=workspace.slug,
        k=k,
        documents=len(corpus.titles),
        chunks=Chunk.objects.filter(document__status=Document.Status.READY).count(),
        loaded=loaded,
        modes=reports,
    )


def _check_names(queries: Sequence[EvalQuery], corpus: _Corpus, workspace: Workspace) -> None:
    """A relevant name no ready document has would make its question fail for ever: refuse."""
    unknown = [
        f"line {q.line}: “{name}”"
        for q in queries
        for name in q.relevant
        if _key(name) not in corpus.by_name
    ]
    if unknown:
        shown = "; ".join(unknown[:5]) + (
            f"; and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        raise EvalDataError(
            f"No ready document of workspace {workspace.slug} has the title or file name of "
            f"{len(unknown)} relevant entr{'y' if len(unknown) == 1 else 'ies'}: {shown}."
        )


def _run_mode(
    workspace: Workspace, queries: Sequence[EvalQuery], corpus: _Corpus, *, mode: Mode, k: int
) -> ModeReport:
    # The first search of a process loads the embedding model: keep it out of the latencies.
    search_chunks(
        workspace=workspace, query=queries[0].query, k=SEARCH_K, mode=mode, actor=EVAL_ACTOR
    )
    results = []
    for query in queries:
        started = time.perf_counter()
        hits = search_chunks(
            workspace=workspace, query=query.query, k=SEARCH_K, mode=mode, actor=EVAL_ACTOR
        )
        ms = (time.perf_counter() - started) * 1000
        labels = corpus.labels(query, {h.document_id: h.title for h in hits})
        found = documents([h.document_id for h in hits], labels, depth=None)
        top = found[:k]
        results.append(
            QueryResult(
                query=query,
                found=found,
                recall=recall_at(found, query.relevant, k),
                reciprocal_rank=reciprocal_rank(top, query.relevant),
                ndcg=ndcg_at_10(found, query.relevant),
                ms=ms,
                missing=[name for name in query.relevant if name not in top],
            )
        )
    times = [r.ms for r in results]
    return ModeReport(
        mode=mode,
        results=results,
        recall=statistics.fmean(r.recall for r in results),
        mrr=statistics.fmean(r.reciprocal_rank for r in results),
        ndcg=statistics.fmean(r.ndcg for r in results),
        p50_ms=_percentile(times, 50),
        p95_ms=_percentile(times, 95),
    )


def _percentile(values: list[float], q: int) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]
