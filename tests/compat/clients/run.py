"""The client libraries people use, run against the /v1 API: one scenario per call, in the
compat venv (.venv-compat, tests/compat/requirements.txt), never in the project's.

    python tests/compat/clients/run.py <scenario>

Reads AISAAS_BASE_URL (…/v1), AISAAS_API_KEY and AISAAS_NONCE (text that makes each prompt
unique, so no exact-cache hit hides the upstream) from the environment and prints one JSON
object: what the library returned, for tests/compat/test_clients.py to check next to what the
fake upstream received. Everything a library would fetch from the network is turned off
(LiteLLM's cost map, the Agents SDK's trace export); tiktoken reads the cache the project
seeds (TIKTOKEN_CACHE_DIR)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

BASE_URL = os.environ["AISAAS_BASE_URL"]
API_KEY = os.environ["AISAAS_API_KEY"]
NONCE = os.environ.get("AISAAS_NONCE", "")

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}


def said(text: str) -> str:
    return f"{text} [{NONCE}]"


# --- the openai SDK ----------------------------------------------------------------------------


def openai_sdk() -> dict[str, Any]:
    """responses.create with a function tool and its output chained by previous_response_id,
    responses.stream, completions.create and models.retrieve."""
    from openai import OpenAI

    client = OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0)
    tool: Any = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": WEATHER_SCHEMA,
        "strict": True,
    }
    first = client.responses.create(model="smart", input=said("Weather in Oslo?"), tools=[tool])
    [call] = [item for item in first.output if item.type == "function_call"]
    second = client.responses.create(
        model="smart",
        previous_response_id=first.id,
        tools=[tool],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}],
    )
    with client.responses.stream(model="fast", input=said("Stream, please")) as stream:
        kinds = [event.type for event in stream]
        streamed = stream.get_final_response()
    completion = client.completions.create(model="fast", prompt=said("Complete"), max_tokens=30)
    return {
        "call": {"name": call.name, "arguments": json.loads(call.arguments)},
        "second": second.output_text,
        "stream_kinds": kinds,
        "stream_text": streamed.output_text,
        "completion": completion.choices[0].text,
        "model": client.models.retrieve("fast").id,
    }


# --- the OpenAI Agents SDK ---------------------------------------------------------------------


def agents_sdk() -> dict[str, Any]:
    """An Agent with a function tool on the SDK's default model class (OpenAIResponsesModel,
    the Responses API), run to its final output, then the same run streamed."""
    from agents import Agent, Runner, function_tool, set_default_openai_client
    from openai import AsyncOpenAI

    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"Sunny in {city}"

    set_default_openai_client(AsyncOpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0))
    agent = Agent(
        name="Weather", instructions="Answer briefly.", tools=[get_weather], model="smart"
    )

    async def both() -> dict[str, Any]:  # one event loop for the SDK's one client
        result = await Runner.run(agent, said("Weather in Oslo?"))
        run = Runner.run_streamed(agent, said("Weather in Bergen?"))
        kinds = [event.type async for event in run.stream_events()]
        return {
            "final_output": str(result.final_output),
            "model_class": type(_model_of(agent)).__name__,
            "streamed_output": str(run.final_output),
            "stream_event_kinds": sorted(set(kinds)),
        }

    return {**asyncio.run(both()), "tool_calls": calls}


def _model_of(agent: Any) -> Any:
    """The model object the SDK picks for `agent` by default (its model provider's)."""
    from agents import RunConfig

    return RunConfig().model_provider.get_model(agent.model)


# --- LangChain ---------------------------------------------------------------------------------


def langchain() -> dict[str, Any]:
    """ChatOpenAI: invoke, tools bound and called, a stream, the Responses API; and
    OpenAIEmbeddings with its defaults (token arrays of cl100k_base ids)."""
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}"

    chat = ChatOpenAI(model="smart", base_url=BASE_URL, api_key=API_KEY, max_retries=0)
    answer = chat.invoke(said("Hello"))
    called = chat.bind_tools([get_weather]).invoke(said("Weather in Oslo?"))
    pieces = [chunk.content for chunk in chat.stream(said("Stream it"))]
    responses = ChatOpenAI(
        model="smart", base_url=BASE_URL, api_key=API_KEY, max_retries=0, use_responses_api=True
    ).invoke(said("Through responses"))
    embeddings = OpenAIEmbeddings(model="embed", base_url=BASE_URL, api_key=API_KEY)
    documents = embeddings.embed_documents(["tenant schemas", "isolate data"])
    query = embeddings.embed_query("where is my data")
    return {
        "answer": answer.content,
        "tool_calls": [{"name": c["name"], "args": c["args"]} for c in called.tool_calls],
        "stream": [p for p in pieces if isinstance(p, str)],
        "responses_text": responses.text if hasattr(responses, "text") else str(responses.content),
        "embedding_sizes": [len(v) for v in documents] + [len(query)],
    }


