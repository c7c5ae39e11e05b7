"""RAG over workspace documents: parsing, structure-aware chunking, embeddings through the
gateway, hybrid retrieval, citations (docs/architecture.md)."""
