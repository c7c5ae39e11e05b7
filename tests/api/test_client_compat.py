"""What the clients people already use need from /v1 (issue 21), through the official `openai`
SDK (and bare HTTP where a browser or an SDK sends what the SDK here would not): model retrieval,
today's parameters, rate-limit headers, CORS, legacy completions, token-array embeddings,
`dimensions`, streamed tool-call arguments, model synonyms, quota errors and the Responses API —
each feature that reads workspace data with its outsider test (another workspace's key: 404).

The client libraries themselves (the Agents SDK, LangChain, LiteLLM) run in tests/compat, in a
venv of their own (`make compat`)."""

from __future__ import annotations

import io
import json
import math
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, cast

import httpx2 as httpx
import openai
import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.agents.models import Agent, Task, ToolAudit
from apps.llm.core.tokens import encoder
from apps.llm.models import ModelSynonym, StoredResponse
from apps.workspaces.api_keys import api_key_origin_known, origins_normalised
from apps.workspaces.models import User
from tests.asgi_server import AsgiServer, run_committed
from tests.fakes import FakeOpenAIServer, Reply, ToolCallScript

from .conftest import Key, MakeKey

pytestmark = pytest.mark.django_db

Client = Callable[[Key], openai.OpenAI]
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def unique(text: str = "Say hello.") -> str:
    """Unique text: an exact-cache hit from an earlier run would never reach the upstream."""
    return f"{text} [{uuid.uuid4().hex[:10]}]"


def ask(text: str = "Say hello.") -> Any:
    return [{"role": "user", "content": unique(text)}]


@pytest.fixture
def synonym() -> Iterator[None]:
    """acme calls `fast` also `gpt-4o-mini`; globex has no synonyms."""

    def create() -> None:
        with schema_context("acme"):
            ModelSynonym.objects.update_or_create(name="gpt-4o-mini", defaults={"alias": "fast"})

    run_committed(create)
    yield

    def remove() -> None:
        with schema_context("acme"):
            ModelSynonym.objects.all().delete()

    run_committed(remove)


@pytest.fixture
def forget_responses() -> Iterator[None]:
    yield

    def remove() -> None:
        for slug in ("acme", "globex"):
            with schema_context(slug):
                StoredResponse.objects.all().delete()

    run_committed(remove)


# --- 3. GET /v1/models/{id} ------------------------------------------------------------------


@pytest.mark.usefixtures("synonym")
def test_a_model_is_retrieved_by_name_and_another_workspaces_synonym_is_404(
    make_key: MakeKey, client_for: Client
) -> None:
    acme, globex = client_for(make_key("acme")), client_for(make_key("globex"))

    fast = acme.models.retrieve("fast")
    synonym = acme.models.retrieve("gpt-4o-mini")
    with pytest.raises(openai.NotFoundError) as missing:
        acme.models.retrieve("no-such-model")
    with pytest.raises(openai.NotFoundError) as foreign:
        globex.models.retrieve("gpt-4o-mini")

    assert (fast.id, fast.object, fast.owned_by) == ("fast", "model", "aisaas")
    assert synonym.id == "gpt-4o-mini"
    assert "gpt-4o-mini" in {m.id for m in acme.models.list()}
    assert "gpt-4o-mini" not in {m.id for m in globex.models.list()}
    assert missing.value.code == foreign.value.code == "model_not_found"


def test_a_model_the_keys_scopes_do_not_cover_is_404(make_key: MakeKey, client_for: Client) -> None:
    client = client_for(make_key(scopes=["embeddings"]))
    assert client.models.retrieve("embed").id == "embed"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("fast")


# --- 5. today's parameters -------------------------------------------------------------------


