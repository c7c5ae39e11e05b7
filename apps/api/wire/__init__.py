"""The API's wire shapes ↔ our types: request bodies in, completions, stream chunks, embeddings,
outcomes and errors out. Plain functions, no I/O. Callers use `wire.X`; each X lives in one
module of this package:

- `errors`: ApiError (OpenAI's error shape) and the answer for each gateway or service error;
- `validation`: JSON bodies and query strings checked against the pydantic models (schemas.py);
- `requests`: OpenAI request bodies → the gateway's request types;
- `responses`: the gateway's replies → OpenAI's response shapes;
- `outcomes`: `/v1/outcomes` bodies in, outcomes out.
"""

from .errors import ApiError, application_error, gateway_error, retry_after
from .outcomes import outcome, outcome_id, outcome_list, outcome_price_micros
from .requests import chat_request, embed_inputs, unsupported
from .responses import Chunks, completion, embeddings, extension, models, tool_call, usage
from .validation import (
    chat_body,
    embedding_body,
    outcome_body,
    outcome_query,
    parse_json,
    validation_error,
)

__all__ = [
    "ApiError",
    "Chunks",
    "application_error",
    "chat_body",
    "chat_request",
    "completion",
    "embed_inputs",
    "embedding_body",
    "embeddings",
    "extension",
    "gateway_error",
    "models",
    "outcome",
    "outcome_body",
    "outcome_id",
    "outcome_list",
    "outcome_price_micros",
    "outcome_query",
    "parse_json",
    "retry_after",
    "tool_call",
    "unsupported",
    "usage",
    "validation_error",
]
