"""The API's wire shapes ↔ our types: request bodies in, completions, stream chunks, embeddings,
outcomes and errors out. Plain functions, no I/O. Callers use `wire.X`; each X lives in one
module of this package:

- `errors`: ApiError (OpenAI's error shape) and the answer for each gateway or service error;
- `validation`: JSON bodies and query strings checked against the pydantic models (schemas.py);
- `requests`: OpenAI request bodies → the gateway's request types;
- `responses`: the gateway's replies → OpenAI's response shapes;
- `completions`: legacy `/v1/completions` bodies in (as chat bodies), `text_completion` out;
- `responses_in` / `responses_out`: `/v1/responses` bodies in (as chat bodies), responses and
  their typed stream events out;
- `outcomes`: `/v1/outcomes` bodies in, outcomes out;
- `documents`: `/v1/documents` bodies in (multipart or JSON), documents and search hits out.
"""

from .completions import TextChunks, completion_as_chat, text_completion
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
from .requests import (
    arguments_object,
    chat_request,
    embed_dimensions,
    embed_inputs,
    unsupported,
    uses_legacy_functions,
)
from .responses import (
    Chunks,
    argument_pieces,
    completion,
    embeddings,
    extension,
    finish_reason,
    models,
    tool_call,
    usage,
)
from .responses_in import as_chat as responses_as_chat
from .responses_in import input_items as response_input_items
from .responses_in import unsupported as responses_unsupported
from .responses_out import (
    ResponseEvents,
    Skeleton,
    conversation_items,
    new_id,
    output_items,
    status_of,
)
from .validation import (
    chat_body,
    completion_body,
    document_query,
    embedding_body,
    outcome_body,
    outcome_query,
    parse_json,
    response_body,
    search_body,
    validation_error,
)

__all__ = [
    "ApiError",
    "Chunks",
    "ResponseEvents",
    "Skeleton",
    "TextChunks",
    "Upload",
    "application_error",
    "argument_pieces",
    "arguments_object",
    "chat_body",
    "chat_request",
    "completion",
    "completion_as_chat",
    "completion_body",
    "conversation_items",
    "document",
    "document_body",
    "document_deleted",
    "document_id",
    "document_list",
    "document_query",
    "document_upload",
    "embed_dimensions",
    "embed_inputs",
    "embedding_body",
    "embeddings",
    "extension",
    "finish_reason",
    "gateway_error",
    "models",
    "new_id",
    "outcome",
    "outcome_body",
    "outcome_id",
    "outcome_list",
    "outcome_price_micros",
    "outcome_query",
    "output_items",
    "parse_json",
    "response_body",
    "response_input_items",
    "responses_as_chat",
    "responses_unsupported",
    "retry_after",
    "search_body",
    "search_results",
    "status_of",
    "text_completion",
    "tool_call",
    "unsupported",
    "usage",
    "uses_legacy_functions",
    "validation_error",
]
