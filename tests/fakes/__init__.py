"""Loopback fakes of the Anthropic and OpenAI HTTP APIs, for driving the official SDKs in tests.

    with FakeAnthropicServer(token_delay=0.02) as server:  # or FakeOpenAIServer()
        server.fail_next(Fault.rate_limited(retry_after=2))  # the next request gets a 429
        server.reply_next(Reply(text="Hi", tool_calls=(ToolCallScript("lookup", {"q": "x"}),)))
        client = AsyncAnthropic(api_key="k", base_url=server.base_url, max_retries=0)
        ...
        record = server.last_request  # method, path, headers, body, tokens_sent,
        record.wait_done()  # completed, client_disconnected

Faults (one per request, FIFO): `Fault.http(status)`, `rate_limited`, `server_error`,
`overloaded` (529), `unauthorized`, `timeout(hold)`, `slow_first_token(delay)`, `drop_after(k)`,
`stream_error(k, status)`. Without a scripted reply the answer is "Echo: <last user message>",
streamed one word (with its leading space) per chunk.
"""

from .anthropic_server import FakeAnthropicServer
from .openai_server import FakeOpenAIServer
from .script import Fault, Reply, ToolCallScript, tokens
from .server import RecordedRequest

__all__ = [
    "FakeAnthropicServer",
    "FakeOpenAIServer",
    "Fault",
    "RecordedRequest",
    "Reply",
    "ToolCallScript",
    "tokens",
]
