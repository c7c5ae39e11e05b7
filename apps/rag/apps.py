"""RAG. Installed in TENANT_APPS (one schema per workspace).

Documents, chunks and their embeddings, with a pgvector HNSW index per schema, so retrieval
never post-filters across tenants.
"""

from django.apps import AppConfig


class RagConfig(AppConfig):
    name = "apps.rag"
    verbose_name = "RAG"