# --- LiteLLM's SDK -----------------------------------------------------------------------------


def litellm_sdk() -> dict[str, Any]:
    """completion (chat), responses and text_completion against our base URL as an OpenAI
    deployment."""
    import litellm

    common: dict[str, Any] = {"api_base": BASE_URL, "api_key": API_KEY, "num_retries": 0}
    chat = litellm.completion(
        model="openai/fast", messages=[{"role": "user", "content": said("Hi")}], **common
    )
    streamed = litellm.completion(
        model="openai/fast",
        messages=[{"role": "user", "content": said("Stream")}],
        stream=True,
        **common,
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices]
    response = litellm.responses(model="openai/fast", input=said("Respond"), **common)
    text = litellm.text_completion(
        model="text-completion-openai/fast", prompt=said("Complete"), max_tokens=20, **common
    )
    return {
        "chat": chat.choices[0].message.content,
        "stream": "".join(pieces),
        "responses": response.output[0].content[0].text,
        "text_completion": text.choices[0].text,
    }


# --- quota errors: a typed error from every SDK, none retried ----------------------------------


def _failure(call: Callable[[], Any]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return {
            "type": f"{type(exc).__module__}.{type(exc).__name__}",
            "bases": [f"{b.__module__}.{b.__name__}" for b in type(exc).__mro__],
            "status": getattr(exc, "status_code", None),
            "seconds": round(time.monotonic() - started, 2),
        }
    return {"type": None}


def quota_errors() -> dict[str, Any]:
    """The same exhausted quota through each library, with its default retry settings."""
    import litellm
    from agents import Agent, Runner, set_default_openai_client
    from langchain_openai import ChatOpenAI
    from openai import AsyncOpenAI, OpenAI

    messages: Any = [{"role": "user", "content": said("Hi")}]
    client = OpenAI(base_url=BASE_URL, api_key=API_KEY)  # the SDK's default: 2 retries
    set_default_openai_client(AsyncOpenAI(base_url=BASE_URL, api_key=API_KEY))
    agent = Agent(name="Quota", model="fast")
    return {
        "openai": _failure(lambda: client.chat.completions.create(model="fast", messages=messages)),
        "openai_responses": _failure(lambda: client.responses.create(model="fast", input="Hi")),
        "agents": _failure(lambda: Runner.run_sync(agent, said("Hi"))),
        "langchain": _failure(
            lambda: ChatOpenAI(model="fast", base_url=BASE_URL, api_key=API_KEY).invoke("Hi")
        ),
        "litellm": _failure(
            lambda: litellm.completion(
                model="openai/fast", messages=messages, api_base=BASE_URL, api_key=API_KEY
            )
        ),
    }


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    "openai_sdk": openai_sdk,
    "agents_sdk": agents_sdk,
    "langchain": langchain,
    "litellm_sdk": litellm_sdk,
    "quota_errors": quota_errors,
}


if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]]()))