def test_todays_parameters_are_accepted_and_a_typo_still_refused(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    client = client_for(make_key())

    reply = client.chat.completions.create(
        model="fast",
        messages=ask(),
        verbosity="low",
        prompt_cache_key="conversation-42",
        safety_identifier="user-hash-1",
        prediction={"type": "content", "content": "Hello"},
        web_search_options={},
        reasoning_effort="low",
        store=False,
        max_completion_tokens=50,
    )
    with pytest.raises(openai.BadRequestError) as typo:
        client.chat.completions.create(model="fast", messages=ask(), extra_body={"temprature": 1})

    assert reply.choices[0].message.content
    sent = upstream.last_request.body
    assert not {"verbosity", "prompt_cache_key", "safety_identifier", "prediction"} & set(sent)
    assert typo.value.code == "unknown_parameter"
    assert typo.value.param == "temprature"


def test_legacy_functions_map_onto_tools_and_answer_with_function_call(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    client = client_for(make_key())
    call = ToolCallScript(name="get_weather", arguments={"city": "Oslo"}, id="call_1")
    upstream.reply_next(Reply(text="", tool_calls=(call,), finish="tool_calls"))
    functions: Any = [{"name": "get_weather", "parameters": WEATHER["parameters"]}]

    reply = client.chat.completions.create(
        model="smart", messages=ask("Weather?"), functions=functions, function_call="auto"
    )
    sent = upstream.last_request.body
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "function_call"
    assert message.function_call is not None
    assert message.tool_calls is None
    assert (message.function_call.name, json.loads(message.function_call.arguments)) == (
        "get_weather",
        {"city": "Oslo"},
    )
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == "auto"

    # the legacy history: the assistant's function_call, then the function's result
    client.chat.completions.create(
        model="smart",
        functions=functions,
        messages=[
            *ask("Weather?"),
            {
                "role": "assistant",
                "content": None,
                "function_call": cast(Any, message.function_call.model_dump()),
            },
            {"role": "function", "name": "get_weather", "content": "Sunny"},
        ],
    )
    history = upstream.last_request.body["messages"]
    assert history[-1]["role"] == "tool"
    assert history[-1]["tool_call_id"] == history[-2]["tool_calls"][0]["id"]

    with pytest.raises(openai.BadRequestError) as both:
        client.chat.completions.create(
            model="smart",
            messages=ask(),
            functions=functions,
            tools=[{"type": "function", "function": functions[0]}],
        )
    assert both.value.param == "functions"


# --- 7. rate-limit headers -------------------------------------------------------------------


def test_every_answer_carries_the_rate_limit_headers(
    make_key: MakeKey, client_for: Client, http: httpx.Client
) -> None:
    key = make_key(rate_limit_per_minute=50)
    client = client_for(key)

    chat = client.chat.completions.with_raw_response.create(model="fast", messages=ask())
    models = http.get("/models", headers={"authorization": f"Bearer {key.secret}"})
    refused = http.post(
        "/chat/completions",
        headers={"authorization": f"Bearer {key.secret}"},
        json={"model": "fast", "messages": [{"role": "user", "content": "x"}], "n": 2},
    )

    for headers in (chat.headers, models.headers, refused.headers):
        assert headers["x-ratelimit-limit-requests"] == "50"
        assert 0 <= int(headers["x-ratelimit-remaining-requests"]) < 50
        assert headers["x-ratelimit-reset-requests"].endswith("s")
        assert int(headers["x-ratelimit-limit-tokens"]) > 0
        assert int(headers["x-ratelimit-remaining-tokens"]) <= int(
            headers["x-ratelimit-limit-tokens"]
        )
        assert headers["x-ratelimit-reset-tokens"].endswith("s")
    assert int(models.headers["x-ratelimit-remaining-requests"]) < int(
        chat.headers["x-ratelimit-remaining-requests"]
    )


# --- 6. CORS ---------------------------------------------------------------------------------

ORIGIN = "https://app.example.test"


def test_a_preflight_is_answered_for_an_origin_a_key_allows(
    make_key: MakeKey, http: httpx.Client
) -> None:
    key = make_key(allowed_origins=[ORIGIN])
    preflight = {
        "origin": ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, x-stainless-os",
    }

    allowed = http.options("/chat/completions", headers=preflight)
    stranger = http.options(
        "/chat/completions", headers={**preflight, "origin": "https://evil.test"}
    )
    wrong_method = http.options(
        "/chat/completions", headers={**preflight, "access-control-request-method": "DELETE"}
    )
    plain = http.options("/responses/resp_x")
    unknown = http.options("/nothing-here", headers=preflight)

    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert allowed.headers["access-control-allow-methods"] == "POST"
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    assert "x-ratelimit-remaining-requests" in allowed.headers["access-control-expose-headers"]
    assert stranger.status_code == wrong_method.status_code == 403
    assert "access-control-allow-origin" not in stranger.headers
    assert stranger.json()["error"]["code"] == "origin_not_allowed"
    assert (plain.status_code, plain.headers["allow"]) == (204, "DELETE, GET, OPTIONS")
    assert unknown.status_code == 404
    del key


def test_a_request_from_a_browser_origin_needs_its_key_to_allow_it(
    make_key: MakeKey, http: httpx.Client
) -> None:
    allowing = make_key(allowed_origins=[ORIGIN])
    default = make_key()  # no origins: a server-side key
    body = {"model": "fast", "messages": [{"role": "user", "content": unique()}]}

    ok = http.post(
        "/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {allowing.secret}", "origin": ORIGIN},
    )
    refused = http.post(
        "/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {default.secret}", "origin": ORIGIN},
    )

    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in ok.headers["access-control-expose-headers"]
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in refused.headers


