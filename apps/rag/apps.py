"""RAG. Installed in TENANT_APPS (one schema per workspace).

Collections, documents, their bytes and chunks with vectors: the workspace's own knowledge,
isolated by construction; each schema has its own HNSW indexes, so retrieval never
post-filters across tenants. Sits between evals and agents in the layers
(docs/architecture.md, "Layers and ports"): it calls the gateway's `embed` alias through
`apps.llm.services`.
"""

from django.apps import AppConfig


class RagConfig(AppConfig):
    name = "apps.rag"
    verbose_name = "RAG"
