"""LiteLLM's proxy vs our OpenAI-compatible /v1/chat/completions, over HTTP (issue #4).

`python -m benchmarks.http_gateway [--quick] [--json]`; see docs/benchmarks.md.
"""