def test_origins_are_normalised_and_a_revoked_key_allows_none(make_key: MakeKey) -> None:
    assert origins_normalised([" HTTPS://App.Example.test/ ", "https://app.example.test"]) == [
        "https://app.example.test"
    ]
    key = make_key(allowed_origins=["https://revoked.example.test"])
    assert run_committed(lambda: api_key_origin_known(origin="https://revoked.example.test"))

    def revoke() -> None:
        from django.utils import timezone

        key.row.revoked_at = timezone.now()
        key.row.save(update_fields=["revoked_at"])

    run_committed(revoke)
    assert not run_committed(lambda: api_key_origin_known(origin="https://revoked.example.test"))


# --- 2. legacy completions -------------------------------------------------------------------


def test_legacy_completions_answer_the_prompt_as_one_user_turn(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    client = client_for(make_key())
    upstream.reply_next(Reply(text="Paris.", input_tokens=7, output_tokens=2))

    prompt = unique("The capital of France is")
    reply = client.completions.create(model="fast", prompt=prompt, max_tokens=20, stop=["\n"])

    assert reply.object == "text_completion"
    assert reply.choices[0].text == "Paris."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "fast"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 2
    sent = upstream.last_request.body
    assert sent["messages"] == [{"role": "user", "content": prompt}]
    assert sent["stop"] == ["\n"]
    assert (sent.get("max_completion_tokens") or sent.get("max_tokens")) == 20


def test_legacy_completions_stream_and_take_token_ids(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    client = client_for(make_key())
    upstream.reply_next(Reply(text="one two three"))
    text = unique("Count to three")
    ids = encoder().encode_ordinary(text)

    chunks = list(
        client.completions.create(
            model="fast", prompt=ids, stream=True, stream_options={"include_usage": True}
        )
    )

    assert "".join(c.choices[0].text for c in chunks if c.choices) == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert upstream.last_request.body["messages"][0]["content"] == text
    with pytest.raises(openai.BadRequestError) as echo:
        client.completions.create(model="fast", prompt="x", echo=True)
    assert echo.value.param == "echo"


# --- 4. token-array embeddings, dimensions ---------------------------------------------------


def test_token_array_embeddings_are_decoded_and_dimensions_shorten(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    client = client_for(make_key())
    texts = ["hello world", "tenant schemas isolate data"]

    reply = client.embeddings.create(
        model="embed", input=[encoder().encode_ordinary(t) for t in texts], dimensions=4
    )

    assert upstream.last_request.body["input"] == texts
    assert [len(d.embedding) for d in reply.data] == [4, 4]
    for item in reply.data:
        assert math.isclose(math.sqrt(sum(x * x for x in item.embedding)), 1.0, rel_tol=1e-6)


# --- 8. streamed tool calls: covered in test_openai_api (arguments in pieces) -----------------
# --- 9. model synonyms -----------------------------------------------------------------------


@pytest.mark.usefixtures("synonym")
def test_a_synonym_answers_with_its_alias_and_only_in_its_workspace(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    reply = client_for(make_key("acme")).chat.completions.create(
        model="gpt-4o-mini", messages=ask()
    )
    assert reply.model == "gpt-4o-mini"
    assert upstream.last_request.body["model"] == "gpt-4.1-mini"  # fast's model

    with pytest.raises(openai.NotFoundError) as foreign:
        client_for(make_key("globex")).chat.completions.create(model="gpt-4o-mini", messages=ask())
    assert foreign.value.code == "model_not_found"


def test_synonyms_are_managed_by_services_that_check_the_alias() -> None:
    from apps.common.errors import ApplicationError
    from apps.llm.services import (
        model_resolve,
        model_synonym_delete,
        model_synonym_set,
        model_synonyms,
    )
    from apps.workspaces.models import Workspace

    acme = Workspace.objects.get(slug="acme")
    globex = Workspace.objects.get(slug="globex")
    model_synonym_set(workspace=acme, name="gpt-4.1", alias="smart")
    with pytest.raises(ApplicationError):
        model_synonym_set(workspace=acme, name="x", alias="no-such-alias")
    with pytest.raises(ApplicationError):
        model_synonym_set(workspace=acme, name="fast", alias="smart")

    assert model_synonyms(workspace=acme) == {"gpt-4.1": "smart"}
    assert model_resolve(workspace=acme, model="gpt-4.1") == "smart"
    assert model_resolve(workspace=globex, model="gpt-4.1") == "gpt-4.1"
    model_synonym_delete(workspace=acme, name="gpt-4.1")
    assert model_synonyms(workspace=acme) == {}


# --- 1. the Responses API --------------------------------------------------------------------


@pytest.mark.usefixtures("forget_responses")
def test_a_response_with_instructions_is_stored_retrieved_and_deleted(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    key = make_key()
    client = client_for(key)
    upstream.reply_next(Reply(text="Hello there.", input_tokens=11, output_tokens=3))

    response = client.responses.create(
        model="fast", instructions="Be brief.", input=unique("Hi"), max_output_tokens=40
    )

    assert response.status == "completed"
    assert response.output_text == "Hello there."
    assert response.model == "fast"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 3)
    sent = upstream.last_request.body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (sent.get("max_completion_tokens") or sent.get("max_tokens")) == 40

    assert client.responses.retrieve(response.id).output_text == "Hello there."
    with pytest.raises(openai.NotFoundError):  # another workspace's key
        client_for(make_key("globex")).responses.retrieve(response.id)
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


@pytest.mark.usefixtures("forget_responses")
def test_a_function_tool_round_trip_through_previous_response_id(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    client = client_for(make_key())
    call = ToolCallScript(name="get_weather", arguments={"city": "Oslo"}, id="call_7")
    upstream.reply_next(Reply(text="", tool_calls=(call,), finish="tool_calls"))
    upstream.reply_next(Reply(text="It is sunny in Oslo."))

    first = client.responses.create(
        model="smart", input=unique("Weather in Oslo?"), tools=[WEATHER], tool_choice="required"
    )
    [made] = [item for item in first.output if item.type == "function_call"]
    second = client.responses.create(
        model="smart",
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": made.call_id, "output": "Sunny, 12 °C"}],
    )

    assert (made.name, json.loads(made.arguments), made.call_id) == (
        "get_weather",
        {"city": "Oslo"},
        "call_7",
    )
    assert upstream.requests[-2].body["tool_choice"] == "required"
    assert upstream.requests[-2].body["tools"][0]["function"]["name"] == "get_weather"
    history = upstream.last_request.body["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "tool"]
    assert history[1]["tool_calls"][0]["id"] == "call_7"
    assert history[2] == {"role": "tool", "tool_call_id": "call_7", "content": "Sunny, 12 °C"}
    assert second.output_text == "It is sunny in Oslo."
    assert second.previous_response_id == first.id

    with pytest.raises(openai.NotFoundError) as foreign:  # another workspace's response
        client_for(make_key("globex")).responses.create(
            model="smart", previous_response_id=first.id, input="and tomorrow?"
        )
    assert foreign.value.param == "previous_response_id"


@pytest.mark.usefixtures("forget_responses")
def test_a_streamed_response_sends_typed_events_with_argument_deltas(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    client = client_for(make_key())
    call = ToolCallScript(name="get_weather", arguments={"city": "Bergen"}, id="call_9")
    upstream.reply_next(Reply(text="Let me check.", tool_calls=(call,), finish="tool_calls"))

    with client.responses.stream(model="smart", input=unique("Weather?"), tools=[WEATHER]) as s:
        events = list(s)
        final = s.get_final_response()

    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds
    assert kinds.count("response.function_call_arguments.delta") > 1
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == "Let me check."
    [made] = [item for item in final.output if item.type == "function_call"]
    assert json.loads(made.arguments) == {"city": "Bergen"}
    assert final.usage is not None
    assert final.usage.total_tokens > 0
    assert client.responses.retrieve(final.id).id == final.id  # stored before completed


def test_json_schema_text_format_and_store_false(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    client = client_for(make_key())
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }

    response = client.responses.create(
        model="extract",
        input=unique("Oslo is nice"),
        store=False,
        text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}},
    )

    assert set(json.loads(response.output_text)) == {"city"}
    assert upstream.last_request.body["response_format"]["type"] == "json_schema"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_a_response_cut_at_max_output_tokens_is_incomplete(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    upstream.reply_next(Reply(text="one two three four five six"))
    response = client_for(make_key()).responses.create(
        model="fast", input=unique(), max_output_tokens=2, store=False
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "fast"}, 400, "input"),
        ({"model": "fast", "input": "x", "tools": [{"type": "web_search"}]}, 400, "tools[0].type"),
        (
            {"model": "fast", "input": [{"role": "user", "content": [{"type": "input_image"}]}]},
            400,
            "input[0].content[0]",
        ),
        (
            {"model": "fast", "input": [{"type": "function_call", "call_id": "c", "name": "f"}]},
            400,
            "input[0].arguments",
        ),
        ({"model": "fast", "input": "x", "background": True}, 400, "background"),
        ({"model": "fast", "input": "x", "temprature": 1}, 400, "temprature"),
        (
            {"model": "fast", "input": "x", "previous_response_id": "resp_nope"},
            404,
            "previous_response_id",
        ),
        ({"model": "nope", "input": "x"}, 404, "model"),
    ],
)
def test_bad_responses_bodies_are_openai_shaped_errors(
    make_key: MakeKey, http: httpx.Client, body: dict[str, Any], status: int, param: str
) -> None:
    key = make_key()
    response = http.post("/responses", json=body, headers={"authorization": f"Bearer {key.secret}"})
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


# --- agents answer on /v1/responses too ------------------------------------------------------


@pytest.fixture
def task_helper() -> Iterator[None]:
    def create() -> None:
        with schema_context("acme"):
            Agent.objects.create(
                name="Task helper", slug="task-helper", tools=["list_tasks", "create_task"]
            )

    run_committed(create)
    yield

    def remove() -> None:
        with schema_context("acme"):
            Task.objects.all().delete()
            ToolAudit.objects.all().delete()
            Agent.objects.filter(slug="task-helper").delete()
            StoredResponse.objects.all().delete()

    run_committed(remove)


@pytest.mark.usefixtures("task_helper")
def test_an_agent_answers_on_responses_with_its_own_tools(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    member = run_committed(lambda: User.objects.get(email="member@acme.test"))
    key = make_key("acme", scopes=["chat", "agents"], created_by=member)
    call = ToolCallScript(name="create_task", arguments={"title": "Order clay"}, id="call_1")
    upstream.reply_next(Reply(text="", tool_calls=(call,), finish="tool_calls"))
    upstream.reply_next(Reply(text="Created it."))

    response = client_for(key).responses.create(model="agent:task-helper", input="Order clay")

    assert response.output_text == "Created it."
    steps = (response.model_extra or {})["aisaas"]["agent_steps"]
    assert [s["type"] for s in steps] == ["tool_call", "tool_result"]
    with pytest.raises(openai.PermissionDeniedError):  # a key without the agents scope
        client_for(make_key("acme")).responses.create(model="agent:task-helper", input="x")


# --- the CLIs and retention -------------------------------------------------------------------


def test_the_llm_command_sets_lists_and_deletes_synonyms() -> None:
    out = io.StringIO()
    call_command("llm", "synonym", "--workspace", "acme", "gpt-4o", "smart", stdout=out)
    assert "gpt-4o → smart" in out.getvalue()
    with pytest.raises(CommandError, match="Unknown alias"):
        call_command("llm", "synonym", "--workspace", "acme", "gpt-x", "nope")
    out = io.StringIO()
    call_command("llm", "synonym", "--workspace", "acme", "gpt-4o", "--delete", stdout=out)
    assert "gpt-4o" not in out.getvalue()


def test_apikey_create_takes_allowed_origins() -> None:
    out = io.StringIO()
    call_command(
        "apikey",
        "create",
        "--workspace",
        "acme",
        "--name",
        "web app",
        "--allowed-origin",
        "https://App.example.test/",
        "--json",
        stdout=out,
    )
    assert json.loads(out.getvalue())["allowed_origins"] == ["https://app.example.test"]
    with pytest.raises(CommandError, match="not a browser origin"):
        call_command(
            "apikey", "create", "--workspace", "acme", "--name", "x", "--allowed-origin", "*"
        )


def test_stored_responses_expire_with_their_retention() -> None:
    from apps.common.errors import NotFoundError
    from apps.llm.services import (
        access_stored_response,
        all_workspaces_stored_responses_expire,
        stored_response_save,
    )
    from apps.workspaces.models import Workspace

    acme = Workspace.objects.get(slug="acme")
    stored_response_save(
        workspace=acme, response_id="resp_old", model="fast", items=[], body={}, retention_days=1
    )
    assert access_stored_response(workspace=acme, response_id="resp_old").id == "resp_old"

    with time_machine.travel(timezone.now() + timedelta(days=2)):
        with pytest.raises(NotFoundError):
            access_stored_response(workspace=acme, response_id="resp_old")
        assert all_workspaces_stored_responses_expire() == 1


@pytest.mark.usefixtures("task_helper")
def test_an_agent_streams_on_responses(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    member = run_committed(lambda: User.objects.get(email="member@acme.test"))
    key = make_key("acme", scopes=["chat", "agents"], created_by=member)
    call = ToolCallScript(name="list_tasks", arguments={}, id="call_1")
    upstream.reply_next(Reply(text="", tool_calls=(call,), finish="tool_calls"))
    upstream.reply_next(Reply(text="You have no tasks."))

    with client_for(key).responses.stream(model="agent:task-helper", input="My tasks?") as s:
        kinds = [e.type for e in s]
        final = s.get_final_response()

    assert final.output_text == "You have no tasks."
    # the agent's own tool ran server-side: no function_call reaches the client
    assert "response.function_call_arguments.delta" not in kinds
    assert kinds[-1] == "response.completed"
    steps = (final.model_extra or {})["aisaas"]["agent_steps"]
    assert [s["name"] for s in steps] == ["list_tasks", "list_tasks"]


# --- 11. the OpenAPI document ------------------------------------------------------------------


def test_the_openapi_document_lists_the_new_routes_and_every_status(
    api_server: AsgiServer,
) -> None:
    document = httpx.get(api_server.url("/api/schema/"), params={"format": "json"}).json()
    paths = document["paths"]

    assert set(paths["/v1/responses"]) == {"post", "options"}
    assert set(paths["/v1/responses/{response_id}"]) == {"get", "delete", "options"}
    assert "post" in paths["/v1/completions"]
    assert "get" in paths["/v1/models/{model_id}"]
    for path, operations in paths.items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            if method == "options":
                assert statuses == {"204", "403"}, path
                continue
            assert {"401", "403", "404", "405", "429"} <= statuses, (method, path)
    assert "text/event-stream" in paths["/v1/responses"]["post"]["responses"]["200"]["content"]
    headers = paths["/v1/models"]["get"]["responses"]["200"]["headers"]
    assert "x-ratelimit-remaining-requests" in headers


def test_a_model_name_with_a_nul_byte_is_refused_not_a_500(
    make_key: MakeKey, client_for: Client
) -> None:
    """Found by the fuzzer: a NUL in `model` reached the synonyms query (PostgreSQL refuses NUL
    in text) and answered 500 on every route that takes a model."""
    import openai

    client = client_for(make_key())
    for call in (
        lambda: client.embeddings.create(model="\x00", input="hi"),
        lambda: client.completions.create(model="\x00", prompt="hi"),
        lambda: client.responses.create(model="\x00", input=""),
        lambda: client.chat.completions.create(
            model="\x00", messages=[{"role": "user", "content": "hi"}]
        ),
    ):
        with pytest.raises(openai.APIStatusError) as raised:
            call()
        assert 400 <= raised.value.status_code < 500
