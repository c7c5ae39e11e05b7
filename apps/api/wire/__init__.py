"""The API's wire shapes ↔ our types: request bodies in, completions, stream chunks, embeddings,
outcomes and errors out. Plain functions, no I/O. Callers use `wire.X`; each X lives in one
module of this package:

- `errors`: ApiError (OpenAI's error shape) and the answer for each gateway or service error;
- `validation`: JSON bodies and query strings checked against the pydantic models (schemas.py);
- `requests`: OpenAI request bodies → the gateway's request types;
- `responses`: the gateway's replies → OpenAI's response shapes;
- `outcomes`: `/v1/outcomes` bodies in, outcomes out;
- `documents`: `/v1/documents` bodies in (multipart or JSON), documents and search hits out.
"""

from .documents import (
    Upload,
    document,
    document_body,
    document_deleted,
    document_id,
    document_list,
    document_upload,
    search_results,
)
from .errors import ApiError, application_error, gateway_error, retry_after
from .outcomes import outcome, outcome_id, outcome_list, outcome_price_micros
from .requests import chat_request, embed_inputs, unsupported
from .responses import Chunks, completion, embeddings, extension, models, tool_call, usage
from .validation import (
    chat_body,
    document_query,
    embedding_body,
    outcome_body,
    outcome_query,
    parse_json,
    search_body,
    validation_error,
)

__all__ = [
    "ApiError",
    "Chunks",
    "Upload",
    "application_error",
    "chat_body",
    "chat_request",
    "completion",
    "document",
    "document_body",
    "document_deleted",
    "document_id",
    "document_list",
    "document_query",
    "document_upload",
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
    "search_body",
    "search_results",
    "tool_call",
    "unsupported",
    "usage",
    "validation_error",
]
