"""The OpenAI-compatible HTTP API (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`)."""
