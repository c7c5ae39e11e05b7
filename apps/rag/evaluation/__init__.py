"""Retrieval evals: does `search_chunks` find the documents a question needs?

`metrics` is plain Python (the SciFact benchmark imports it before Django is set up), `qrels`
reads the JSONL question files, `service` runs them against a workspace (`retrieval_eval`).
"""
