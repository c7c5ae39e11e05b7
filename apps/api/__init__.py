"""The /v1 HTTP API: OpenAI-compatible (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`)
and outcome billing (`/v1/outcomes`)."""
