"""RAG retrieval benchmarks (BEIR SciFact)."""
