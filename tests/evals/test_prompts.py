"""The loader: strict variables, schema validation, versions, hashes, caching (plain Python)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from apps.llm.core.types import ChatRequest, Message
from apps.llm.prompts import (
    DEFAULT_ROOT,
    PromptError,
    PromptLibrary,
    parse_overrides,
    render_prompt,
    variables_from,
)

VARS = {"workspace_name": "Acme", "agent_name": "Assistant"}


def test_render_the_active_chat_system_prompt():
    rendered = render_prompt("chat.system", VARS, version=None)
    assert (rendered.name, rendered.version) == ("chat.system", "v1")
    assert "Acme workspace" in rendered.text
    assert "Assistant" in rendered.text
    assert "{{" not in rendered.text
    assert "---" not in rendered.text.splitlines()[0]
    raw = (DEFAULT_ROOT / "chat.system" / "v1.md").read_bytes()
    assert rendered.content_hash == hashlib.sha256(raw).hexdigest()
    request = ChatRequest(
        alias="smart", messages=(Message("system", rendered.text),), **rendered.request_fields()
    )
    assert (request.prompt_name, request.prompt_version) == ("chat.system", "v1")


def test_every_committed_prompt_loads_with_its_schema_examples():
    library = PromptLibrary(DEFAULT_ROOT)
    assert {"chat.system", "conversation.title", "evals.judge"} <= set(library.names())
    for name in library.names():
        prompt = library.load(name)
        schema = json.loads((DEFAULT_ROOT / name / "schema.json").read_text())
        values = {k: v["examples"][0] for k, v in schema["properties"].items()}
        assert library.render(name, values).version == prompt.version


def test_title_and_judge_ask_for_structured_output():
    title = render_prompt(
        "conversation.title", {"user_message": "Hi", "assistant_message": "Hello"}
    )
    assert title.role == "user"
    assert title.alias == "fast"
    response_format = title.response_format()
    assert response_format is not None
    assert response_format.json_schema is not None
    assert response_format.json_schema["required"] == ["title"]
    assert render_prompt("chat.system", VARS).response_format() is None


def test_a_missing_variable_is_named():
    with pytest.raises(PromptError, match="agent_name") as caught:
        render_prompt("chat.system", {"workspace_name": "Acme"})
    assert caught.value.field == "agent_name"


def test_an_unknown_variable_is_named():
    with pytest.raises(PromptError, match="tone") as caught:
        render_prompt("chat.system", {**VARS, "tone": "formal"})
    assert caught.value.field == "tone"


def test_values_are_validated_against_schema_json():
    with pytest.raises(PromptError, match="workspace_name") as caught:
        render_prompt("chat.system", {**VARS, "workspace_name": ""})
    assert caught.value.field == "workspace_name"
    with pytest.raises(PromptError, match="agent_name"):
        render_prompt("chat.system", {**VARS, "agent_name": 42})


def test_unknown_prompt_and_version_list_what_exists():
    with pytest.raises(PromptError, match=r"No prompt 'chat\.sytem'.*chat\.system"):
        render_prompt("chat.sytem", VARS)
    with pytest.raises(PromptError, match=r"no version 'v9' \(versions: v1\)"):
        render_prompt("chat.system", VARS, version="v9")
    with pytest.raises(PromptError, match="No prompt"):
        render_prompt("../etc", VARS)


def test_overrides_choose_the_active_version(library: PromptLibrary):
    assert library.active_version("demo.echo") == "v1"
    overridden = PromptLibrary(library.root, {"demo.echo": "v2"})
    assert overridden.render("demo.echo", {"workspace_name": "Acme"}).version == "v2"
    with pytest.raises(PromptError, match=r"override selects demo\.echo v7.*v1, v2"):
        PromptLibrary(library.root, {"demo.echo": "v7"}).active_version("demo.echo")
    assert parse_overrides("chat.system=v2, demo.echo=v1") == {
        "chat.system": "v2",
        "demo.echo": "v1",
    }
    with pytest.raises(PromptError, match="PROMPT_VERSIONS"):
        parse_overrides("chat.system")


def test_render_prompt_reads_the_settings_override(library: PromptLibrary, settings):
    settings.PROMPT_VERSIONS = {"demo.echo": "v2"}
    assert render_prompt("demo.echo", {"workspace_name": "Acme"}).version == "v2"


def test_template_and_schema_must_agree(tmp_path: Path):
    folder = tmp_path / "bad.prompt"
    folder.mkdir()
    (folder / "schema.json").write_text(json.dumps({"type": "object", "properties": {"a": {}}}))
    (folder / "v1.md").write_text("Hello {{ a }} and {{ b }}")
    with pytest.raises(PromptError, match=r"differ from schema\.json"):
        PromptLibrary(tmp_path).load("bad.prompt")
    (folder / "v2.md").write_text("Hello {{ a }} {{ not valid }}")
    with pytest.raises(PromptError, match="not `"):
        PromptLibrary(tmp_path).load("bad.prompt", "v2")


def test_parsed_files_are_cached_per_process(library: PromptLibrary):
    first = library.load("demo.echo")
    assert library.load("demo.echo") is first


def test_variables_read_back_from_a_rendered_text():
    library = PromptLibrary(DEFAULT_ROOT)
    values = {"user_message": "Why is VAT added?\nTwo lines.", "assistant_message": "Because."}
    rendered = library.render("conversation.title", values)
    assert variables_from(library.load("conversation.title"), rendered.text) == values
    assert variables_from(library.load("conversation.title"), "something else") is None


def test_the_loader_works_without_django_settings():
    import subprocess
    import sys

    code = (
        "from apps.llm.prompts import render_prompt; "
        "print(render_prompt('chat.system', {'workspace_name': 'A', 'agent_name': 'B'}).version)"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(DEFAULT_ROOT.parent)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "v1"
